import XCTest
import DuelCore
import TerminalUI

final class GridTests: XCTestCase {
    func testDisplayWidths() {
        XCTAssertEqual(DisplayWidth.of("abc"), 3)
        XCTAssertEqual(DisplayWidth.of("東京"), 4)
        XCTAssertEqual(DisplayWidth.of("🚀"), 2)
        XCTAssertEqual(DisplayWidth.of("한국어"), 6)
        XCTAssertEqual(DisplayWidth.of("e\u{301}"), 1, "combining accent adds nothing")
        XCTAssertEqual(DisplayWidth.of("ＡＢ"), 4, "fullwidth forms")
        XCTAssertEqual(DisplayWidth.of("─│┌"), 3)
        XCTAssertEqual(DisplayWidth.of("☕️"), 2)
    }

    func testWideCharacterNeverStraddlesTheLimit() {
        var g = CellGrid(width: 10, height: 1)
        let next = g.put("ab東京", x: 0, y: 0, limit: 5)
        XCTAssertEqual(g.row(0), "ab東      ")
        XCTAssertEqual(next, 5, "the half-fitting 京 became a space")
        XCTAssertEqual(g[2, 0].width, 2)
        XCTAssertEqual(g[3, 0].width, 0)
        XCTAssertTrue(g.isConsistent)
    }

    func testOverwritingHalfAWideCharacterRepairsIt() {
        var g = CellGrid(width: 6, height: 1)
        g.put("東京", x: 0, y: 0)
        g.put("x", x: 1, y: 0)          // right half of 東
        XCTAssertEqual(g.row(0), " x京  ")
        XCTAssertTrue(g.isConsistent)
        g.put("y", x: 2, y: 0)          // left half of 京
        XCTAssertEqual(g.row(0), " xy   ")
        XCTAssertTrue(g.isConsistent)
    }

    func testControlCharactersAreNeutralised() {
        var g = CellGrid(width: 6, height: 1)
        g.put("a\u{1b}[2J", x: 0, y: 0)
        XCTAssertEqual(g.row(0), "a [2J ")
    }

    func testBoxAndRule() {
        var g = CellGrid(width: 8, height: 4)
        let r = Rect(x: 0, y: 0, width: 8, height: 4)
        g.box(r, style: .normal, title: "T")
        g.rule(y: 2, in: r, style: .normal)
        XCTAssertEqual(g.text, "┌─ T ──┐\n│      │\n├──────┤\n└──────┘")
    }

    func testWordWrapByDisplayWidth() {
        XCTAssertEqual(wordWrap("the quick brown fox", width: 9), ["the quick", "brown fox"])
        XCTAssertEqual(wordWrap("東京タワー", width: 4), ["東京", "タワ", "ー"])
        XCTAssertEqual(wordWrap("ab 東京タ", width: 5), ["ab 東", "京タ"], "CJK runs fill the line")
        XCTAssertEqual(wordWrap("a\n\nb", width: 5), ["a", "", "b"])
        XCTAssertEqual(wordWrap("abcdefgh", width: 3), ["abc", "def", "gh"])
        XCTAssertEqual(wordWrap("x", width: 0), [])
        for line in wordWrap(String(repeating: "とても高い🚀 ", count: 30), width: 11) {
            XCTAssertLessThanOrEqual(DisplayWidth.of(line), 11, line)
        }
    }

    func testTruncateAndPad() {
        XCTAssertEqual(truncate("Brightwater", width: 6), "Brigh…")
        XCTAssertEqual(truncate("東京タワー", width: 5), "東京…")
        XCTAssertEqual(pad("東", width: 4), "東  ")
        XCTAssertEqual(pad("42", width: 5, right: true), "   42")
    }

