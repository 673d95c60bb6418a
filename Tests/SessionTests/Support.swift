import XCTest
import DuelCore
import Engine
import Session
import TerminalUI
import UITestSupport

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
    UITestSupport.assertSnapshot(grid, named: name, in: TestFiles.fixtures, file: file, line: line)
}
