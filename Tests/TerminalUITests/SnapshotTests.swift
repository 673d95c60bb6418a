import XCTest
import DuelCore
import Engine
import TerminalUI

/// Whole screens rendered into the in-memory grid, compared as text with Snapshots/*.txt.
final class SnapshotTests: XCTestCase {
    func testDuel160x45() {
        let s = Fixtures.duel(cols: 160, rows: 45)
        let g = render(s)
        assertSnapshot(g, named: "duel-160x45")
        XCTAssertTrue(g.text.contains("×11.5 faster"), "speed-up badge")
        XCTAssertTrue(g.text.contains("⚠ differs from baseline"), "quality cost is visible")
        XCTAssertTrue(g.text.contains("first-token KL 0.0132"))
        XCTAssertTrue(g.text.contains("TTFT 1.250 s…"), "live TTFT while waiting")
    }

    func testDuel80x24() {
        let s = Fixtures.duel(cols: 80, rows: 24)
        assertSnapshot(render(s), named: "duel-80x24")
    }

    func testStart80x24() {
        let s = Fixtures.loaded(cols: 80, rows: 24)
        assertSnapshot(render(s), named: "start-80x24")
    }

    func testPanelFocused80x24() {
        var s = Fixtures.duel(cols: 80, rows: 24)
        reduce(&s, .focusChanged(.panel))
        reduce(&s, .blockSelected(5))
        let g = render(s)
        assertSnapshot(g, named: "panel-focused-80x24")
        XCTAssertTrue(g.text.contains("move up"), "footer shows panel keys")
    }

    func testWideCharacters160x45() {
        assertSnapshot(render(Fixtures.wide(cols: 160, rows: 45)), named: "wide-160x45")
    }

    func testWideCharacters80x24() {
        let g = render(Fixtures.wide(cols: 80, rows: 24))
        assertSnapshot(g, named: "wide-80x24")
        // Both pane borders stay in place on every row: no wide character pushed them.
        for y in 2..<12 {
            XCTAssertTrue("│├".contains(g[0, y].char), "row \(y)")
            XCTAssertTrue("│┤".contains(g[39, y].char), "row \(y)")
            XCTAssertTrue("│├".contains(g[40, y].char), "row \(y)")
            XCTAssertTrue("│┤".contains(g[79, y].char), "row \(y)")
        }
    }

    func testHelpOverlay160x45() {
        var s = Fixtures.duel(cols: 160, rows: 45)
        reduce(&s, .helpToggled)
        let g = render(s)
        assertSnapshot(g, named: "help-160x45")
        for b in Keymap.bindings where b.context != .replay {
            XCTAssertTrue(g.text.contains(b.keysLabel), "overlay lists \(b.keysLabel)")
        }
        XCTAssertTrue(g.text.contains("BASELINE's answer"), "overlay says how history is built")
    }

    func testHelpOverlay80x24() {
        var s = Fixtures.loaded(cols: 80, rows: 24)
        reduce(&s, .helpToggled)
        let g = render(s)
        assertSnapshot(g, named: "help-80x24")
        XCTAssertTrue(g.text.contains("Ctrl-R"))
        XCTAssertTrue(g.text.contains("Shift-↓ / J"))
    }

    func testTooSmall() {
        let s = Fixtures.duel(cols: 60, rows: 20)
        let g = render(s)
        assertSnapshot(g, named: "too-small-60x20")
        XCTAssertTrue(g.text.contains("Terminal too small"))
        XCTAssertTrue(g.text.contains("60×20"))
        // Resizing back shows everything again, nothing lost.
        var big = s
        reduce(&big, .resized(cols: 160, rows: 45))
        XCTAssertEqual(render(big), render(Fixtures.duel(cols: 160, rows: 45)))
    }

    func testTinyTerminalDoesNotCrash() {
        for (c, r) in [(0, 0), (1, 1), (10, 3), (79, 24), (80, 23)] {
            let g = render(Fixtures.duel(cols: c, rows: r))
            XCTAssertEqual(g.width, c)
            if c >= 10 && r >= 3 { XCTAssertTrue(g.text.contains("too") || g.text.contains("small") || g.text.contains("Terminal")) }
        }
    }

    func testLoading80x24() {
        var s = AppState(config: Fixtures.config(), cols: 80, rows: 24, now: 0, loading: true)
        reduce(&s, .loadingProgress(fraction: 0.62, message: "Loading SmolLM2-135M-Instruct: layer 19 of 30"))
        let g = render(s)
        assertSnapshot(g, named: "loading-80x24")
        XCTAssertTrue(g.text.contains("62%"))
    }

    func testLoadError80x24() {
        var s = AppState(config: Fixtures.config(), cols: 80, rows: 24, now: 0, loading: true)
        reduce(&s, .loadFailed("Loading failed: model file not found at /models/x.gguf"))
        assertSnapshot(render(s), named: "load-error-80x24")
    }

    func testRenderIsDeterministic() {
        XCTAssertEqual(render(Fixtures.duel(cols: 160, rows: 45)), render(Fixtures.duel(cols: 160, rows: 45)))
    }
}
