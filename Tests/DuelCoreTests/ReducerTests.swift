import XCTest
import DuelCore
import Engine

final class ReducerTests: XCTestCase {
    func stats(prompt: Int, reused: Int, ttft: Double) -> RequestStats {
        var s = RequestStats()
        s.promptTokens = prompt
        s.reusedExact = reused
        s.computedFresh = prompt - reused
        s.ttftSeconds = ttft
        s.generatedTokens = 3
        return s
    }

    func testAFullTurnBuildsHistoryFromTheBaselineAnswer() {
        var s = TestDocs.state()
        reduce(&s, .questionSubmitted("Who?"))
        XCTAssertTrue(s.turnInFlight)
        reduce(&s, .firstTokenArrived(pane: .cached, ttft: 0.2))
        reduce(&s, .tokenArrived(pane: .cached, text: "Cached"))
        reduce(&s, .tokenArrived(pane: .cached, text: " says"))
        reduce(&s, .answerFinished(pane: .cached, stats: stats(prompt: 100, reused: 90, ttft: 0.2), cumulative: stats(prompt: 100, reused: 90, ttft: 0.2)))
        reduce(&s, .firstTokenArrived(pane: .baseline, ttft: 2.0))
        reduce(&s, .tokenArrived(pane: .baseline, text: "Baseline says"))
        reduce(&s, .answerFinished(pane: .baseline, stats: stats(prompt: 100, reused: 0, ttft: 2.0), cumulative: stats(prompt: 100, reused: 0, ttft: 2.0)))
        XCTAssertEqual(s[.cached].lastAnswer, "Cached says")
        reduce(&s, .divergenceMeasured(Divergence(identical: false, firstTokenKL: 0.5, firstDifferingToken: 0)))
        reduce(&s, .turnCompleted)
        XCTAssertFalse(s.turnInFlight)
        XCTAssertEqual(s.history, [Turn(question: "Who?", answer: "Baseline says")])
        XCTAssertEqual(s.speedup ?? 0, 10, accuracy: 1e-9)
        XCTAssertEqual(s.divergence?.firstTokenKL, 0.5)
        XCTAssertEqual(s.divergenceTurn, 1)
        XCTAssertEqual(s[.cached].ttftHistory, [0.2])
        XCTAssertEqual(s.turnsCompleted, 1)
        // The next prompt carries that history.
        guard case .startTurn(let t)? = reduce(&s, .questionSubmitted("Next?")).first else { return XCTFail() }
        XCTAssertEqual(t.history, [Turn(question: "Who?", answer: "Baseline says")])
    }

    func testLiveTTFTTicksWhileWaitingThenFreezes() {
        var s = TestDocs.state()
        reduce(&s, .tick(now: 100))
        reduce(&s, .questionSubmitted("q"))
        reduce(&s, .tick(now: 101.5))
        XCTAssertEqual(s.ttft(.cached)?.seconds ?? 0, 1.5, accuracy: 1e-9)
        XCTAssertEqual(s.ttft(.cached)?.live, true)
        reduce(&s, .firstTokenArrived(pane: .cached, ttft: 1.6))
        reduce(&s, .tick(now: 105))
        XCTAssertEqual(s.ttft(.cached)?.seconds, 1.6)
        XCTAssertEqual(s.ttft(.cached)?.live, false)
        XCTAssertEqual(s.ttft(.baseline)?.seconds ?? 0, 5, accuracy: 1e-9)
    }

    func testAlternateQueuesTheBaselineUntilItStarts() {
        var cfg = DuelConfig(info: SessionInfo(modelName: "m", schedule: .alternate), documents: TestDocs.docs)
        cfg.maxTokens = 8
        var s = AppState(config: cfg, now: 5, loading: false)
        reduce(&s, .questionSubmitted("q"))
        XCTAssertEqual(s[.cached].phase, .waiting(since: 5))
        XCTAssertEqual(s[.baseline].phase, .queued)
        XCTAssertTrue(s[.baseline].isBusy)
        reduce(&s, .tick(now: 9))
        reduce(&s, .engineStarted(pane: .baseline))
        XCTAssertEqual(s[.baseline].phase, .waiting(since: 9), "its TTFT counts from its own start")
        reduce(&s, .engineStarted(pane: .cached))
        XCTAssertEqual(s[.cached].phase, .waiting(since: 5), "already waiting: unchanged")
    }