    func testFormats() {
        XCTAssertEqual(Fmt.seconds(0.2144), "0.214 s")
        XCTAssertEqual(Fmt.seconds(12.34), "12.3 s")
        XCTAssertEqual(Fmt.bytes(412 << 20), "412 MiB")
        XCTAssertEqual(Fmt.bytes(1 << 30), "1.0 GiB")
        XCTAssertEqual(Fmt.bytes(512), "512 B")
        XCTAssertEqual(Fmt.percent(0.15), "15%")
        XCTAssertEqual(Fmt.percent(0.8703), "87%")
        XCTAssertEqual(Fmt.percent(0.4126), "41.3%")
        XCTAssertEqual(Fmt.fixed(-1.25, 1), "-1.3")
        XCTAssertEqual(Fmt.sparkline([0, 1, 4, 8], max: 8), "▁▂▅█")
        XCTAssertEqual(Fmt.bar(0.5, width: 4).filled, "██")
    }

    func testThemes() {
        XCTAssertEqual(Theme.resolve(name: "presentation", environment: [:], terminalHasColors: true).name, "presentation")
        XCTAssertEqual(Theme.resolve(name: "default", environment: [:], terminalHasColors: true).name, "default")
        XCTAssertEqual(Theme.resolve(name: "presentation", environment: ["NO_COLOR": ""], terminalHasColors: true).name, "mono")
        XCTAssertEqual(Theme.resolve(name: "default", environment: [:], terminalHasColors: false).name, "mono")
        let mono = Theme.monochrome
        XCTAssertFalse(mono.usesColor)
        for role in Role.allCases where role != .normal && role != .border && role != .overlay {
            XCTAssertEqual(mono.look(role).fg, .standard)
            XCTAssertFalse(mono.look(role).attrs.isEmpty, "\(role) must stand out without colour")
        }
        XCTAssertTrue(Theme.presentation.look(.dim).attrs.isEmpty, "no dim text on a projector")
    }

    func testCursesKeyTranslation() {
        func t(_ c: Int32, _ f: Bool = false) -> KeyEvent { CursesKeys.translate(code: c, isFunctionKey: f) }
        XCTAssertEqual(t(13), .key(.enter))
        XCTAssertEqual(t(10), .key(.enter))
        XCTAssertEqual(t(9), .key(.tab))
        XCTAssertEqual(t(127), .key(.backspace))
        XCTAssertEqual(t(3), .key(.ctrl("c")))
        XCTAssertEqual(t(17), .key(.ctrl("q")))
        XCTAssertEqual(t(18), .key(.ctrl("r")))
        XCTAssertEqual(t(14), .key(.ctrl("n")))
        XCTAssertEqual(t(1), .key(.ctrl("a")))
        XCTAssertEqual(t(5), .key(.ctrl("e")))
        XCTAssertEqual(t(23), .key(.ctrl("w")))
        XCTAssertEqual(t(21), .key(.ctrl("u")))
        XCTAssertEqual(t(32), .key(.char(" ")))
        XCTAssertEqual(t(63), .key(.char("?")))
        XCTAssertEqual(t(74), .key(.char("J")))
        XCTAssertEqual(t(0x6771), .key(.char("東")))
        XCTAssertEqual(t(CursesKeys.shiftUpCode, true), .key(.shiftUp))
        XCTAssertEqual(t(CursesKeys.shiftDownCode, true), .key(.shiftDown))
        XCTAssertEqual(t(CursesKeys.upCode, true), .key(.up))
        XCTAssertEqual(t(CursesKeys.downCode, true), .key(.down))
        XCTAssertEqual(t(CursesKeys.leftCode, true), .key(.left))
        XCTAssertEqual(t(CursesKeys.rightCode, true), .key(.right))
        XCTAssertEqual(t(CursesKeys.homeCode, true), .key(.home))
        XCTAssertEqual(t(CursesKeys.endCode, true), .key(.end))
        XCTAssertEqual(t(CursesKeys.backspaceCode, true), .key(.backspace))
        XCTAssertEqual(t(CursesKeys.pageUpCode, true), .key(.pageUp))
        XCTAssertEqual(t(CursesKeys.pageDownCode, true), .key(.pageDown))
        XCTAssertEqual(t(CursesKeys.backTabCode, true), .key(.backTab))
        XCTAssertEqual(t(CursesKeys.f1Code, true), .key(.function(1)))
        XCTAssertEqual(t(CursesKeys.resizeCode, true), .resize)
    }

