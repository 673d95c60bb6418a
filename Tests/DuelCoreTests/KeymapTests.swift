import XCTest
import DuelCore
import Engine

/// Every key from the issue, through the keymap and the reducer.
final class KeymapTests: XCTestCase {
    func testEnterSendsTheQuestionToBothEngines() {
        var s = TestDocs.state()
        TestDocs.type("Where is Beta?", &s)
        let effects = TestDocs.press([.enter], &s)
        guard case .startTurn(let turn)? = effects.first else { return XCTFail("no turn started: \(effects)") }
        XCTAssertEqual(turn.question, "Where is Beta?")
        XCTAssertEqual(turn.documents.map(\.id), ["a", "b", "c"])
        XCTAssertEqual(turn.maxTokens, 16)
        XCTAssertTrue(s.input.isEmpty)
        XCTAssertEqual(s[.cached].transcript.first, .user("Where is Beta?"))
        XCTAssertEqual(s[.baseline].transcript.first, .user("Where is Beta?"))
    }

    func testTabMovesFocusBothWays() {
        var s = TestDocs.state()
        TestDocs.press([.tab], &s)
        XCTAssertEqual(s.focus, .panel)
        TestDocs.press([.tab], &s)
        XCTAssertEqual(s.focus, .input)
        TestDocs.press([.backTab], &s)
        XCTAssertEqual(s.focus, .panel)
    }

    func testArrowsSelectBlocksInThePanel() {
        var s = TestDocs.state()
        TestDocs.press([.tab, .down, .down], &s)
        XCTAssertEqual(s.selectedBlock, 2)
        TestDocs.press([.down], &s)
        XCTAssertEqual(s.selectedBlock, 2, "stays on the last block")
        TestDocs.press([.up], &s)
        XCTAssertEqual(s.selectedBlock, 1)
        XCTAssertEqual(actions(for: .up, in: s), [.blockSelected(0)])
    }

    func testShiftDownAndJMoveTheBlockDown() {
        var s = TestDocs.state()
        TestDocs.press([.tab], &s)
        XCTAssertEqual(actions(for: .shiftDown, in: s), [.blockMoved(from: 0, to: 1)])
        TestDocs.press([.shiftDown], &s)
        XCTAssertEqual(s.blocks.map(\.id), ["b", "a", "c"])
        XCTAssertEqual(s.selectedBlock, 1, "selection follows the block")
        TestDocs.press([.char("J")], &s)
        XCTAssertEqual(s.blocks.map(\.id), ["b", "c", "a"])
        TestDocs.press([.char("J")], &s)
        XCTAssertEqual(s.blocks.map(\.id), ["b", "c", "a"], "cannot move past the end")
    }

    func testShiftUpAndKMoveTheBlockUp() {
        var s = TestDocs.state()
        TestDocs.press([.tab, .down, .down, .shiftUp], &s)
        XCTAssertEqual(s.blocks.map(\.id), ["a", "c", "b"])
        TestDocs.press([.char("K")], &s)
        XCTAssertEqual(s.blocks.map(\.id), ["c", "a", "b"])
        XCTAssertEqual(s.selectedBlock, 0)
        XCTAssertEqual(actions(for: .char("K"), in: s), [], "cannot move past the top")
    }

    func testMovedBlocksChangeTheNextPrompt() {
        var s = TestDocs.state()
        TestDocs.press([.tab, .shiftDown, .tab], &s)
        TestDocs.type("q", &s)
        guard case .startTurn(let t)? = TestDocs.press([.enter], &s).first else { return XCTFail() }
        XCTAssertEqual(t.documents.map(\.id), ["b", "a", "c"])
    }

    func testSpaceTogglesTheSelectedBlock() {
        var s = TestDocs.state()
        TestDocs.press([.tab, .down, .char(" ")], &s)
        XCTAssertEqual(s.blocks.map(\.included), [true, false, true])
        XCTAssertEqual(s.promptDocuments.map(\.id), ["a", "c"])
        TestDocs.press([.char(" ")], &s)
        XCTAssertEqual(s.blocks.map(\.included), [true, true, true])
    }

