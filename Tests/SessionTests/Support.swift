import XCTest
import DuelCore
import Engine
import Session
import TerminalUI

/// A scripted terminal: each step waits until a condition on the screen holds, then sends keys.
final class FakeTerminal: TerminalDevice {
    struct Step {
        var name: String
        var until: (String) -> Bool
        var events: [KeyEvent]
        var resizeTo: (cols: Int, rows: Int)?
        init(name: String, until: @escaping (String) -> Bool, events: [KeyEvent], resizeTo: (cols: Int, rows: Int)? = nil) {
            self.name = name
            self.until = until
            self.events = events
            self.resizeTo = resizeTo
        }
    }
    var size: (cols: Int, rows: Int)
    var steps: [Step]
    var pending: [KeyEvent] = []
    var frames: [CellGrid] = []
    var lastText = ""
    var failedStep: String?
    let deadline: Double
    private var nonBlocking = false

    init(cols: Int, rows: Int, steps: [Step], timeout: Double = 60) {
        size = (cols, rows)
        self.steps = steps
        deadline = monotonicSeconds() + timeout
    }

    func readKey() -> KeyEvent? {
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
    func setNonBlocking(_ nonBlocking: Bool) { self.nonBlocking = nonBlocking }
    func draw(_ grid: CellGrid) {
        frames.append(grid)
        lastText = grid.text
    }
    func invalidate() {}
}

func keys(_ text: String) -> [KeyEvent] { text.map { KeyEvent.key(.char($0)) } }

/// Reduces every action it sees into its own copy of the state: the live loop's state, exactly
/// (reduce is pure and sees the same actions in the same order).
final class StateMirror: ActionSink {
    var state: AppState
    init(_ state: AppState) { self.state = state }
    func observe(_ action: Action, at now: Double) { reduce(&state, action) }
}

enum TestFiles {
    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
    static var fixtures: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures") }
    static func temp(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvduel-session-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }
    static let fastTiming = DemoTiming(prefillSecondsPerToken: 0.0002, decodeSecondsPerToken: 0.002, lookupSeconds: 0)
}

/// Compares a grid's text with Fixtures/<name>.txt (KVDUEL_RECORD_SNAPSHOTS=1 writes it), printing
/// the first differing lines.
func assertSnapshot(_ grid: CellGrid, named name: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertTrue(grid.isConsistent, "grid has a broken wide character", file: file, line: line)
    let actual = grid.text + "\n"
    let url = TestFiles.fixtures.appendingPathComponent(name + ".txt")
    if ProcessInfo.processInfo.environment["KVDUEL_RECORD_SNAPSHOTS"] == "1" {
        XCTAssertNoThrow(try actual.write(to: url, atomically: true, encoding: .utf8))
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
