import XCTest
import UITestSupport
import DuelCore
import Engine
import TerminalUI

/// The input line with text a terminal delivers one code point at a time (issue 10, item 6):
/// combining marks, ZWJ emoji, zero-width and bidi controls; and bracketed paste.
final class InputLineTests: XCTestCase {
    /// Types `text` as a terminal does: each Unicode scalar is a key of its own.
    func typed(_ text: String, cols: Int = 80, rows: Int = 24) -> AppState {
        var s = Fixtures.loaded(cols: cols, rows: rows)
        for u in text.unicodeScalars {
            for a in actions(for: .char(Character(u)), in: s) { reduce(&s, a) }
        }
        return s
    }

    func inputRow(_ g: CellGrid) -> String {
        String(g.text.split(separator: "\n", omittingEmptySubsequences: false).first { $0.contains("› ") } ?? "")
    }

    /// "A e\u{301} B end" used to draw as "› A e": the accent, a key of its own, was a
    /// zero-width character of its own and stopped the line.
    func testCombiningMarks() {
        let s = typed("A e\u{301} B end n\u{303}o")
        XCTAssertEqual(s.input.characters.count, 12, "é and ñ are one character each")
        XCTAssertEqual(s.input.text, "A e\u{301} B end n\u{303}o")
        let g = render(s)
        assertSnapshot(g, named: "input-combining-80x24")
        XCTAssertTrue(inputRow(g).contains("› A e\u{301} B end n\u{303}o"), inputRow(g))
    }

    /// A family emoji (man ZWJ woman ZWJ girl) used to draw as its first person.
    func testZWJEmojiIsOneWideCharacter() {
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}"
        var s = typed("hi \(family) ok")
        XCTAssertEqual(s.input.characters.count, 7)
        let g = render(s)
        assertSnapshot(g, named: "input-zwj-80x24")
        XCTAssertTrue(inputRow(g).contains("› hi \(family) ok"), inputRow(g))
        // Backspace over "ok" and the space, then once more deletes the whole family.
        for _ in 0..<4 { reduce(&s, .inputEdited(.backspace)) }
        XCTAssertEqual(s.input.text, "hi ")
    }

    /// ZWSP and RLO are invisible on their own: drawn as a dim dot (so the rest of the line draws
    /// and the terminal never receives a bidi override), kept in the text sent to the engines.
    func testZeroWidthAndRTLControls() {
        let s = typed("a\u{200B}b \u{202E}evil\u{202C} \u{5E9}\u{5DC}\u{5D5}\u{5DD} end")
        XCTAssertEqual(s.input.text, "a\u{200B}b \u{202E}evil\u{202C} \u{5E9}\u{5DC}\u{5D5}\u{5DD} end")
        let g = render(s)
        assertSnapshot(g, named: "input-rtl-80x24")
        let row = inputRow(g)
        XCTAssertTrue(row.contains("› a·b ·evil· שלום end"), row)
        XCTAssertFalse(row.unicodeScalars.contains { $0.value == 0x202E || $0.value == 0x200B }, "no control reaches the screen")
        XCTAssertTrue(g.isConsistent)
    }

    /// The cursor moves by grapheme and the line scrolls by display width.
    func testCursorAndScrollByWidth() {
        var s = typed(String(repeating: "e\u{301}\u{1F468}\u{200D}\u{1F469}", count: 40))
        XCTAssertEqual(s.input.characters.count, 80)
        reduce(&s, .inputEdited(.left))
        XCTAssertEqual(s.input.cursor, 79)
        let g = render(s)
        XCTAssertTrue(g.isConsistent)
        XCTAssertTrue(inputRow(g).hasSuffix("│"), "the right border is in place: \(inputRow(g))")
    }

    func testControlCharactersNeverEnterTheLine() {
        var e = LineEditor()
        e.apply(.insert("a\u{1B}[31mb\u{0E}c\r\nd\u{9B}e"))
        XCTAssertEqual(e.text, "a[31mbcde")
        e.apply(.replaceAll("x\ty"))
        XCTAssertEqual(e.text, "xy")
    }
}

/// Bracketed paste: what arrives between ESC[200~ and ESC[201~ is text, never keys.
final class PasteTests: XCTestCase {
    func feed(_ events: [KeyEvent]) -> (outputs: [PasteAssembler.Output], paste: PasteAssembler) {
        var p = PasteAssembler()
        return (events.map { p.feed($0, now: 0) }, p)
    }

    func testPastedControlKeysAndEscapeSequencesAreText() {
        let events: [KeyEvent] = [.pasteStart] + keys("hi ") + [.key(.ctrl("n")), .key(.escape)] + keys("[31mred")
            + [.key(.escape)] + keys("[0m") + [.key(.enter)] + keys("two") + [.key(.tab), .key(.escape)] + keys("]0;title")
            + [.key(.ctrl("g"))] + keys("!") + [.key(.up), .pasteEnd]
        let (out, p) = feed(events)
        XCTAssertEqual(out.last, .pasted("hi red two !"))
        XCTAssertEqual(out.dropLast().filter { $0 != .consumed }, [], "nothing inside the paste acts as a key")
        XCTAssertFalse(p.active)
    }

    func testKeysOutsideAPastePassThrough() {
        let (out, _) = feed([.key(.ctrl("n")), .resize, .pasteEnd])
        XCTAssertEqual(out, [.event(.key(.ctrl("n"))), .event(.resize), .consumed])
    }

    func testAPasteWithoutItsEndIsDeliveredAfterASecond() {
        var p = PasteAssembler()
        _ = p.feed(.pasteStart, now: 10)
        _ = p.feed(.key(.char("x")), now: 10.1)
        XCTAssertNil(p.flushIfStale(now: 10.5))
        XCTAssertEqual(p.flushIfStale(now: 11.2), "x")
        XCTAssertFalse(p.active)
        XCTAssertEqual(p.feed(.key(.ctrl("n")), now: 12), .event(.key(.ctrl("n"))))
    }

    /// Through the real loop: a pasted Ctrl-N and Enter neither start a new conversation nor
    /// submit; the text lands in the input line.
    func testPasteThroughTheLoop() {
        var saw = ""
        let term = FakeTerminal(cols: 100, rows: 30, steps: [
            .init(name: "loaded", until: { $0.contains("type a question") },
                  events: [.pasteStart] + keys("pasted") + [.key(.ctrl("n")), .key(.enter), .key(.escape)] + keys("[31mtext") + [.pasteEnd]),
            .init(name: "pasted", until: { t in saw = t; return t.contains("› pasted text") }, events: [.key(.ctrl("c"))]),
        ], timeout: 20)
        let exit = runDuelLoop(device: term, config: DuelConfig(info: SessionInfo(modelName: "demo", threadsPerEngine: 1)),
                               promptBuilder: WordPromptBuilder(),
                               makeEngines: { _ in DuelEngines(cached: DemoEngine(label: "c", reuse: true),
                                                               baseline: DemoEngine(label: "b", reuse: false)) })
        XCTAssertNil(term.failedStep, term.lastText)
        XCTAssertEqual(exit, .quit)
        XCTAssertFalse(saw.contains("new conversation"))
        XCTAssertFalse(saw.contains("answering"))
    }
}