    func testQuestionsAreRefusedWhileBusyOrLoadingOrEmpty() {
        var loading = TestDocs.state(loaded: false)
        XCTAssertEqual(reduce(&loading, .questionSubmitted("q")), [])
        XCTAssertNotNil(loading.notice)
        var s = TestDocs.state()
        XCTAssertEqual(reduce(&s, .questionSubmitted("   ")), [])
        XCTAssertEqual(reduce(&s, .questionSubmitted("one")).count, 1)
        TestDocs.type("two", &s)
        XCTAssertEqual(TestDocs.press([.enter], &s), [])
        XCTAssertEqual(s.input.text, "two", "a refused question stays in the input line")
        XCTAssertNotNil(s.notice)
    }

    func testExcludedBlocksStayOutOfThePrompt() {
        var s = TestDocs.state()
        reduce(&s, .blockToggled(id: "a"))
        reduce(&s, .blockMoved(from: 2, to: 0))
        guard case .startTurn(let t)? = reduce(&s, .questionSubmitted("q")).first else { return XCTFail() }
        XCTAssertEqual(t.documents.map(\.id), ["c", "b"])
    }

    func testInitialOrderFromAScenario() {
        var cfg = DuelConfig(info: TestDocs.info, documents: TestDocs.docs)
        cfg.initialOrder = ["c", "a"]
        let s = AppState(config: cfg)
        XCTAssertEqual(s.blocks.map(\.id), ["c", "a", "b"])
        XCTAssertEqual(s.blocks.map(\.included), [true, true, false])
    }

    func testResetWhileAnsweringStopsTheTurnAndClearsStats() {
        var s = TestDocs.state()
        reduce(&s, .questionSubmitted("q"))
        reduce(&s, .firstTokenArrived(pane: .cached, ttft: 0.1))
        reduce(&s, .tokenArrived(pane: .cached, text: "partial"))
        XCTAssertEqual(reduce(&s, .resetRequested), [.resetEngines])
        XCTAssertFalse(s.turnInFlight)
        XCTAssertEqual(s[.cached].phase, .idle)
        XCTAssertEqual(s[.cached].cumulative, RequestStats())
        XCTAssertEqual(s[.cached].lastAnswer, "partial [stopped]")
        XCTAssertNil(s.divergence)
        // Ctrl-R while loading does nothing.
        var loading = TestDocs.state(loaded: false)
        XCTAssertEqual(reduce(&loading, .resetRequested), [])
    }

    func testNewConversationWhileAnsweringCancels() {
        var s = TestDocs.state()
        reduce(&s, .questionSubmitted("q"))
        XCTAssertEqual(reduce(&s, .newConversationRequested), [.cancelTurn])
        XCTAssertFalse(s.turnInFlight)
        XCTAssertEqual(reduce(&s, .questionSubmitted("again")).count, 1, "a new question can go out at once")
    }

    /// A question that fails (e.g. longer than the context) must not poison later turns.
    func testAFailedTurnLeavesTheHistoryUnchanged() {
        var s = TestDocs.state()
        reduce(&s, .questionSubmitted("Who?"))
        reduce(&s, .tokenArrived(pane: .cached, text: "A"))
        reduce(&s, .answerFinished(pane: .cached, stats: stats(prompt: 10, reused: 0, ttft: 0.1), cumulative: stats(prompt: 10, reused: 0, ttft: 0.1)))
        reduce(&s, .tokenArrived(pane: .baseline, text: "A"))
        reduce(&s, .answerFinished(pane: .baseline, stats: stats(prompt: 10, reused: 0, ttft: 0.1), cumulative: stats(prompt: 10, reused: 0, ttft: 0.1)))
        reduce(&s, .turnCompleted)
        let before = s.history
        XCTAssertEqual(before, [Turn(question: "Who?", answer: "A")])

        for failing in [[PaneID.cached, .baseline], [.baseline], [.cached]] {
            reduce(&s, .questionSubmitted(String(repeating: "long ", count: 50)))
            for p in PaneID.allCases {
                if failing.contains(p) {
                    reduce(&s, .engineFailed(pane: p, message: "prompt of 9000 tokens exceeds the context"))
                } else {
                    reduce(&s, .tokenArrived(pane: p, text: "B"))
                    reduce(&s, .answerFinished(pane: p, stats: stats(prompt: 10, reused: 0, ttft: 0.1), cumulative: stats(prompt: 10, reused: 0, ttft: 0.1)))
                }
            }
            reduce(&s, .answerTokensKnown([1, 2]))
            reduce(&s, .turnCompleted)
            XCTAssertFalse(s.turnInFlight, "failing \(failing)")
            XCTAssertEqual(s.history, before, "failing \(failing)")
            XCTAssertEqual(s.turnsCompleted, 1, "failing \(failing)")
            XCTAssertNotNil(s.notice)
        }
        // The next question is sent with the history as it was before the failures.
        guard case .startTurn(let t)? = reduce(&s, .questionSubmitted("Next?")).first else { return XCTFail() }
        XCTAssertEqual(t.history, before)
    }

