import XCTest
import DuelCore
import Engine

/// An engine that fails, or answers differently, for controller tests.
final class ScriptedEngine: InferenceEngine {
    let label: String
    var fail = false
    var answer: [Int32] = [1, 2, 3]
    var resets = 0
    var requests: [EngineRequest] = []
    init(label: String) { self.label = label }
    var cumulative = RequestStats()
    func reset() { resets += 1 }
    func cacheState(of tokens: [Int32]) -> SegmentCacheState { .partial(0.5) }
    func generate(_ request: EngineRequest, cancel: CancelFlag?, onEvent: (EngineEvent) -> Void) throws -> GenerationResult {
        requests.append(request)
        if fail { throw NSError(domain: "test", code: 7, userInfo: [NSLocalizedDescriptionKey: "boom"]) }
        onEvent(.started(promptTokens: request.promptTokens.count))
        onEvent(.firstToken(ttftSeconds: 0.5))
        for t in answer { onEvent(.token(id: t, text: " t\(t)")) }
        var s = RequestStats()
        s.promptTokens = request.promptTokens.count
        s.computedFresh = s.promptTokens
        s.ttftSeconds = 0.5
        return GenerationResult(tokens: answer, text: "", stats: s)
    }
}

final class SessionControllerTests: XCTestCase {
    func runTurns(_ schedule: Schedule) {
        let vocab = WordVocabulary()
        let builder = WordPromptBuilder.recording(into: vocab)
        let cached = DemoEngine(label: "cached", reuse: true, vocabulary: vocab)
        let baseline = DemoEngine(label: "baseline", reuse: false, vocabulary: vocab)
        let c = SessionController(cached: cached, baseline: baseline, promptBuilder: builder,
                                  documents: TestDocs.docs, schedule: schedule)
        var s = TestDocs.state()
        func pump() {
            c.waitUntilIdle()
            for a in c.queue.drain() { for e in reduce(&s, a) { c.perform(e) } }
        }
        c.refreshBlocks()
        pump()
        XCTAssertEqual(s.blocks.map(\.tokenCount), TestDocs.docs.map { builder.documentTokens($0).count })
        XCTAssertEqual(s.blocks.map(\.cache), [.notCached, .notCached, .notCached])

        for e in reduce(&s, .questionSubmitted("Where was Alpha Corp founded?")) { c.perform(e) }
        pump()
        XCTAssertFalse(s.turnInFlight, "\(schedule): turn completed")
        XCTAssertEqual(s[.cached].phase, .finished)
        XCTAssertEqual(s[.baseline].phase, .finished)
        XCTAssertEqual(s[.cached].lastAnswer, s[.baseline].lastAnswer)
        XCTAssertTrue(s[.baseline].lastAnswer?.contains("Oslo") ?? false, s[.baseline].lastAnswer ?? "")
        XCTAssertEqual(s.history.count, 1)
        XCTAssertEqual(s.history[0].answer, s[.baseline].lastAnswer)
        XCTAssertEqual(s.divergence?.identical, true)
        XCTAssertEqual(s.blocks.map(\.cache), [.cached, .cached, .cached])

        // Reorder, ask again: the cached side reuses, the baseline does not.
        reduce(&s, .blockMoved(from: 0, to: 2))
        for e in reduce(&s, .questionSubmitted("What does Beta make?")) { c.perform(e) }
        pump()
        let cs = s[.cached].lastStats!
        let bs = s[.baseline].lastStats!
        XCTAssertEqual(cs.promptTokens, bs.promptTokens, "identical prompts")
        XCTAssertGreaterThan(cs.hitRate, 0.5)
        XCTAssertGreaterThan(cs.recomputed, 0)
        XCTAssertEqual(bs.reusedTokens, 0)
        XCTAssertLessThan(cs.ttftSeconds, bs.ttftSeconds)
        XCTAssertEqual(s[.cached].cumulative.promptTokens, s[.cached].transcript.compactMap { e -> Int? in
            if case .turnStats(let st) = e { return st.promptTokens }
            return nil
        }.reduce(0, +), "overall counts every turn")
        XCTAssertGreaterThan(s.speedup ?? 0, 1)

        // Ctrl-R: both engines cold.
        for e in reduce(&s, .resetRequested) { c.perform(e) }
        pump()
        XCTAssertEqual(cached.cumulative.promptTokens, 0)
        XCTAssertEqual(s.blocks.map(\.cache), [.notCached, .notCached, .notCached])
    }