    func testPanelKeysTypeInTheInputLine() {
        var s = TestDocs.state()
        TestDocs.type("J K ?", &s)
        XCTAssertEqual(s.input.text, "J K ?")
        XCTAssertEqual(s.blocks.map(\.id), ["a", "b", "c"])
        XCTAssertFalse(s.showHelp, "? types when the line has text")
    }

    func testQuestionMarkAndF1OpenHelpAndAnyKeyClosesIt() {
        var s = TestDocs.state()
        TestDocs.press([.char("?")], &s)
        XCTAssertTrue(s.showHelp)
        XCTAssertTrue(s.input.isEmpty, "? on an empty line opens help instead of typing")
        TestDocs.press([.char("x")], &s)
        XCTAssertFalse(s.showHelp)
        XCTAssertTrue(s.input.isEmpty, "the closing key is not typed")
        TestDocs.press([.function(1)], &s)
        XCTAssertTrue(s.showHelp)
        TestDocs.press([.function(1)], &s)
        XCTAssertFalse(s.showHelp)
        TestDocs.press([.tab, .char("?")], &s)
        XCTAssertTrue(s.showHelp, "? opens help from the panel")
    }

    func testCtrlRResetsBothEnginesToCold() {
        var s = TestDocs.state()
        s.history = [Turn(question: "q", answer: "a")]
        reduce(&s, .cacheStatesUpdated(["a": .cached, "b": .partial(0.5)]))
        let effects = TestDocs.press([.ctrl("r")], &s)
        XCTAssertEqual(effects, [.resetEngines])
        XCTAssertTrue(s.history.isEmpty)
        XCTAssertEqual(s.blocks.map(\.cache), [.notCached, .notCached, .notCached])
    }

    func testCtrlNClearsHistoryAndKeepsCaches() {
        var s = TestDocs.state()
        s.history = [Turn(question: "q", answer: "a")]
        reduce(&s, .cacheStatesUpdated(["a": .cached]))
        let effects = TestDocs.press([.ctrl("n")], &s)
        XCTAssertEqual(effects, [], "no engine work when idle")
        XCTAssertTrue(s.history.isEmpty)
        XCTAssertEqual(s.blocks[0].cache, .cached)
    }

    func testCtrlCAndCtrlQQuit() {
        for key in [Key.ctrl("c"), .ctrl("q")] {
            var s = TestDocs.state()
            XCTAssertEqual(TestDocs.press([key], &s), [.quit])
            XCTAssertTrue(s.quitting)
            var h = TestDocs.state()
            h.showHelp = true
            XCTAssertEqual(TestDocs.press([key], &h), [.quit], "quits even with the overlay open")
        }
    }

    func testQuitWhileAnsweringCancelsTheTurn() {
        var s = TestDocs.state()
        TestDocs.type("q", &s)
        TestDocs.press([.enter], &s)
        XCTAssertEqual(TestDocs.press([.ctrl("c")], &s), [.cancelTurn, .quit])
    }

    func testLineEditingKeys() {
        var s = TestDocs.state()
        TestDocs.type("hello big world", &s)
        TestDocs.press([.left, .left], &s)
        XCTAssertEqual(s.input.cursor, 13)
        TestDocs.press([.right], &s)
        XCTAssertEqual(s.input.cursor, 14)
        TestDocs.press([.home], &s)
        XCTAssertEqual(s.input.cursor, 0)
        TestDocs.press([.end], &s)
        XCTAssertEqual(s.input.cursor, 15)
        TestDocs.press([.ctrl("a")], &s)
        XCTAssertEqual(s.input.cursor, 0)
        TestDocs.press([.ctrl("e")], &s)
        XCTAssertEqual(s.input.cursor, 15)
        TestDocs.press([.ctrl("w")], &s)
        XCTAssertEqual(s.input.text, "hello big ")
        TestDocs.press([.backspace], &s)
        XCTAssertEqual(s.input.text, "hello big")
        TestDocs.press([.home, .delete], &s)
        XCTAssertEqual(s.input.text, "ello big")
        TestDocs.press([.end, .left, .left, .left, .ctrl("u")], &s)
        XCTAssertEqual(s.input.text, "big")
        XCTAssertEqual(s.input.cursor, 0)
        TestDocs.press([.right, .ctrl("k")], &s)
        XCTAssertEqual(s.input.text, "b")
    }

