import Dispatch
import Engine
import Foundation
import TestSupport
import XCTest

/// The `InferenceEngine` contract, one generic suite run over both engines on the tiny model.
final class ContractTests: XCTestCase {
    func testBaselineEngineContract() throws {
        try contractSuite { try Fixture.baseline() }
    }

    func testReuseEngineContract() throws {
        try contractSuite { try Fixture.reuse() }
    }

    /// The cached engine with pure reuse (no recompute) and a small chunk size follows the same contract.
    func testReuseEngineContractPureReuseSmallChunks() throws {
        try contractSuite { try Fixture.reuse(options: Fixture.tinyOptions(ratio: 0, chunkSize: 16)) }
    }

    // MARK: - the suite

    static let system = PromptSegment(role: .system, tokens: Fixture.tokens(20, seed: 101))
    static let doc = PromptSegment(role: .document(id: "d"), tokens: Fixture.tokens(24, seed: 102))
    static let question = PromptSegment(role: .question, tokens: Fixture.tokens(10, seed: 103))

    static func request(maxTokens: Int = 8, sampling: Sampling = .greedy) -> EngineRequest {
        EngineRequest(segments: [system, doc, question], maxTokens: maxTokens, sampling: sampling,
                      turnSuffix: Fixture.tinyTurnSuffix)
    }

