import Foundation
import GGUF
import Llama
import TestSupport
import XCTest

/// Invariants of the forward pass and the KV state, on a tiny random model the test writes itself.
final class InvariantTests: XCTestCase {
    static var models: [GGUFWriter.TensorType: LlamaModel] = [:]
    func model(_ type: GGUFWriter.TensorType = .f32) throws -> LlamaModel {
        if let m = Self.models[type] { return m }
        let m = try LlamaModel(path: try TinyModel.path(type: type))
        Self.models[type] = m
        return m
    }

    let tokens: [Int32] = [5, 17, 3, 88, 42, 9, 61, 23, 77, 14, 30, 50]
    func positions(_ r: Range<Int>) -> [Int32] { r.map { Int32($0) } }

    func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
    }

    /// Prefills `tokens` into `cache` in pieces of the given sizes; returns the last piece's logits.
    func prefill(_ split: [Int], _ ctx: LlamaContext, _ cache: KVState) -> [Float] {
        var start = 0
        var got: [Float] = []
        for n in split {
            got = ctx.forward(tokens: Array(tokens[start..<(start + n)]), positions: positions(start..<(start + n)), cache: cache)
            start += n
        }
        return got
    }

    func full(_ m: LlamaModel, threads: Int = 1) -> [Float] {
        LlamaContext(model: m, threads: threads).forward(tokens: tokens, positions: positions(0..<tokens.count),
                                                         cache: KVState(config: m.config))
    }

    func testPrefillInPiecesEqualsPrefillAtOnce() throws {
        let m = try model()
        let want = full(m)
        let ctx = LlamaContext(model: m, threads: 1)
        for split in [[5, 7], [2, 3, 7], [4, 4, 4]] {
            let cache = KVState(config: m.config)
            let got = prefill(split, ctx, cache)
            XCTAssertLessThanOrEqual(maxDiff(got, want), 1e-3, "split \(split)")
            XCTAssertEqual(cache.count, tokens.count)
            XCTAssertEqual(cache.positions, positions(0..<tokens.count))
        }
    }

    func testDecodeAfterPrefillEqualsPrefillOfAll() throws {
        let m = try model()
        let want = full(m)
        let ctx = LlamaContext(model: m, threads: 1)
        let cache = KVState(config: m.config)
        ctx.forward(tokens: Array(tokens.prefix(6)), positions: positions(0..<6), cache: cache, logits: .none)
        var got: [Float] = []
        for i in 6..<tokens.count { got = ctx.forward(tokens: [tokens[i]], positions: [Int32(i)], cache: cache) }
        XCTAssertLessThanOrEqual(maxDiff(got, want), 1e-3)
    }

    /// The kernels compute a token's numbers by the same operations whatever batch it is in, so
    /// any split of the prompt (down to one-token decode steps) and any thread count give bitwise
    /// the same logits and the same K/V. Exact prefix reuse relies on this.
    func testAnySplitAndThreadCountIsBitwiseIdentical() throws {
        for type in [GGUFWriter.TensorType.q4_1, .q8_0, .f32] {
            let m = try model(type)
            func run(_ split: [Int], threads: Int) -> (logits: [Float], k: [Float], v: [Float]) {
                let ctx = LlamaContext(model: m, threads: threads)
                let cache = KVState(config: m.config)
                let got = prefill(split, ctx, cache)
                var k: [Float] = [], v: [Float] = []
                for l in 0..<m.config.layers {
                    let r = cache.read(layer: l, slots: 0..<tokens.count)
                    k += r.k; v += r.v
                }
                return (got, k, v)
            }
            let want = run([tokens.count], threads: 1)
            for (split, threads) in [([5, 7], 1), ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 1), ([4, 4, 4], 2), ([3, 9], 2), ([tokens.count], 2)] {
                let got = run(split, threads: threads)
                let firstLogit = got.logits.indices.first { got.logits[$0] != want.logits[$0] }
                XCTAssertNil(firstLogit, "\(type) split \(split), \(threads) threads: logit \(firstLogit ?? -1) differs")
                XCTAssertEqual(got.k, want.k, "\(type) split \(split), \(threads) threads: keys differ")
                XCTAssertEqual(got.v, want.v, "\(type) split \(split), \(threads) threads: values differ")
            }
        }
    }

    /// Asking for the last row's logits (the last layer then runs only that row) gives bitwise the
    /// last row of all logits, and the cache holds the same K/V whatever logits were asked for.
    func testLastRowLogitsAndCacheDoNotDependOnTheRowsAsked() throws {
        let m = try model(.q4_1)
        let ctx = LlamaContext(model: m, threads: 2)
        func run(_ rows: LlamaContext.LogitRows) -> (logits: [Float], kv: [Float]) {
            let cache = KVState(config: m.config)
            let logits = ctx.forward(tokens: tokens, positions: positions(0..<tokens.count), cache: cache, logits: rows)
            let kv = (0..<m.config.layers).flatMap { l -> [Float] in
                let r = cache.read(layer: l, slots: 0..<tokens.count)
                return r.k + r.v
            }
            return (logits, kv)
        }
        let all = run(.all), last = run(.last), none = run(.none)
        let V = m.config.vocabSize
        XCTAssertEqual(all.logits.count, tokens.count * V)
        XCTAssertEqual(last.logits, Array(all.logits[((tokens.count - 1) * V)...]))
        XCTAssertEqual(none.logits, [])
        XCTAssertEqual(last.kv, all.kv)
        XCTAssertEqual(none.kv, all.kv)
    }

    func testThreadCountDoesNotChangeResults() throws {
        let m = try model()
        XCTAssertLessThanOrEqual(maxDiff(full(m, threads: 1), full(m, threads: 2)), 1e-4)
    }

    func testDroppingAndReprefillingARangeRestoresLogits() throws {
        let m = try model()
        let want = full(m)
        let ctx = LlamaContext(model: m, threads: 1)
        let cache = KVState(config: m.config)
        ctx.forward(tokens: tokens, positions: positions(0..<tokens.count), cache: cache, logits: .none)
        cache.remove(4..<8)
        XCTAssertEqual(cache.count, tokens.count - 4)
        XCTAssertEqual(Array(cache.positions.prefix(5)), [0, 1, 2, 3, 8])
        // Re-prefill the dropped range (as new slots at the end; attention is by position),
        // then recompute the last token against the restored cache.
        cache.truncate(to: 4)
        let got = ctx.forward(tokens: Array(tokens[4...]), positions: positions(4..<tokens.count), cache: cache)
        XCTAssertLessThanOrEqual(maxDiff(got, want), 1e-3)
    }

    func testSlotOrderDoesNotMatterOnlyPositions() throws {
        let m = try model()
        let ctx = LlamaContext(model: m, threads: 1)
        let cache = KVState(config: m.config)
        ctx.forward(tokens: Array(tokens.prefix(8)), positions: positions(0..<8), cache: cache, logits: .none)
        // The same slots, stored in another order: attention goes by position, not by slot.
        let shuffled = KVState(config: m.config)
        shuffled.copy(from: cache, slots: 5..<8)
        shuffled.copy(from: cache, slots: 0..<5)
        XCTAssertEqual(shuffled.positions, [5, 6, 7, 0, 1, 2, 3, 4])
        let got = ctx.forward(tokens: Array(tokens[8...]), positions: positions(8..<tokens.count), cache: shuffled)
        XCTAssertLessThanOrEqual(maxDiff(got, full(m)), 1e-3)
    }

    func testCopyGivesAnIndependentCache() throws {
        let m = try model()
        let ctx = LlamaContext(model: m, threads: 1)
        let cache = KVState(config: m.config)
        ctx.forward(tokens: Array(tokens.prefix(8)), positions: positions(0..<8), cache: cache, logits: .none)
        let copy = cache.copy()
        cache.remove(0..<8)
        let got = ctx.forward(tokens: Array(tokens[8...]), positions: positions(8..<tokens.count), cache: copy)
        XCTAssertLessThanOrEqual(maxDiff(got, full(m)), 1e-3)
        XCTAssertEqual(cache.count, 0)
    }

    func testReadAndWriteRoundTrip() throws {
        let m = try model()
        let ctx = LlamaContext(model: m, threads: 1)
        let a = KVState(config: m.config)
        ctx.forward(tokens: Array(tokens.prefix(8)), positions: positions(0..<8), cache: a, logits: .none)
        let b = KVState(config: m.config)
        b.append(tokens: Array(tokens.prefix(8)), positions: positions(0..<8))
        for l in 0..<m.config.layers {
            let (k, v) = a.read(layer: l, slots: 0..<8)
            XCTAssertEqual(k.count, 8 * m.config.kvDim)
            b.write(layer: l, slot: 0, k: k, v: v, count: 8)
        }
        let got = ctx.forward(tokens: Array(tokens[8...]), positions: positions(8..<tokens.count), cache: b)
        XCTAssertLessThanOrEqual(maxDiff(got, full(m)), 1e-3)
    }

    /// A key rotated from position p to q equals the key computed at q, within f16 rounding: the
    /// cache holds f16, so the rotated key is rounded again, and the two runs' keys round apart,
    /// which later layers carry on (a wrong rotation is off by the keys' own size).
    func testShiftReRotatesKeysExactly() throws {
        let m = try model()
        let ctx = LlamaContext(model: m, threads: 1)
        let atP = KVState(config: m.config), atQ = KVState(config: m.config)
        let run = Array(tokens.prefix(5))
        // The same 5 tokens alone, at positions 3... and at 40...: only K differs (V has no position)
        // when each run sees only itself, so compare the first token, whose context is itself only.
        ctx.forward(tokens: run, positions: positions(3..<8), cache: atP, logits: .none)
        ctx.forward(tokens: run, positions: positions(40..<45), cache: atQ, logits: .none)
        atP.shift(0..<5, by: 37)
        XCTAssertEqual(atP.positions, atQ.positions)
        for l in 0..<m.config.layers {
            let (kp, vp) = atP.read(layer: l, slots: 0..<5)
            let (kq, vq) = atQ.read(layer: l, slots: 0..<5)
            // Attention only depends on relative positions, so every slot agrees, not just the first.
            XCTAssertLessThanOrEqual(maxDiff(kp, kq), 0x1p-5 * max(1, kq.map(abs).max()!), "layer \(l) keys")
            XCTAssertLessThanOrEqual(maxDiff(vp, vq), 0x1p-5 * max(1, vq.map(abs).max()!), "layer \(l) values")
        }
        // And layer 0 (whose input does not depend on position) within 4 f16 steps at the largest key.
        let (k0p, _) = atP.read(layer: 0, slots: 0..<5), (k0q, _) = atQ.read(layer: 0, slots: 0..<5)
        XCTAssertLessThanOrEqual(maxDiff(k0p, k0q), 0x1p-8 * k0q.map(abs).max()!)
    }

    /// Quantised weights: decode runs int8 kernels, prefill runs float32 sgemm on dequantised
    /// weights. They must agree up to activation quantisation.
    func testQuantisedDecodeAgreesWithPrefill() throws {
        for type in [GGUFWriter.TensorType.q8_0, .q4_1] {
            let m = try model(type)
            let want = full(m)
            let ctx = LlamaContext(model: m, threads: 2)
            let cache = KVState(config: m.config)
            ctx.forward(tokens: Array(tokens.dropLast()), positions: positions(0..<(tokens.count - 1)), cache: cache, logits: .none)
            let got = ctx.forward(tokens: [tokens.last!], positions: [Int32(tokens.count - 1)], cache: cache)
            let scale = want.map(abs).max()!
            XCTAssertLessThanOrEqual(maxDiff(got, want), 0.05 * scale, "\(type)")
            XCTAssertEqual(Sampler.argmax(got), Sampler.argmax(want), "\(type)")
        }
    }

    func testUnsupportedArchitectureIsNamed() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvduel-arch-\(getpid()).gguf").path
        try TinyModel.writer(architecture: "mamba").write(to: path)
        XCTAssertThrowsError(try LlamaModel(path: path)) { e in
            XCTAssertEqual("\(e)", "unsupported model: architecture 'mamba' (kvduel runs LLaMA-family models: granite_llama, llama, mistral, qwen2)")
        }
    }

    /// Shapes kvduel cannot compute are refused with one line naming what is wrong.
    func testUnsupportedShapesAreNamed() throws {
        var yarn = TinyModel.writer()
        yarn.set("llama.rope.scaling.type", .string("yarn"))
        var value = TinyModel.writer()
        value.set("llama.attention.value_length", .u32(32))
        var oneBias = TinyModel.writer()
        oneBias.addTensor("blk.0.attn_q.bias", dims: [TinyModel.dim], data: Array(repeating: 0, count: TinyModel.dim))
        let cases: [(GGUFWriter, String)] = [
            (yarn, "unsupported model: RoPE scaling 'yarn' (kvduel supports none, linear and Llama 3's rope_freqs factors)"),
            (value, "unsupported model: value head size 32 differs from key head size 16"),
            (oneBias, "unsupported model: tensor 'blk.0.attn_k.bias' is missing"),
        ]
        for (i, (w, message)) in cases.enumerated() {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvduel-shape-\(getpid())-\(i).gguf").path
            try w.write(to: path)
            XCTAssertThrowsError(try LlamaModel(path: path)) { e in XCTAssertEqual("\(e)", message) }
        }
    }

    /// Linear RoPE scaling by 2 turns position 2p into p: a block at positions 0, 2, 4, … of the
    /// scaled model has the keys of the same block at 0, 1, 2, … of the unscaled one.
    func testLinearRoPEScaling() throws {
        var w = TinyModel.writer()
        w.set("llama.rope.scaling.type", .string("linear"))
        w.set("llama.rope.scaling.factor", .f32(2))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvduel-linear-\(getpid()).gguf").path
        try w.write(to: path)
        let scaled = try LlamaModel(path: path), plain = try model()
        XCTAssertEqual(scaled.config.ropeFreqScale, 0.5)
        let a = KVState(config: scaled.config), b = KVState(config: plain.config)
        LlamaContext(model: scaled, threads: 1).forward(tokens: tokens, positions: tokens.indices.map { Int32(2 * $0) }, cache: a, logits: .none)
        LlamaContext(model: plain, threads: 1).forward(tokens: tokens, positions: positions(0..<tokens.count), cache: b, logits: .none)
        for l in 0..<plain.config.layers {
            let ka = a.read(layer: l, slots: 0..<tokens.count).k, kb = b.read(layer: l, slots: 0..<tokens.count).k
            XCTAssertLessThanOrEqual(maxDiff(ka, kb), 1e-4 * max(1, kb.map(abs).max()!), "layer \(l)")
        }
    }

    func testMissingTensorIsNamed() throws {
        var w = TinyModel.writer()
        w.addTensor("blk.0.attn_q.weight", dims: [32], data: Array(repeating: 0, count: 32))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvduel-dup-\(getpid()).gguf").path
        try w.write(to: path)
        XCTAssertThrowsError(try LlamaModel(path: path)) { e in
            XCTAssertTrue("\(e)".contains("duplicate tensor name 'blk.0.attn_q.weight'"), "\(e)")
        }
    }
}

