import DuelCore
import Foundation
import TerminalUI
import XCTest

/// A scripted terminal for app-loop tests: each step waits until the screen satisfies a condition,
/// then sends its keys (and may resize first). Past the deadline it sends Ctrl-C and names the
/// step it was waiting for.
public final class FakeTerminal: TerminalDevice {
    public struct Step {
        public var name: String
        public var until: (String) -> Bool
        public var events: [KeyEvent]
        public var resizeTo: (cols: Int, rows: Int)?
        public init(name: String, until: @escaping (String) -> Bool, events: [KeyEvent],
                    resizeTo: (cols: Int, rows: Int)? = nil) {
            self.name = name
            self.until = until
            self.events = events
            self.resizeTo = resizeTo
        }
    }
    public var size: (cols: Int, rows: Int)
    public var steps: [Step]
    public var pending: [KeyEvent] = []
    public var frames: [CellGrid] = []
    public var lastText = ""
    public var failedStep: String?
    public var invalidations = 0
    let deadline: Double
    private var nonBlocking = false

    public init(cols: Int, rows: Int, steps: [Step], timeout: Double = 60) {
        size = (cols, rows)
        self.steps = steps
        deadline = monotonicSeconds() + timeout
    }

    public func readKey() -> KeyEvent? {
        if !pending.isEmpty { return pending.removeFirst() }
        if monotonicSeconds() > deadline {
            failedStep = failedStep ?? steps.first?.name ?? "?"
            return .key(.ctrl("c"))
        }
        if let step = steps.first, step.until(lastText) {
            steps.removeFirst()
            if let r = step.resizeTo { size = r }
            pending = step.events
            if !pending.isEmpty { return pending.removeFirst() }
        }
        if !nonBlocking { usleep(3_000) }
        return nil
    }
    public func setNonBlocking(_ nonBlocking: Bool) { self.nonBlocking = nonBlocking }
    public func draw(_ grid: CellGrid) {
        frames.append(grid)
        lastText = grid.text
    }
    public func invalidate() { invalidations += 1 }
}

/// Compares a rendered screen with `directory/NAME.txt`, printing the first differing lines.
/// `KVDUEL_RECORD_SNAPSHOTS=1` writes the file instead.
public func assertSnapshot(_ grid: CellGrid, named name: String, in directory: URL,
                           file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertTrue(grid.isConsistent, "grid has a broken wide character", file: file, line: line)
    let actual = grid.text + "\n"
    let url = directory.appendingPathComponent(name + ".txt")
    if ProcessInfo.processInfo.environment["KVDUEL_RECORD_SNAPSHOTS"] == "1" {
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        XCTAssertNoThrow(try actual.write(to: url, atomically: true, encoding: .utf8))
        print("recorded snapshot \(url.path)")
        return
    }
    guard let expected = try? String(contentsOf: url, encoding: .utf8) else {
        XCTFail("missing snapshot \(url.path); run with KVDUEL_RECORD_SNAPSHOTS=1 to record it", file: file, line: line)
        return
    }
    if expected == actual { return }
    let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
    let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
    var report = "snapshot \(name) differs (KVDUEL_RECORD_SNAPSHOTS=1 to re-record):\n"
    var shown = 0
    for i in 0..<max(e.count, a.count) where shown < 5 {
        let el = i < e.count ? String(e[i]) : "<none>"
        let al = i < a.count ? String(a[i]) : "<none>"
        if el != al {
            report += "  line \(i + 1)\n    expected: \(el)\n    actual:   \(al)\n"
            shown += 1
        }
    }
    XCTFail(report, file: file, line: line)
}