    func testEngineFailureIsShown() {
        var s = TestDocs.state()
        reduce(&s, .questionSubmitted("q"))
        reduce(&s, .engineFailed(pane: .baseline, message: "out of memory"))
        XCTAssertEqual(s[.baseline].phase, .failed("out of memory"))
        XCTAssertEqual(s[.baseline].transcript.last, .note("error: out of memory"))
    }

    func testLoadingAndEnvironmentActions() {
        var s = TestDocs.state(loaded: false)
        XCTAssertNotNil(s.loading)
        reduce(&s, .loadingProgress(fraction: 1.7, message: "weights"))
        XCTAssertEqual(s.loading, LoadingState(fraction: 1, message: "weights"))
        reduce(&s, .loadFailed("no model"))
        XCTAssertNil(s.loading)
        XCTAssertEqual(s.fatalError, "no model")
        reduce(&s, .resized(cols: 100, rows: 30))
        XCTAssertEqual([s.cols, s.rows], [100, 30])
        reduce(&s, .rssSampled(bytes: 1234))
        XCTAssertEqual(s.rssBytes, 1234)
        reduce(&s, .blockTokenCounts(["b": 42]))
        XCTAssertEqual(s.blocks.map(\.tokenCount), [nil, 42, nil])
        reduce(&s, .enginesReset(cumulative: RequestStats()))
        XCTAssertEqual(s.blocks[1].cache, .notCached)
    }

    func testReplayingRecordedActionsGivesTheSameState() {
        let recorded: [Action] = [
            .loaded, .tick(now: 1), .questionSubmitted("q"), .firstTokenArrived(pane: .cached, ttft: 0.1),
            .tokenArrived(pane: .cached, text: "x"), .focusChanged(.panel), .blockMoved(from: 0, to: 2),
            .answerFinished(pane: .cached, stats: RequestStats(), cumulative: RequestStats()), .turnCompleted,
        ]
        var a = TestDocs.state(loaded: false)
        var b = a
        for x in recorded { reduce(&a, x) }
        for x in recorded { reduce(&b, x) }
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.blocks.map(\.id), ["b", "c", "a"])
    }
}

final class LineEditorTests: XCTestCase {
    func testInsertInTheMiddleAndWideCharacters() {
        var e = LineEditor("ac")
        e.apply(.left)
        e.apply(.insert("b"))
        XCTAssertEqual(e.text, "abc")
        e.apply(.end)
        e.apply(.insert("東京🚀\n"))
        XCTAssertEqual(e.text, "abc東京🚀", "newlines are dropped")
        XCTAssertEqual(e.cursor, 6)
        e.apply(.backspace)
        XCTAssertEqual(e.text, "abc東京")
    }

    func testDeleteWordSkipsTrailingSpaces() {
        var e = LineEditor("one two   ")
        e.apply(.deleteWordBackward)
        XCTAssertEqual(e.text, "one ")
        e.apply(.deleteWordBackward)
        XCTAssertEqual(e.text, "")
        e.apply(.deleteWordBackward)
        XCTAssertEqual(e.text, "")
    }

    func testEdgesDoNotCrash() {
        var e = LineEditor()
        e.apply(.backspace)
        e.apply(.deleteForward)
        e.apply(.left)
        e.apply(.right)
        e.apply(.deleteToEnd)
        e.apply(.deleteToStart)
        XCTAssertEqual(e, LineEditor())
    }
}
