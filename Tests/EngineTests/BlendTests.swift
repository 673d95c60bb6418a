import DuelCore
import Engine
import Foundation
import KVCache
import Llama
import TestSupport
import XCTest

/// CacheBlend segment reuse: documents seen in one order, asked about in another.
final class BlendTests: XCTestCase {
    static let system = PromptSegment(role: .system, tokens: Fixture.tokens(20, seed: 301))
    static let docX = PromptSegment(role: .document(id: "x"), tokens: Fixture.tokens(32, seed: 302))
    static let docY = PromptSegment(role: .document(id: "y"), tokens: Fixture.tokens(40, seed: 303))
    static let q1 = PromptSegment(role: .question, tokens: Fixture.tokens(10, seed: 304))
    static let q2 = PromptSegment(role: .question, tokens: Fixture.tokens(12, seed: 305))

    static let requestA = EngineRequest(segments: [system, docX, docY, q1], maxTokens: 6, turnSuffix: Fixture.tinyTurnSuffix)
    static let requestB = EngineRequest(segments: [system, docY, docX, q2], maxTokens: 6, turnSuffix: Fixture.tinyTurnSuffix)
    static let docTokens = docX.tokens.count + docY.tokens.count   // 72 candidates in B

    /// Runs A then B on a cached engine with `ratio`; B on a baseline. Returns (baseline B, cached B).
    func blendB(ratio: Double, encoding: KVEncoding = .int8) throws -> (base: GenerationResult, cached: GenerationResult) {
        XCTAssertNotEqual(Self.docX.tokens[0], Self.docY.tokens[0], "fixture: documents must differ at their first token")
        let cached = try Fixture.reuse(options: Fixture.tinyOptions(ratio: ratio, encoding: encoding))
        let a = try runRequest(cached, Self.requestA).result
        XCTAssertEqual(a.stats.computedFresh, Self.requestA.promptTokens.count, "A is cold")
        XCTAssertEqual(cached.cacheState(of: Self.docX.tokens), .cached, "docX stored after A")
        XCTAssertEqual(cached.cacheState(of: Self.docY.tokens), .cached, "docY stored after A")
        let c = try runRequest(cached, Self.requestB).result
        let b = try runRequest(try Fixture.baseline(), Self.requestB).result
        return (b, c)
    }

    func testFullRecomputeEqualsFullPrefill() throws {
        let (b, c) = try blendB(ratio: 1.0)
        let s = c.stats
        XCTAssertEqual(s.reusedExact, Self.system.tokens.count, "B shares only the system prompt exactly: \(split(s))")
        XCTAssertEqual(s.reusedBlended, 0, split(s))
        XCTAssertEqual(s.recomputed, Self.docTokens, "every document token recomputed: \(split(s))")
        XCTAssertEqual(s.computedFresh, Self.q2.tokens.count, split(s))
        XCTAssertEqual(s.checkedTokens, Self.docTokens)
        XCTAssertEqual(s.recomputeRatio, 1.0)
        let d = kl(b.firstTokenLogits!, c.firstTokenLogits!)
        XCTAssertLessThan(d, 1e-4, "KL(full ‖ blended at ratio 1) = \(d)")
        XCTAssertLessThanOrEqual(maxAbsDiff(b.firstTokenLogits!, c.firstTokenLogits!), 1e-3)
        XCTAssertEqual(c.tokens, b.tokens)
    }