    func contractSuite<E: InferenceEngine>(file: StaticString = #filePath, line: UInt = #line,
                                           _ make: () throws -> E) throws {
        let engine = try make()
        let label = engine.label
        let vocab = TinyModel.vocab
        var sinceReset: [RequestStats] = []

        // ---- events, stats, timing on a cold engine ----
        let req = Self.request()
        let promptCount = req.promptTokens.count
        XCTAssertEqual(engine.cacheState(of: Self.doc.tokens), .notCached, "\(label): cold cache state", file: file, line: line)
        let first = try runRequest(engine, req)
        sinceReset.append(first.result.stats)
        checkEvents(first, request: req, label: "\(label) cold", file: file, line: line)
        XCTAssertEqual(first.result.stats.computedFresh, promptCount, "\(label): a cold engine computes every token: \(split(first.result.stats))", file: file, line: line)
        let reference = first.result.tokens
        XCTAssertEqual(reference.count, 8, "\(label): fixture prompt must give 8 tokens without end of generation", file: file, line: line)
        XCTAssertEqual(first.result.firstTokenLogits?.count, vocab, "\(label): first-token logits over the vocabulary", file: file, line: line)
        if let logits = first.result.firstTokenLogits, let t = reference.first {
            XCTAssertEqual(t, Int32(logits.indices.max { logits[$0] < logits[$1] }!), "\(label): greedy first token is the argmax of the first-token logits", file: file, line: line)
        }

        // ---- greedy determinism: same request again (the cached engine now reuses it) ----
        let again = try runRequest(engine, req)
        sinceReset.append(again.result.stats)
        checkEvents(again, request: req, label: "\(label) repeat", file: file, line: line)
        XCTAssertEqual(again.result.tokens, reference, "\(label): same greedy request twice gives the same tokens", file: file, line: line)
        XCTAssertLessThanOrEqual(maxAbsDiff(again.result.firstTokenLogits ?? [], first.result.firstTokenLogits ?? []), 1e-3,
                                 "\(label): repeat first-token logits", file: file, line: line)

        // A fresh instance agrees too.
        let other = try make()
        XCTAssertEqual(try runRequest(other, req).result.tokens, reference, "\(label): a second instance gives the same tokens", file: file, line: line)

        // ---- maxTokens ----
        for m in [1, 3] {
            let r = try runRequest(engine, Self.request(maxTokens: m))
            sinceReset.append(r.result.stats)
            checkEvents(r, request: Self.request(maxTokens: m), label: "\(label) maxTokens \(m)", file: file, line: line)
            XCTAssertEqual(r.result.tokens, Array(reference.prefix(m)), "\(label): maxTokens \(m)", file: file, line: line)
            XCTAssertEqual(r.result.stats.generatedTokens, m, "\(label): generatedTokens with maxTokens \(m)", file: file, line: line)
        }

        // ---- seeded sampling is deterministic ----
        let sampled = Self.request(maxTokens: 8, sampling: Sampling(temperature: 0.9, topK: 20, topP: 0.95, seed: 42))
        let s1 = try runRequest(engine, sampled), s2 = try runRequest(engine, sampled)
        sinceReset += [s1.result.stats, s2.result.stats]
        XCTAssertEqual(s1.result.tokens, s2.result.tokens, "\(label): same seed, same sampled tokens", file: file, line: line)
        XCTAssertFalse(s1.result.tokens.isEmpty, "\(label): sampled something", file: file, line: line)

        // ---- TTFT counts from submittedAt ----
        var submitted = req
        submitted.submittedAt = DispatchTime.now().uptimeNanoseconds - 200_000_000
        let late = try runRequest(engine, submitted)
        sinceReset.append(late.result.stats)
        XCTAssertGreaterThanOrEqual(late.result.stats.ttftSeconds, 0.2, "\(label): TTFT counts from submittedAt", file: file, line: line)
        XCTAssertLessThanOrEqual(late.result.stats.ttftSeconds, late.wallSeconds + 0.2 + 0.05, "\(label): TTFT from submittedAt", file: file, line: line)

        // ---- errors: thrown before any event, nothing counted ----
        let before = engine.cumulative
        func expectError(_ r: EngineRequest, _ want: EngineError, _ what: String) {
            var events: [EngineEvent] = []
            XCTAssertThrowsError(try engine.generate(r, cancel: nil) { events.append($0) }, "\(label): \(what)", file: file, line: line) { e in
                XCTAssertEqual(e as? EngineError, want, "\(label): \(what)", file: file, line: line)
            }
            XCTAssertTrue(events.isEmpty, "\(label): \(what): no events before the error, got \(events.map(\.kind))", file: file, line: line)
        }
        expectError(EngineRequest(segments: [], maxTokens: 4), .emptyPrompt, "no segments")
        expectError(EngineRequest(segments: [PromptSegment(role: .system, tokens: []), PromptSegment(role: .question, tokens: [])], maxTokens: 4),
                    .emptyPrompt, "empty segments")
        let long = PromptSegment(role: .question, tokens: Fixture.tokens(500, seed: 104))
        expectError(EngineRequest(segments: [long], maxTokens: 13), .promptTooLong(tokens: 500, maxTokens: 13, context: 512), "500 + 13 > 512")
        let msg = EngineError.promptTooLong(tokens: 500, maxTokens: 13, context: 512).description
        XCTAssertEqual(msg, "prompt of 500 tokens plus 13 to generate exceeds the model's context of 512 tokens", file: file, line: line)
        XCTAssertFalse(msg.contains("\n"), "one line", file: file, line: line)
        expectError(EngineRequest(segments: [Self.system, PromptSegment(role: .question, tokens: [5, Int32(vocab), 6])], maxTokens: 4),
                    .invalidToken(Int32(vocab)), "token = vocab size")
        expectError(EngineRequest(segments: [PromptSegment(role: .question, tokens: [5, -1])], maxTokens: 4), .invalidToken(-1), "negative token")
        XCTAssertEqual(engine.cumulative, before, "\(label): failed requests are not counted", file: file, line: line)

        // Exactly at the context limit is allowed.
        let edge = EngineRequest(segments: [long], maxTokens: 12, turnSuffix: Fixture.tinyTurnSuffix)
        let e = try runRequest(engine, edge)
        sinceReset.append(e.result.stats)
        checkEvents(e, request: edge, label: "\(label) at the context limit", file: file, line: line)
        XCTAssertLessThanOrEqual(e.result.tokens.count, 12, file: file, line: line)

        // maxTokens 0: the prompt only, no first token.
        let none = try runRequest(engine, Self.request(maxTokens: 0))
        sinceReset.append(none.result.stats)
        XCTAssertEqual(none.events.map(\.kind).filter { $0 == "firstToken" || $0 == "token" }, [], "\(label): maxTokens 0", file: file, line: line)
        XCTAssertEqual(none.events.last?.kind, "finished", "\(label): maxTokens 0 finishes", file: file, line: line)
        XCTAssertEqual(none.result.tokens, [], "\(label): maxTokens 0", file: file, line: line)
        let afterNone = try runRequest(engine, req)
        sinceReset.append(afterNone.result.stats)
        XCTAssertEqual(afterNone.result.tokens, reference, "\(label): after maxTokens 0", file: file, line: line)

        // ---- cancellation ----
        let flag = CancelFlag()
        var seen = 0
        let cancelled = try runRequest(engine, Self.request(maxTokens: 8), cancel: flag) { ev in
            if case .token(let id, _) = ev, id >= 0 { seen += 1; if seen == 3 { flag.cancel() } }
        }
        sinceReset.append(cancelled.result.stats)
        XCTAssertEqual(cancelled.result.tokens, Array(reference.prefix(3)), "\(label): cancelled after the 3rd token", file: file, line: line)
        XCTAssertEqual(cancelled.events.last?.kind, "finished", "\(label): a cancelled request still finishes", file: file, line: line)
        let preCancelled = CancelFlag()
        preCancelled.cancel()
        let pc = try runRequest(engine, Self.request(maxTokens: 8), cancel: preCancelled)
        sinceReset.append(pc.result.stats)
        XCTAssertLessThanOrEqual(pc.result.tokens.count, 1, "\(label): cancelled before start: at most the first token", file: file, line: line)
        // The engine is fine afterwards.
        let after = try runRequest(engine, req)
        sinceReset.append(after.result.stats)
        XCTAssertEqual(after.result.tokens, reference, "\(label): after a cancelled request", file: file, line: line)

        // ---- cumulative and reset ----
        let c = engine.cumulative
        XCTAssertEqual(c.promptTokens, sinceReset.reduce(0) { $0 + $1.promptTokens }, "\(label): cumulative prompt tokens", file: file, line: line)
        XCTAssertEqual(c.generatedTokens, sinceReset.reduce(0) { $0 + $1.generatedTokens }, "\(label): cumulative generated", file: file, line: line)
        XCTAssertEqual(c.reusedExact + c.reusedBlended + c.recomputed + c.computedFresh, c.promptTokens, "\(label): cumulative split \(split(c))", file: file, line: line)
        XCTAssertGreaterThan(c.ttftSeconds, 0, file: file, line: line)
        engine.reset()
        XCTAssertEqual(engine.cumulative, RequestStats(), "\(label): reset zeroes cumulative", file: file, line: line)
        XCTAssertEqual(engine.memory.liveKVBytes, 0, "\(label): reset drops the live KV", file: file, line: line)
        XCTAssertEqual(engine.memory.storeRAMBytes, 0, "\(label): reset empties the store", file: file, line: line)
        XCTAssertEqual(engine.cacheState(of: Self.doc.tokens), .notCached, "\(label): reset forgets segments", file: file, line: line)
        let cold = try runRequest(engine, req)
        XCTAssertEqual(cold.result.tokens, reference, "\(label): after reset", file: file, line: line)
        XCTAssertEqual(cold.result.stats.computedFresh, promptCount, "\(label): after reset nothing is reused: \(split(cold.result.stats))", file: file, line: line)
        XCTAssertEqual(engine.cumulative, cold.result.stats, "\(label): cumulative after reset + 1 request", file: file, line: line)
    }