    func testRenderBenchmarkDrawsAFullFrame() {
        let b = benchmarkRender(cols: 160, rows: 45, turns: 300, frames: 20)
        print(b.summary)
        let g = b.lastFrame
        XCTAssertEqual(g.width, 160)
        XCTAssertEqual(g.height, 45)
        XCTAssertTrue(g.isConsistent)
        let rows = g.text.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(rows.count, 45)
        XCTAssertTrue(rows[0].hasPrefix(" kvduel"))
        XCTAssertTrue(rows[1].hasPrefix("┌") && rows[1].hasSuffix("┐"))
        XCTAssertTrue(rows[44].contains("Enter"), "footer drawn")
        XCTAssertTrue(g.text.contains("w19"), "the newest streamed token is on screen")
        XCTAssertEqual(b.frames, 20)
        XCTAssertGreaterThan(b.meanMilliseconds, 0)
    }
}

final class RenderDetailTests: XCTestCase {
    func testLongInputScrollsToKeepTheCursorVisible() {
        var s = Fixtures.loaded(cols: 80, rows: 24)
        reduce(&s, .inputEdited(.insert(String(repeating: "abcdefghij", count: 12) + "THE-END")))
        let g = render(s)
        let inputRow = g.text.split(separator: "\n")[21]
        XCTAssertTrue(inputRow.contains("THE-END"), String(inputRow))
        let row = g.row(21)
        let end = row.distance(from: row.startIndex, to: row.range(of: "THE-END")!.upperBound)
        XCTAssertEqual(g[end, 21].style.role, .cursor, "cursor sits after the text")
        reduce(&s, .inputEdited(.home))
        XCTAssertTrue(render(s).text.split(separator: "\n")[21].hasPrefix("│› abcdefghij"))
    }

    func testScrolledTranscriptSaysSo() {
        var s = Fixtures.duel(cols: 80, rows: 24)
        reduce(&s, .scrolled(lines: 3))
        let t = render(s).text
        XCTAssertTrue(t.contains("↓ 3 more (PgDn)"), t)
        reduce(&s, .scrolled(lines: 1000))
        XCTAssertTrue(render(s).text.contains("› Where was Veltrona Robotics"), "scrolled to the top, clamped")
    }

    func testPanelFollowsTheSelection() {
        var s = Fixtures.loaded(cols: 80, rows: 24)
        reduce(&s, .focusChanged(.panel))
        reduce(&s, .blockSelected(5))
        let t = render(s).text
        XCTAssertTrue(t.contains("Quillfeather Press"))
        XCTAssertTrue(t.contains("of 6"))
        let g = render(s)
        let row = (0..<g.height).first { g.row($0).contains("Quillfeather") }!
        XCTAssertEqual(g[5, row].style.role, .selected, "the selected block is highlighted")
    }

    func testDivergenceWithoutKLIsStillShown() {
        var s = Fixtures.duel(cols: 160, rows: 45)
        reduce(&s, .divergenceMeasured(Divergence(identical: false, firstTokenKL: nil, firstDifferingToken: 3)))
        let t = render(s).text
        XCTAssertTrue(t.contains("⚠ differs from baseline at token 4"), t)
        XCTAssertTrue(t.contains("first-token KL n/a"))
    }
}

/// What the curses backend sends for one cell: the base and its marks, never a second spacing
/// character (which shifts the rest of the line on the terminal).
final class CursesScalarsTests: XCTestCase {
    func testClustersKeepMarksAndDropJoinedCharacters() {
        XCTAssertEqual(cursesScalars("e\u{301}").map(\.value), [0x65, 0x301])
        XCTAssertEqual(cursesScalars("\u{2764}\u{FE0F}").map(\.value), [0x2764, 0xFE0F])
        XCTAssertEqual(cursesScalars("👨‍👩‍👧").map(\.value), [0x1F468])
        XCTAssertEqual(cursesScalars("👍🏽").map(\.value), [0x1F44D])
        XCTAssertEqual(cursesScalars("中").map(\.value), [0x4E2D])
    }
}
