import DuelCore
import Engine
import Foundation
import TestSupport
import Tokenizer
import XCTest

/// Exact prefix reuse (live context or stored chunk chain) must give what a full prefill gives.
final class ExactReuseTests: XCTestCase {
    static let system = PromptSegment(role: .system, tokens: Fixture.tokens(24, seed: 201))

    /// A growing conversation on the tiny model: turn k's prompt is turn k−1's prompt with its
    /// question turned into history (question + the BASELINE's answer + turn suffix), then a new
    /// question. Returns per-turn (baseline, cached) runs; `between` runs before each turn's cached request.
    func conversation(turns: Int, cached: ReuseEngine, maxTokens: Int = 10, collectLogits: Bool = true,
                      between: (Int) -> Void = { _ in }) throws -> [(base: GenerationResult, cached: GenerationResult, prevLive: Int)] {
        let base = try Fixture.baseline()
        var segments = [Self.system]
        var out: [(GenerationResult, GenerationResult, Int)] = []
        var prevLive = 0   // previous prompt + answer + suffix: what the cached engine holds exactly
        for turn in 0..<turns {
            let q = Fixture.tokens(8 + 3 * turn, seed: 210 + UInt64(turn))
            segments.append(PromptSegment(role: .question, tokens: q))
            let req = EngineRequest(segments: segments, maxTokens: maxTokens, turnSuffix: Fixture.tinyTurnSuffix,
                                    collectLogits: collectLogits)
            let b = try runRequest(base, req).result
            between(turn)
            let c = try runRequest(cached, req).result
            out.append((b, c, prevLive))
            segments[segments.count - 1] = PromptSegment(role: .history, tokens: q + b.tokens + Fixture.tinyTurnSuffix)
            prevLive = req.promptTokens.count + b.tokens.count + Fixture.tinyTurnSuffix.count
        }
        return out
    }