/// One decode step over a long cache shares its attention out in three phases (by keys, heads and
/// output lanes); a batch runs kv_attend whole. On the default model, past the length where the
/// phases start (256 tokens), one- and two-token steps give the bits of a prefill of everything.
final class LongDecodeInvariantTests: XCTestCase {
    func testDecodeStepsOverALongCacheEqualOnePrefill() throws {
        guard DefaultModel.isAvailable else {
            if DefaultModel.required { XCTFail("default model missing at \(DefaultModel.path)") }
            throw XCTSkip("default model not found at \(DefaultModel.path)")
        }
        let m = try LlamaModel(path: DefaultModel.path)
        var rng: UInt64 = 7
        let tokens: [Int32] = (0..<301).map { _ in
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return Int32((rng >> 33) % 49000)
        }
        func pos(_ r: Range<Int>) -> [Int32] { r.map { Int32($0) } }
        let want = LlamaContext(model: m, threads: 2).forward(tokens: tokens, positions: pos(0..<301), cache: KVState(config: m.config))
        for threads in [2, 1] {
            let ctx = LlamaContext(model: m, threads: threads)
            let cache = KVState(config: m.config)
            ctx.forward(tokens: Array(tokens[0..<298]), positions: pos(0..<298), cache: cache, logits: .none)
            ctx.forward(tokens: Array(tokens[298..<300]), positions: pos(298..<300), cache: cache, logits: .none)   // two tokens
            let got = ctx.forward(tokens: [tokens[300]], positions: [300], cache: cache)                          // one
            let first = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }
            XCTAssertNil(first, "\(threads) threads: logit \(first?.offset ?? -1) is \(first?.element.0 ?? 0), a prefill of all gives \(first?.element.1 ?? 0)")
        }
    }
}