    /// started, prefillProgress+, firstToken, token*, finished; consistent payloads and stats.
    func checkEvents(_ r: Run, request: EngineRequest, label: String, file: StaticString, line: UInt) {
        let n = request.promptTokens.count
        let kinds = r.events.map(\.kind)
        var state = 0   // 0 start, 1 started, 2 progress, 3 first token, 4 tokens, 5 finished
        var ok = true
        for k in kinds {
            switch (state, k) {
            case (0, "started"): state = 1
            case (1, "prefillProgress"), (2, "prefillProgress"): state = 2
            case (2, "firstToken"): state = 3
            case (3, "token"), (4, "token"): state = 4
            case (2, "finished"), (3, "finished"), (4, "finished"): state = 5
            default: ok = false
            }
        }
        XCTAssertTrue(ok && state == 5, "\(label): event order \(kinds)", file: file, line: line)
        if request.maxTokens > 0 {
            XCTAssertEqual(kinds.filter { $0 == "firstToken" }.count, 1, "\(label): one firstToken event", file: file, line: line)
        }
        let stats = r.result.stats
        var lastDone = 0, ids: [Int32] = [], text = ""
        var ttftEvent: Double?
        for e in r.events {
            switch e {
            case .started(let p): XCTAssertEqual(p, n, "\(label): started(promptTokens)", file: file, line: line)
            case .prefillProgress(let done, let total):
                XCTAssertEqual(total, n, "\(label): progress total", file: file, line: line)
                XCTAssertTrue(done >= lastDone && done >= 1 && done <= n, "\(label): progress \(done) after \(lastDone) of \(n)", file: file, line: line)
                lastDone = done
            case .firstToken(let t): ttftEvent = t
            case .token(let id, let piece):
                if id >= 0 { ids.append(id) }
                text += piece
            case .finished(let s): XCTAssertEqual(s, stats, "\(label): finished carries the result's stats", file: file, line: line)
            }
        }
        XCTAssertEqual(lastDone, n, "\(label): progress ends at the prompt size", file: file, line: line)
        XCTAssertEqual(ids, r.result.tokens, "\(label): token events = result tokens", file: file, line: line)
        XCTAssertEqual(text, r.result.text, "\(label): token texts = result text", file: file, line: line)
        XCTAssertEqual(ttftEvent, stats.ttftSeconds, "\(label): firstToken event = stats TTFT", file: file, line: line)
        XCTAssertGreaterThan(stats.ttftSeconds, 0, "\(label): TTFT > 0", file: file, line: line)
        XCTAssertLessThanOrEqual(stats.ttftSeconds, r.wallSeconds, "\(label): TTFT ≤ total time", file: file, line: line)
        XCTAssertEqual(stats.promptTokens, n, "\(label): promptTokens", file: file, line: line)
        XCTAssertEqual(stats.reusedExact + stats.reusedBlended + stats.recomputed + stats.computedFresh, n, "\(label): \(split(stats))", file: file, line: line)
        XCTAssertTrue(stats.reusedExact >= 0 && stats.reusedBlended >= 0 && stats.recomputed >= 0 && stats.computedFresh >= 1,
                      "\(label): parts ≥ 0 and the last token computed: \(split(stats))", file: file, line: line)
        XCTAssertLessThan(stats.reusedExact, n, "\(label): the last prompt token is never reused", file: file, line: line)
        XCTAssertLessThanOrEqual(r.result.tokens.count, request.maxTokens, "\(label): maxTokens", file: file, line: line)
        XCTAssertTrue(stats.generatedTokens == r.result.tokens.count || stats.generatedTokens == r.result.tokens.count + 1,
                      "\(label): generatedTokens \(stats.generatedTokens) for \(r.result.tokens.count) tokens", file: file, line: line)
        XCTAssertTrue((0...1).contains(stats.hitRate), "\(label): hit rate \(stats.hitRate)", file: file, line: line)
    }
}
