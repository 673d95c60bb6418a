import Engine
import Foundation
import KVCache
import Llama
import TestSupport
import Tokenizer
import XCTest

/// Reuse on every model shape users bring (TestSupport/ShapeModels.swift, with the tiny vocabulary):
/// Llama 3.x (GQA 4:1, rope_freqs factors, base 500000), Qwen2 (biases, NEOX RoPE, base 1e6),
/// MQA with head size 64 on width 192.
final class ShapeReuseTests: XCTestCase {
    static var loaded: [String: (LlamaModel, Tokenizer)] = [:]
    func load(_ s: ModelShape) throws -> (model: LlamaModel, tokenizer: Tokenizer) {
        if let m = Self.loaded[s.name] { return m }
        let m = try LlamaModel(path: try ShapeModel.tinyPath(s))
        let t = try Tokenizer(gguf: m.file)
        Self.loaded[s.name] = (m, t)
        return (m, t)
    }

    func seg(_ role: PromptSegment.Role, _ n: Int, _ seed: UInt64) -> PromptSegment {
        PromptSegment(role: role, tokens: Fixture.tokens(n, seed: seed))
    }

    /// A second turn that extends the first (question + answer + suffix as history): the cached
    /// engine reuses the first turn exactly and gives bitwise the baseline's logits and tokens.
    func testExactReuseIsBitwiseTheBaseline() throws {
        for shape in ModelShape.all {
            let (m, t) = try load(shape)
            let base = BaselineEngine(model: m, tokenizer: t, threads: 1)
            let cached = try ReuseEngine(model: m, tokenizer: t, threads: 1, options: Fixture.tinyOptions())
            let sys = seg(.system, 24, 401), q1 = seg(.question, 9, 402), q2 = seg(.question, 7, 403)
            let r1 = EngineRequest(segments: [sys, q1], maxTokens: 6, turnSuffix: Fixture.tinyTurnSuffix, collectLogits: true)
            let b1 = try runRequest(base, r1).result
            let c1 = try runRequest(cached, r1).result
            XCTAssertEqual(c1.tokens, b1.tokens, shape.name)
            let history = PromptSegment(role: .history, tokens: q1.tokens + b1.tokens + Fixture.tinyTurnSuffix)
            let r2 = EngineRequest(segments: [sys, history, q2], maxTokens: 6, turnSuffix: Fixture.tinyTurnSuffix, collectLogits: true)
            let b2 = try runRequest(base, r2).result
            let c2 = try runRequest(cached, r2).result
            XCTAssertEqual(c2.stats.reusedExact, r1.promptTokens.count + b1.tokens.count + Fixture.tinyTurnSuffix.count,
                           "\(shape.name): \(split(c2.stats))")
            XCTAssertEqual(c2.tokens, b2.tokens, "\(shape.name): greedy tokens")
            XCTAssertEqual(c2.firstTokenLogits, b2.firstTokenLogits, "\(shape.name): first-token logits are not bitwise the baseline's")
            XCTAssertEqual(c2.stepLogits, b2.stepLogits, "\(shape.name): step logits are not bitwise the baseline's")
        }
    }

    /// Two documents seen in one order, then asked about in the other: at 100% recompute the
    /// blended prompt gives the full prefill's logits.
    func testBlendAtFullRecomputeEqualsFullPrefill() throws {
        for shape in ModelShape.all {
            let (m, t) = try load(shape)
            let sys = seg(.system, 20, 411), x = seg(.document(id: "x"), 32, 412), y = seg(.document(id: "y"), 40, 413)
            let cached = try ReuseEngine(model: m, tokenizer: t, threads: 1, options: Fixture.tinyOptions(ratio: 1))
            _ = try runRequest(cached, EngineRequest(segments: [sys, x, y, seg(.question, 10, 414)], maxTokens: 4))
            let rB = EngineRequest(segments: [sys, y, x, seg(.question, 12, 415)], maxTokens: 4)
            let c = try runRequest(cached, rB).result
            let b = try runRequest(BaselineEngine(model: m, tokenizer: t, threads: 1), rB).result
            XCTAssertEqual(c.stats.recomputed, 72, "\(shape.name): \(split(c.stats))")
            let d = kl(b.firstTokenLogits!, c.firstTokenLogits!)
            XCTAssertLessThan(d, 1e-4, "\(shape.name): KL(full ‖ blended at 100%) = \(d)")
            XCTAssertLessThanOrEqual(maxAbsDiff(b.firstTokenLogits!, c.firstTokenLogits!), 1e-3, shape.name)
            XCTAssertEqual(c.tokens, b.tokens, shape.name)
        }
    }

    /// A document first computed at the start of a prompt, then reused 300 positions later at 0%
    /// recompute (f32 store: loaded K/V are exact): the engine's logits equal those of a cache in
    /// which that document's K/V were computed alone at position 0 and moved by 300 with
    /// `KVState.shift`, and come close to a cache in which they were computed directly at the new
    /// position (the live cache is f16, so rotating and recomputing round apart; a tiny random
    /// model carries that to about 0.1 in the logits). Leaving the keys unrotated is far off
    /// (2-5), so the check sees a wrong rotation.
    func testBlockMovedByHundredsOfPositionsIsReRotatedExactly() throws {
        for shape in ModelShape.all {
            let (m, t) = try load(shape)
            let doc = seg(.document(id: "d"), 32, 421), sys = seg(.system, 300, 422), q = seg(.question, 10, 423)
            let cached = try ReuseEngine(model: m, tokenizer: t, threads: 1, options: Fixture.tinyOptions(ratio: 0, encoding: .f32))
            _ = try runRequest(cached, EngineRequest(segments: [doc, seg(.question, 8, 424)], maxTokens: 2))
            let got = try runRequest(cached, EngineRequest(segments: [sys, doc, q], maxTokens: 2)).result
            XCTAssertEqual(got.stats.reusedBlended, 32, "\(shape.name): \(split(got.stats))")
            XCTAssertEqual(got.stats.recomputed, 0, "\(shape.name): \(split(got.stats))")

            func composed(docAt start: Int32, shift: Int32 = 0) -> [Float] {
                let ctx = LlamaContext(model: m, threads: 1)
                let w = KVState(config: m.config)
                ctx.forward(tokens: sys.tokens, positions: (0..<300).map { Int32($0) }, cache: w, logits: .none)
                let alone = KVState(config: m.config)
                ctx.forward(tokens: doc.tokens, positions: (start..<(start + 32)).map { $0 }, cache: alone, logits: .none)
                alone.shift(0..<32, by: shift)
                w.copy(from: alone, slots: 0..<32)
                for i in 0..<32 { w.setSlot(300 + i, token: doc.tokens[i], position: Int32(300 + i)) }
                return ctx.forward(tokens: q.tokens, positions: (332..<342).map { Int32($0) }, cache: w)
            }
            let moved = composed(docAt: 0, shift: 300), direct = composed(docAt: 300), unrotated = composed(docAt: 0)
            let d = maxAbsDiff(got.firstTokenLogits!, moved)
            XCTAssertLessThanOrEqual(d, 1e-3, "\(shape.name): engine (moved by 300, re-rotated) vs moved by KVState.shift: max |Δ| = \(d)")
            let near = maxAbsDiff(got.firstTokenLogits!, direct), off = maxAbsDiff(unrotated, direct)
            XCTAssertLessThanOrEqual(near, 0.2 * off, "\(shape.name): re-rotated vs computed at the new position: max |Δ| = \(near), unrotated \(off)")
            XCTAssertGreaterThan(off, 1, "\(shape.name): the check is sensitive to the rotation")
        }
    }
}