    func testPartialRecomputeRecomputesTheRatio() throws {
        let (b, c) = try blendB(ratio: 0.15)
        let s = c.stats
        let keep = Int((0.15 * Double(Self.docTokens)).rounded())   // 11
        let heads = 2 * 4                                           // first 4 tokens of each document
        XCTAssertEqual(s.reusedExact, Self.system.tokens.count, split(s))
        XCTAssertGreaterThanOrEqual(s.recomputed, max(keep, heads), "top-\(keep) ∪ segment heads: \(split(s))")
        XCTAssertLessThanOrEqual(s.recomputed, keep + heads, "top-\(keep) ∪ segment heads: \(split(s))")
        XCTAssertEqual(s.reusedBlended, Self.docTokens - s.recomputed, split(s))
        XCTAssertEqual(s.computedFresh, Self.q2.tokens.count, split(s))
        XCTAssertGreaterThan(s.reusedBlended, 0)
        XCTAssertGreaterThan(s.hitRate, 0)
        XCTAssertEqual(s.hitRate, Double(s.reusedExact + s.reusedBlended) / Double(s.promptTokens), accuracy: 1e-12)
        XCTAssertEqual(s.checkedTokens, Self.docTokens)
        let d = kl(b.firstTokenLogits!, c.firstTokenLogits!)
        XCTAssertTrue(d.isFinite && d < 1, "KL(full ‖ blended at 0.15) = \(d)")
    }

    func testNoRecomputeReusesEveryDocumentToken() throws {
        let (b, c) = try blendB(ratio: 0)
        let s = c.stats
        XCTAssertEqual(s.recomputed, 0, split(s))
        XCTAssertEqual(s.reusedBlended, Self.docTokens, split(s))
        XCTAssertEqual(s.reusedExact, Self.system.tokens.count, split(s))
        XCTAssertEqual(s.computedFresh, Self.q2.tokens.count, split(s))
        let d = kl(b.firstTokenLogits!, c.firstTokenLogits!)
        XCTAssertTrue(d.isFinite && d < 1, "KL(full ‖ pure reuse) = \(d)")
    }

    /// Documents in a chat format start alike ("\n\n## " in ChatPromptBuilder). Reordered, the
    /// exact prefix could run a few tokens into the first moved document; that document is stored
    /// and must still be reused from the store (the engine snaps the prefix back to its start),
    /// not computed from scratch. (Failed before 059ea73: docY computed fresh, recomputed 32 of 70.)
    func testReorderedDocumentsWithACommonHeaderAreStillBlended() throws {
        let header: [Int32] = [7, 8]
        let x = PromptSegment(role: .document(id: "x"), tokens: header + Fixture.tokens(30, seed: 302))
        let y = PromptSegment(role: .document(id: "y"), tokens: header + Fixture.tokens(38, seed: 303))
        let cached = try Fixture.reuse(options: Fixture.tinyOptions(ratio: 1.0))
        _ = try runRequest(cached, EngineRequest(segments: [Self.system, x, y, Self.q1], maxTokens: 4, turnSuffix: Fixture.tinyTurnSuffix))
        let reqB = EngineRequest(segments: [Self.system, y, x, Self.q2], maxTokens: 4, turnSuffix: Fixture.tinyTurnSuffix)
        let c = try runRequest(cached, reqB).result
        let s = c.stats
        // Only the question is computed from scratch; the header may be exact or part of the reuse.
        XCTAssertEqual(s.computedFresh, Self.q2.tokens.count, "both moved documents reused: \(split(s))")
        XCTAssertGreaterThanOrEqual(s.reusedExact, Self.system.tokens.count, split(s))
        XCTAssertLessThanOrEqual(s.reusedExact, Self.system.tokens.count + header.count, split(s))
        XCTAssertEqual(s.reusedBlended, 0, "ratio 1: \(split(s))")
        let b = try runRequest(try Fixture.baseline(), reqB).result
        XCTAssertLessThan(kl(b.firstTokenLogits!, c.firstTokenLogits!), 1e-4, "ratio 1 equals the full prefill")
        XCTAssertEqual(c.tokens, b.tokens)
    }