    func assertSame(_ b: GenerationResult, _ c: GenerationResult, _ label: String, tolerance: Float = 1e-3,
                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(c.tokens, b.tokens, "\(label): greedy tokens", file: file, line: line)
        let d = maxAbsDiff(b.firstTokenLogits ?? [], c.firstTokenLogits ?? [])
        XCTAssertLessThanOrEqual(d, tolerance, "\(label): first-token logits max |Δ| = \(d)", file: file, line: line)
        if let bs = b.stepLogits, let cs = c.stepLogits, bs.count == cs.count {
            let worst = zip(bs, cs).map { maxAbsDiff($0, $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, tolerance, "\(label): step logits max |Δ| = \(worst)", file: file, line: line)
        } else {
            XCTAssertEqual(b.stepLogits?.count, c.stepLogits?.count, "\(label): step logits", file: file, line: line)
        }
    }

    /// Reuse from the live context (the previous turn): exactly the previous prompt + answer + suffix.
    func testMultiTurnLiveReuseEqualsBaseline() throws {
        let cached = try Fixture.reuse()
        let turns = try conversation(turns: 4, cached: cached)
        for (i, t) in turns.enumerated() {
            assertSame(t.base, t.cached, "turn \(i + 1)")
            let s = t.cached.stats
            XCTAssertEqual(s.reusedExact + s.reusedBlended + s.recomputed + s.computedFresh, s.promptTokens, split(s))
            if i == 0 {
                XCTAssertEqual(s.reusedExact, 0, "turn 1 is cold: \(split(s))")
            } else {
                XCTAssertGreaterThan(s.reusedExact, 0, "turn \(i + 1): \(split(s))")
                XCTAssertEqual(s.reusedExact, t.prevLive, "turn \(i + 1): reuses the previous prompt, answer and suffix: \(split(s))")
                XCTAssertEqual(s.computedFresh, s.promptTokens - t.prevLive, "turn \(i + 1): only the new question is computed: \(split(s))")
                XCTAssertEqual(s.reusedBlended + s.recomputed, 0, "turn \(i + 1): nothing blended: \(split(s))")
            }
        }
    }

    /// Without scoring, the answer's KV the next turn reuses is the one decoding left in the cache
    /// (only the last token and the turn suffix are computed after answering): still bitwise the
    /// baseline's.
    func testDecodedAnswerKVIsReusedBitwise() throws {
        let cached = try Fixture.reuse()
        let turns = try conversation(turns: 4, cached: cached, collectLogits: false)
        for (i, t) in turns.enumerated() {
            XCTAssertEqual(t.cached.tokens, t.base.tokens, "turn \(i + 1): greedy tokens")
            let b = t.base.firstTokenLogits ?? [], c = t.cached.firstTokenLogits ?? []
            XCTAssertEqual(b.count, c.count)
            let first = zip(b, c).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
            XCTAssertNil(first, "turn \(i + 1): first-token logit \(first?.offset ?? -1) differs")
            if i > 0 {
                XCTAssertEqual(t.cached.stats.reusedExact, t.prevLive, "turn \(i + 1): \(split(t.cached.stats))")
            }
        }
    }

    /// A new conversation each turn (live context dropped): the prefix comes from the stored chunk
    /// chain (16-token chunks, f32 entries so the loaded KV is bit-exact), partial tail included.
    func testMultiTurnStoreChainReuseEqualsBaseline() throws {
        let cached = try Fixture.reuse(options: Fixture.tinyOptions(encoding: .f32, chunkSize: 16))
        let turns = try conversation(turns: 4, cached: cached) { _ in cached.forgetLiveContext() }
        for (i, t) in turns.enumerated() {
            assertSame(t.base, t.cached, "turn \(i + 1)")
            if i > 0 {
                XCTAssertEqual(t.cached.stats.reusedExact, t.prevLive, "turn \(i + 1): chunk chain + partial tail: \(split(t.cached.stats))")
            }
        }
    }

    /// The same with the default int8 store encoding: lossy, so only close (KL) and same first token.
    func testMultiTurnStoreChainReuseInt8IsClose() throws {
        let cached = try Fixture.reuse(options: Fixture.tinyOptions(encoding: .int8, chunkSize: 16))
        let turns = try conversation(turns: 3, cached: cached) { _ in cached.forgetLiveContext() }
        for (i, t) in turns.enumerated().dropFirst() {
            XCTAssertEqual(t.cached.stats.reusedExact, t.prevLive, "turn \(i + 1): \(split(t.cached.stats))")
            let d = kl(t.base.firstTokenLogits!, t.cached.firstTokenLogits!)
            // The tiny model has random weights, which amplify K/V rounding more than a trained model
            // (on the default model int8 storage costs KL ≈ 0.001: `kvduel bench --kv-encoding`).
            XCTAssertLessThan(d, 3e-3, "turn \(i + 1): KL(full ‖ int8 reuse) = \(d)")
            XCTAssertEqual(t.cached.tokens.first, t.base.tokens.first, "turn \(i + 1): first token")
        }
    }

    /// The history holds an answer other than the one the cached engine generated (the UI keeps
    /// the baseline's): exact reuse stops where the answers diverge, and the output is the baseline's.
    func testHistoryWithAnotherAnswerReusesUpToTheDivergence() throws {
        let cached = try Fixture.reuse(), base = try Fixture.baseline()
        let q1 = PromptSegment(role: .question, tokens: Fixture.tokens(9, seed: 230))
        let r1 = EngineRequest(segments: [Self.system, q1], maxTokens: 8, turnSuffix: Fixture.tinyTurnSuffix)
        let own = try runRequest(cached, r1).result.tokens
        XCTAssertEqual(own.count, 8, "fixture: 8 answer tokens")
        var other = own
        other[3] = other[3] == 40 ? 41 : 40          // diverges at answer token 3
        let r2 = EngineRequest(segments: [Self.system, PromptSegment(role: .history, tokens: q1.tokens + other + Fixture.tinyTurnSuffix),
                                          PromptSegment(role: .question, tokens: Fixture.tokens(10, seed: 231))],
                               maxTokens: 8, turnSuffix: Fixture.tinyTurnSuffix)
        let c = try runRequest(cached, r2).result, b = try runRequest(base, r2).result
        XCTAssertEqual(c.stats.reusedExact, r1.promptTokens.count + 3, split(c.stats))
        assertSame(b, c, "diverged history")
    }

    /// A prompt that shares only part of the live context (an edited earlier turn) and then a
    /// prompt that is a strict prefix of it: reuse up to the shared part, baseline output.
    func testBranchingPromptsReuseTheSharedPrefix() throws {
        let cached = try Fixture.reuse(), base = try Fixture.baseline()
        let long = PromptSegment(role: .question, tokens: Fixture.tokens(40, seed: 240))
        _ = try runRequest(cached, EngineRequest(segments: [Self.system, long], maxTokens: 4, turnSuffix: Fixture.tinyTurnSuffix))
        var edited = long.tokens
        edited[20] = edited[20] == 50 ? 51 : 50
        let cases: [(String, [Int32], Int)] = [
            ("edited at 20", edited, Self.system.tokens.count + 20),
            ("strict prefix", Array(long.tokens.prefix(15)), Self.system.tokens.count + 15 - 1),
        ]
        for (name, q, want) in cases {
            let req = EngineRequest(segments: [Self.system, PromptSegment(role: .question, tokens: q)], maxTokens: 6,
                                    turnSuffix: Fixture.tinyTurnSuffix, collectLogits: true)
            let c = try runRequest(cached, req).result, b = try runRequest(base, req).result
            XCTAssertEqual(c.stats.reusedExact, want, "\(name): \(split(c.stats))")
            assertSame(b, c, name)
            // Back to the long prompt's live state for the next case.
            _ = try runRequest(cached, EngineRequest(segments: [Self.system, long], maxTokens: 4, turnSuffix: Fixture.tinyTurnSuffix))
        }
    }

    /// Teacher-forced scoring from a reused prefix equals the baseline's.
    func testTeacherForcedLogitsAfterReuseEqualBaseline() throws {
        let cached = try Fixture.reuse()
        let base = try Fixture.baseline()
        let q1 = PromptSegment(role: .question, tokens: Fixture.tokens(9, seed: 220))
        let r1 = EngineRequest(segments: [Self.system, q1], maxTokens: 6, turnSuffix: Fixture.tinyTurnSuffix)
        let a1 = try runRequest(base, r1).result.tokens
        _ = try runRequest(cached, r1)
        let forced = Fixture.tokens(7, seed: 221)
        let r2 = EngineRequest(segments: [Self.system, PromptSegment(role: .history, tokens: q1.tokens + a1 + Fixture.tinyTurnSuffix),
                                          PromptSegment(role: .question, tokens: Fixture.tokens(11, seed: 222))],
                               maxTokens: 4, turnSuffix: Fixture.tinyTurnSuffix, teacherForce: forced)
        let b = try runRequest(base, r2).result, c = try runRequest(cached, r2).result
        XCTAssertGreaterThan(c.stats.reusedExact, 0, split(c.stats))
        XCTAssertEqual(b.teacherLogits?.count, forced.count)
        XCTAssertEqual(c.teacherLogits?.count, forced.count)
        for i in 0..<min(b.teacherLogits?.count ?? 0, c.teacherLogits?.count ?? 0) {
            XCTAssertLessThanOrEqual(maxAbsDiff(b.teacherLogits![i], c.teacherLogits![i]), 1e-3, "teacher step \(i)")
        }
        XCTAssertEqual(c.teacherLogits?.first ?? [], c.firstTokenLogits ?? [1], "teacher step 0 = first-token logits")
        // Scoring does not disturb the answer or the next turn's exact reuse.
        XCTAssertEqual(c.tokens, b.tokens)
    }

    // MARK: - the default model, ChatML

    /// Three short chat turns on the real model: identical greedy tokens and logits within 1e-3.
    func testRealModelChatTurnsEqualBaseline() throws {
        let (model, tok) = try Fixture.realModel()
        let builder = ChatPromptBuilder(tokenizer: tok)
        let base = BaselineEngine(model: model, tokenizer: tok, threads: 2)
        let cached = try ReuseEngine(model: model, tokenizer: tok, threads: 2)
        let questions = ["What is the capital of France?", "And of Italy?", "Name one river in each."]
        var history: [Turn] = []
        var prevLive = 0
        for (i, q) in questions.enumerated() {
            let segs = builder.segments(system: "", documents: [], history: history, question: q)
            let req = EngineRequest(segments: segs, maxTokens: 24, turnSuffix: builder.turnSuffix)
            let b = try runRequest(base, req).result, c = try runRequest(cached, req).result
            assertSame(b, c, "real turn \(i + 1)")
            XCTAssertFalse(b.tokens.isEmpty, "real turn \(i + 1) answered")
            if i > 0 {
                XCTAssertEqual(c.stats.reusedExact, prevLive, "real turn \(i + 1): \(split(c.stats))")
            }
            history.append(Turn(question: q, answer: b.text, answerTokens: b.tokens))
            prevLive = req.promptTokens.count + b.tokens.count + builder.turnSuffix.count
        }
    }
}
