import Dispatch
import DuelCore
import Engine
import Foundation
import TestSupport
import XCTest

/// Two engines over one shared, read-only `LlamaModel`, running at the same time on two threads.
final class ConcurrencyTests: XCTestCase {
    /// A short conversation with a moved document, so the cached engine uses exact and blended reuse.
    static func requests() -> [EngineRequest] {
        let sys = PromptSegment(role: .system, tokens: Fixture.tokens(20, seed: 501))
        let d1 = PromptSegment(role: .document(id: "1"), tokens: Fixture.tokens(24, seed: 502))
        let d2 = PromptSegment(role: .document(id: "2"), tokens: Fixture.tokens(20, seed: 503))
        let q = (0..<3).map { PromptSegment(role: .question, tokens: Fixture.tokens(8 + $0, seed: 510 + UInt64($0))) }
        return [
            EngineRequest(segments: [sys, d1, d2, q[0]], maxTokens: 8, turnSuffix: Fixture.tinyTurnSuffix),
            EngineRequest(segments: [sys, d2, d1, q[1]], maxTokens: 8, turnSuffix: Fixture.tinyTurnSuffix),
            EngineRequest(segments: [sys, d1, d2, q[0], q[2]], maxTokens: 8, turnSuffix: Fixture.tinyTurnSuffix),
        ]
    }

    struct Outcome: Equatable {
        var tokens: [[Int32]]
        var logits: [[Float]]
    }

    static func play(_ engine: InferenceEngine, _ requests: [EngineRequest]) throws -> Outcome {
        var o = Outcome(tokens: [], logits: [])
        for r in requests {
            let g = try engine.generate(r, cancel: nil) { _ in }
            o.tokens.append(g.tokens)
            o.logits.append(g.firstTokenLogits ?? [])
        }
        return o
    }

    /// Plays `requests` on each engine at the same time, one thread per engine.
    static func playConcurrently(_ engines: [InferenceEngine], _ requests: [EngineRequest]) throws -> [Outcome] {
        var results = [Result<Outcome, Error>?](repeating: nil, count: engines.count)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: engines.count) { i in
            let r = Result { try play(engines[i], requests) }
            lock.lock(); results[i] = r; lock.unlock()
        }
        return try results.map { try XCTUnwrap($0).get() }
    }

    func testBaselineAndReuseEnginesConcurrentlyEqualSequential() throws {
        let (model, tok) = try Fixture.tinyModel()
        let reqs = Self.requests() + Self.requests() + Self.requests()
        // Sequential references, each engine alone (the cached one started cold for each round).
        let wantBase = try Self.play(BaselineEngine(model: model, tokenizer: tok, threads: 1), reqs)
        let wantCached = try Self.play(ReuseEngine(model: model, tokenizer: tok, threads: 1, options: Fixture.tinyOptions()), reqs)

        for round in 0..<20 {
            // Thread budgets 1 and 2: the second engine also fans out inside the parallel region.
            let base = BaselineEngine(model: model, tokenizer: tok, threads: round % 2 == 0 ? 1 : 2)
            let cached = try ReuseEngine(model: model, tokenizer: tok, threads: round % 2 == 0 ? 2 : 1, options: Fixture.tinyOptions())
            let got = try Self.playConcurrently([base, cached], reqs)
            let gotBase = got[0], gotCached = got[1]
            XCTAssertEqual(gotBase.tokens, wantBase.tokens, "round \(round): baseline tokens")
            XCTAssertEqual(gotCached.tokens, wantCached.tokens, "round \(round): cached tokens")
            for i in reqs.indices {
                XCTAssertLessThanOrEqual(maxAbsDiff(gotBase.logits[i], wantBase.logits[i]), 1e-4, "round \(round) request \(i): baseline logits")
                XCTAssertLessThanOrEqual(maxAbsDiff(gotCached.logits[i], wantCached.logits[i]), 1e-4, "round \(round) request \(i): cached logits")
            }
        }
    }

    /// Two cached engines with their own stores, on two threads, over the same model.
    func testTwoReuseEnginesConcurrently() throws {
        let (model, tok) = try Fixture.tinyModel()
        let reqs = Self.requests() + Self.requests()
        let want = try Self.play(ReuseEngine(model: model, tokenizer: tok, threads: 1, options: Fixture.tinyOptions()), reqs)
        for round in 0..<10 {
            let engines = try (0..<2).map { _ in try ReuseEngine(model: model, tokenizer: tok, threads: 1, options: Fixture.tinyOptions()) }
            let outcomes = try Self.playConcurrently(engines, reqs)
            for i in 0..<2 {
                let got = outcomes[i]
                XCTAssertEqual(got.tokens, want.tokens, "round \(round) engine \(i)")
                XCTAssertLessThanOrEqual(zip(got.logits, want.logits).map { maxAbsDiff($0, $1) }.max() ?? .infinity, 1e-4, "round \(round) engine \(i)")
            }
        }
    }

    /// The same on the default model (longer forwards, so the two threads really overlap).
    func testRealModelBaselineAndReuseConcurrently() throws {
        let (model, tok) = try Fixture.realModel()
        let builder = ChatPromptBuilder(tokenizer: tok)
        let doc = Document(id: "d", title: "Notes", text: "The meeting moved to Thursday at ten. Bring the quarterly report and the budget draft.")
        let reqs = ["When is the meeting?", "What should I bring?"].map {
            EngineRequest(segments: builder.segments(system: "", documents: [doc], history: [], question: $0),
                          maxTokens: 8, turnSuffix: builder.turnSuffix)
        }
        let wantBase = try Self.play(BaselineEngine(model: model, tokenizer: tok, threads: 1), reqs)
        let wantCached = try Self.play(ReuseEngine(model: model, tokenizer: tok, threads: 1), reqs)
        let base = BaselineEngine(model: model, tokenizer: tok, threads: 1)
        let cached = try ReuseEngine(model: model, tokenizer: tok, threads: 1)
        let got = try Self.playConcurrently([base, cached], reqs)
        let gotBase = got[0], gotCached = got[1]
        XCTAssertEqual(gotBase.tokens, wantBase.tokens)
        XCTAssertEqual(gotCached.tokens, wantCached.tokens)
        for i in reqs.indices {
            XCTAssertLessThanOrEqual(maxAbsDiff(gotBase.logits[i], wantBase.logits[i]), 1e-4, "request \(i): baseline logits")
            XCTAssertLessThanOrEqual(maxAbsDiff(gotCached.logits[i], wantCached.logits[i]), 1e-4, "request \(i): cached logits")
        }
    }
}
