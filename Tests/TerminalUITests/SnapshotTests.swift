import XCTest
import DuelCore
import Engine
import TerminalUI

final class SnapshotTests: XCTestCase {
    func testDuel160x45() {
        let s = Fixtures.duel(cols: 160, rows: 45)
        assertSnapshot(render(s), named: "duel-160x45")
    }
}