    func testParallelSchedule() { runTurns(.parallel) }
    func testAlternateSchedule() { runTurns(.alternate) }

    func testAlternateRunsCachedBeforeBaseline() {
        let a = ScriptedEngine(label: "cached")
        let b = ScriptedEngine(label: "baseline")
        let c = SessionController(cached: a, baseline: b, promptBuilder: WordPromptBuilder(), documents: [], schedule: .alternate)
        c.perform(.startTurn(TurnRequest(system: "s", documents: [], history: [], question: "q", maxTokens: 4)))
        c.waitUntilIdle()
        let events = c.queue.drain().compactMap { action -> String? in
            if case .engineStarted(let p) = action { return "start \(p.label)" }
            if case .answerFinished(let p, _, _) = action { return "done \(p.label)" }
            return nil
        }
        XCTAssertEqual(events, ["start cached", "done cached", "start baseline", "done baseline"])
        XCTAssertEqual(a.requests.first?.promptTokens, b.requests.first?.promptTokens)
    }

    func testDivergenceIsMeasuredWithTheProbe() {
        let a = ScriptedEngine(label: "cached")
        let b = ScriptedEngine(label: "baseline")
        b.answer = [1, 9, 3]
        let c = SessionController(cached: a, baseline: b, promptBuilder: WordPromptBuilder(), documents: [],
                                  schedule: .parallel, divergence: { _, _, _ in 0.25 })
        c.perform(.startTurn(TurnRequest(system: "s", documents: [], history: [], question: "q", maxTokens: 4)))
        c.waitUntilIdle()
        let actions = c.queue.drain()
        XCTAssertTrue(actions.contains(.divergenceMeasured(Divergence(identical: false, firstTokenKL: 0.25, firstDifferingToken: 1))))
        XCTAssertEqual(actions.last, .turnCompleted)
    }

    func testEngineErrorsBecomeActions() {
        let a = ScriptedEngine(label: "cached")
        let b = ScriptedEngine(label: "baseline")
        b.fail = true
        let c = SessionController(cached: a, baseline: b, promptBuilder: WordPromptBuilder(), documents: [], schedule: .parallel)
        c.perform(.startTurn(TurnRequest(system: "s", documents: [], history: [], question: "q", maxTokens: 4)))
        c.waitUntilIdle()
        let actions = c.queue.drain()
        XCTAssertTrue(actions.contains { if case .engineFailed(.baseline, let m) = $0 { return m.contains("boom") }; return false })
        XCTAssertEqual(actions.last, .turnCompleted, "the turn still ends")
    }

    func testResetDropsEventsOfTheCancelledTurn() {
        let vocab = WordVocabulary()
        let slow = DemoTiming(prefillSecondsPerToken: 0.002, decodeSecondsPerToken: 0.01, lookupSeconds: 0)
        let a = DemoEngine(label: "cached", reuse: true, timing: slow, vocabulary: vocab)
        let b = DemoEngine(label: "baseline", reuse: false, timing: slow, vocabulary: vocab)
        let c = SessionController(cached: a, baseline: b, promptBuilder: WordPromptBuilder.recording(into: vocab),
                                  documents: TestDocs.docs, schedule: .parallel)
        c.perform(.startTurn(TurnRequest(system: "s", documents: TestDocs.docs, history: [], question: "Where is Beta?", maxTokens: 40)))
        usleep(20_000)
        c.perform(.resetEngines)
        c.waitUntilIdle()
        let actions = c.queue.drain()
        XCTAssertFalse(actions.contains(.turnCompleted), "events of the cancelled turn are dropped: \(actions)")
        XCTAssertTrue(actions.contains(.enginesReset(cumulative: RequestStats())))
    }

    func testPromptBuilderContract() {
        let b = WordPromptBuilder()
        let segs = b.segments(system: "sys", documents: [TestDocs.docs[1], TestDocs.docs[0]],
                              history: [Turn(question: "q1", answer: "a1")], question: "q2")
        XCTAssertEqual(segs.map(\.role), [.system, .document(id: "b"), .document(id: "a"), .history, .question])
        XCTAssertEqual(segs[1].tokens, b.documentTokens(TestDocs.docs[1]))
        XCTAssertEqual(b.tokenCount(of: TestDocs.docs[0]), b.documentTokens(TestDocs.docs[0]).count)
    }
}