    func testUpAndDownBrowseEarlierQuestions() {
        var s = TestDocs.state()
        for q in ["first", "second"] {
            TestDocs.type(q, &s)
            TestDocs.press([.enter], &s)
            reduce(&s, .turnCompleted)
        }
        TestDocs.type("draft", &s)
        TestDocs.press([.up], &s)
        XCTAssertEqual(s.input.text, "second")
        TestDocs.press([.up], &s)
        XCTAssertEqual(s.input.text, "first")
        TestDocs.press([.up], &s)
        XCTAssertEqual(s.input.text, "first", "stays on the oldest")
        TestDocs.press([.down], &s)
        XCTAssertEqual(s.input.text, "second")
        TestDocs.press([.down], &s)
        XCTAssertEqual(s.input.text, "draft", "back to what was being typed")
    }

    func testPageKeysScrollTranscripts() {
        var s = TestDocs.state()
        TestDocs.press([.pageUp], &s)
        XCTAssertEqual(s.scroll, 10)
        TestDocs.press([.pageDown, .pageDown], &s)
        XCTAssertEqual(s.scroll, 0)
    }

    func testEveryIssueKeyIsInTheTable() {
        let all = Set(Keymap.bindings.flatMap(\.keys))
        let fixed: [Key] = [.enter, .tab, .up, .down, .shiftUp, .shiftDown, .char("K"), .char("J"), .char(" "),
                            .char("?"), .function(1), .ctrl("r"), .ctrl("n"), .ctrl("c"), .ctrl("q"),
                            .left, .right, .home, .end, .ctrl("a"), .ctrl("e"), .ctrl("w"), .ctrl("u")]
        for k in fixed { XCTAssertTrue(all.contains(k), "\(k.display) missing from the keymap") }
    }

    func testMarkdownTableListsEveryBinding() {
        let md = Keymap.markdownTable()
        XCTAssertTrue(md.hasPrefix("| key | where | does |\n|---|---|---|\n"))
        XCTAssertEqual(md.split(separator: "\n").count, Keymap.bindings.count + 2)
        for b in Keymap.bindings { XCTAssertTrue(md.contains(b.summary), b.summary) }
        XCTAssertTrue(md.contains("`Shift-↓` / `J`"))
        XCTAssertTrue(md.contains("`Ctrl-C` / `Ctrl-Q`"))
    }

    func testFooterDependsOnFocus() {
        let input = Keymap.footerItems(focus: .input).map(\.label)
        let panel = Keymap.footerItems(focus: .panel).map(\.label)
        XCTAssertTrue(input.contains("send"))
        XCTAssertFalse(input.contains("move up"))
        XCTAssertTrue(panel.contains("move up"))
        XCTAssertTrue(panel.contains("include"))
        XCTAssertFalse(panel.contains("send"))
        XCTAssertTrue(input.contains("quit") && panel.contains("quit"))
    }

    func testNoKeyIsBoundTwiceInOneContext() {
        for ctx in [KeyContext.global, .input, .panel] {
            let keys = Keymap.bindings.filter { $0.context == ctx }.flatMap(\.keys)
            XCTAssertEqual(keys.count, Set(keys).count, "duplicate key in \(ctx)")
        }
    }
}