    /// `checkLayers` deeper than the model: the 2-layer tiny model with the default [1, 2, 3].
    /// The blend plan's last check layer (3) is never reached, so every candidate runs every layer
    /// (logits equal the full prefill), yet the stats must not claim tokens were reused unrecomputed.
    ///
    /// KNOWN FAILING (engine bug, see report): stats say reusedBlended = 72, recomputed = 0.
    func testCheckLayersBeyondTheModelAreNotReportedAsReuse() throws {
        var o = Fixture.tinyOptions(ratio: 0.15)
        o.checkLayers = ReuseEngine.Options().checkLayers   // [1, 2, 3] on a 2-layer model
        let cached = try Fixture.reuse(options: o)
        _ = try runRequest(cached, Self.requestA)
        let c = try runRequest(cached, Self.requestB).result
        let b = try runRequest(try Fixture.baseline(), Self.requestB).result
        let d = kl(b.firstTokenLogits!, c.firstTokenLogits!)
        let s = c.stats
        XCTAssertEqual(s.reusedBlended + s.recomputed, Self.docTokens, split(s))
        if d < 1e-9 {
            // Everything was recomputed: the stats must say so.
            XCTAssertEqual(s.recomputed, Self.docTokens, "logits equal the full prefill (KL \(d)) but \(split(s))")
        } else {
            // Or the engine clamps the check layers and recomputes about 15 %.
            XCTAssertLessThanOrEqual(s.recomputed, 11 + 8, split(s))
        }
    }

    /// After a blended turn only the part before the first blended token is exact. The next turn
    /// may reuse the rest of the live context as is, but counted as blended, never as exact.
    func testBlendedKVIsNeverReusedAsExact() throws {
        let cached = try Fixture.reuse(options: Fixture.tinyOptions(ratio: 0))
        _ = try runRequest(cached, Self.requestA)
        let bResult = try runRequest(cached, Self.requestB).result
        let q3 = PromptSegment(role: .question, tokens: Fixture.tokens(9, seed: 306))
        let next = EngineRequest(segments: Self.requestB.segments.dropLast() + [
            PromptSegment(role: .history, tokens: Self.q2.tokens + bResult.tokens + Fixture.tinyTurnSuffix), q3,
        ], maxTokens: 4, turnSuffix: Fixture.tinyTurnSuffix)
        let s = try runRequest(cached, next).result.stats
        XCTAssertEqual(s.reusedExact, Self.system.tokens.count, "exact reuse stops at the first blended token: \(split(s))")
        XCTAssertEqual(s.computedFresh, q3.tokens.count, split(s))
        XCTAssertEqual(s.reusedBlended, s.promptTokens - Self.system.tokens.count - q3.tokens.count,
                       "the rest of the live context is reused as blended: \(split(s))")
    }

    /// RoPE re-rotation through the engine: a document computed after a 20-token system prompt, then
    /// reused after a 40-token one (pure reuse, f32 store), equals the same cache composed by hand
    /// with `KVState.shift(by: +20)`; and differs clearly from the cache left unrotated.
    func testMovedSegmentIsReRotatedByItsPositionDelta() throws {
        let (model, _) = try Fixture.tinyModel()
        let s1 = PromptSegment(role: .system, tokens: Fixture.tokens(20, seed: 311))
        let s2 = PromptSegment(role: .system, tokens: Fixture.tokens(40, seed: 312))
        let doc = PromptSegment(role: .document(id: "d"), tokens: Fixture.tokens(32, seed: 313))
        let q = PromptSegment(role: .question, tokens: Fixture.tokens(10, seed: 314))
        XCTAssertNotEqual(s1.tokens[0], s2.tokens[0])
        let cached = try Fixture.reuse(options: Fixture.tinyOptions(ratio: 0, encoding: .f32))
        _ = try runRequest(cached, EngineRequest(segments: [s1, doc, q], maxTokens: 2))
        let got = try runRequest(cached, EngineRequest(segments: [s2, doc, q], maxTokens: 2)).result
        XCTAssertEqual(got.stats.reusedBlended, 32, split(got.stats))
        XCTAssertEqual(got.stats.reusedExact, 0, split(got.stats))

        func composed(rotate: Bool) -> [Float] {
            let ctx = LlamaContext(model: model, threads: 1)
            let first = KVState(config: model.config)
            ctx.forward(tokens: s1.tokens + doc.tokens, positions: (0..<52).map { Int32($0) }, cache: first, logits: .none)
            let w = KVState(config: model.config)
            w.append(tokens: s2.tokens, positions: (0..<40).map { Int32($0) })
            w.copy(from: first, slots: 20..<52)                        // positions 20..<52
            if rotate {
                w.shift(40..<72, by: 20)
            } else {
                for i in 0..<32 { w.setSlot(40 + i, token: doc.tokens[i], position: Int32(40 + i)) }
            }
            w.append(tokens: q.tokens, positions: (72..<82).map { Int32($0) })
            let rows = Array(0..<40) + Array(72..<82)
            return ctx.forward(tokens: s2.tokens + q.tokens, positions: rows.map { Int32($0) }, cache: w, slots: rows)
        }
        let want = composed(rotate: true), unrotated = composed(rotate: false)
        let d = maxAbsDiff(got.firstTokenLogits!, want)
        XCTAssertLessThanOrEqual(d, 1e-4, "engine vs hand-composed shifted cache: max |Δ| = \(d)")
        XCTAssertGreaterThan(maxAbsDiff(unrotated, want), 1e-2, "the check is sensitive to the rotation")
    }

    /// The default model, ChatPromptBuilder format, two documents reordered: at ratio 1 the
    /// blended prompt equals the full prefill (KL < 1e-4, same tokens); at 0.15 it is closer to the
    /// full prefill than pure reuse (ratio 0).
    func testRealModelReorderedDocuments() throws {
        let (model, tok) = try Fixture.realModel()
        let builder = ChatPromptBuilder(tokenizer: tok)
        let x = Document(id: "x", title: "Rivers", text: "The Seine flows through Paris. The Tiber flows through Rome. The Thames flows through London.")
        let y = Document(id: "y", title: "Mountains", text: "Mont Blanc is the highest mountain in the Alps. The Matterhorn stands above Zermatt.")
        let a = EngineRequest(segments: builder.segments(system: "", documents: [x, y], history: [], question: "Which river flows through Rome?"),
                              maxTokens: 4, turnSuffix: builder.turnSuffix)
        let b = EngineRequest(segments: builder.segments(system: "", documents: [y, x], history: [], question: "Where is the Matterhorn?"),
                              maxTokens: 4, turnSuffix: builder.turnSuffix)
        let full = try runRequest(BaselineEngine(model: model, tokenizer: tok, threads: 2), b).result
        var kls: [Double: Double] = [:]
        var reusedDocTokens: [Double: Int] = [:]
        for ratio in [0.0, 0.15, 1.0] {
            var o = ReuseEngine.Options()
            o.recomputeRatio = ratio
            let cached = try ReuseEngine(model: model, tokenizer: tok, threads: 2, options: o)
            _ = try runRequest(cached, a)
            let c = try runRequest(cached, b).result
            kls[ratio] = kl(full.firstTokenLogits!, c.firstTokenLogits!)
            reusedDocTokens[ratio] = c.stats.reusedBlended + c.stats.recomputed
            print("real model, reordered documents, ratio \(ratio): \(split(c.stats)), KL \(kls[ratio]!)")
            if ratio == 1.0 {
                XCTAssertEqual(c.stats.reusedBlended, 0, split(c.stats))
                XCTAssertEqual(c.tokens, full.tokens, "ratio 1: same tokens as the full prefill")
            }
            if ratio == 0 { XCTAssertEqual(c.stats.recomputed, 0, split(c.stats)) }
        }
        XCTAssertEqual(reusedDocTokens[1.0]!, builder.documentTokens(x).count + builder.documentTokens(y).count,
                       "both documents reused (ratio 1: all recomputed)")
        XCTAssertEqual(Set(reusedDocTokens.values).count, 1, "the same candidates at every ratio: \(reusedDocTokens)")
        XCTAssertLessThan(kls[1.0]!, 1e-4, "real model: KL(full ‖ blended at ratio 1): \(kls)")
        XCTAssertLessThan(kls[0.15]!, kls[0.0]!, "recomputing 15 % is closer than pure reuse: \(kls)")
    }
}
