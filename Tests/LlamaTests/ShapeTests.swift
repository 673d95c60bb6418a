import Foundation
import GGUF
import Llama
import TestSupport
import XCTest

/// The model shapes users bring (TestSupport/ShapeModels.swift): Llama 3.x (GQA 4:1, rope_freqs,
/// base 500000, untied output), Qwen2 (q/k/v biases, NEOX RoPE, base 1e6), MQA with key_length 64
/// on width 192. Final logits against llama.cpp's on the same files (Fixtures/shapes/README.md),
/// and the re-rotation of stored keys on each.
final class ShapeTests: XCTestCase {
    struct Reference {
        let ids: [Int32]
        let logits: [Float]
        let fnv: UInt64
        let bytes: Int
    }

    static let fixtures: URL? = Bundle.module.url(forResource: "Fixtures", withExtension: nil)?.appendingPathComponent("shapes")

    func reference(_ shape: ModelShape) throws -> Reference {
        let dir = try XCTUnwrap(Self.fixtures)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("shapes.json"))) as! [String: Any]
        let entry = try XCTUnwrap(json[shape.name] as? [String: Any], "no reference for \(shape.name)")
        let ids = (entry["prompt_ids"] as! [Int]).map(Int32.init)
        let fnv = UInt64(entry["gguf_fnv1a64"] as! String, radix: 16)!
        let data = try Data(contentsOf: dir.appendingPathComponent("\(shape.name).final_logits.f32"))
        let logits = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        return Reference(ids: ids, logits: logits, fnv: fnv, bytes: entry["gguf_bytes"] as! Int)
    }

    /// The SmolLM2 tokenizer of the default model (the shapes' vocabulary), or skip.
    static var vocabulary: ShapeModel.Vocabulary?
    func smolVocabulary() throws -> ShapeModel.Vocabulary {
        if let v = Self.vocabulary { return v }
        guard DefaultModel.isAvailable else {
            if DefaultModel.required { XCTFail("default model missing at \(DefaultModel.path): run bash scripts/fetch-model.sh") }
            throw XCTSkip("default model not found at \(DefaultModel.path) (the shapes use its tokenizer)")
        }
        let v = try ShapeModel.vocabulary(copiedFrom: GGUFFile(path: DefaultModel.path))
        Self.vocabulary = v
        return v
    }

    /// Writes a shape's model with the SmolLM2 vocabulary, into $KVDUEL_SHAPES_DIR when set (to
    /// run llama.cpp on the same file), else a temporary folder.
    func writeShape(_ s: ModelShape, suffix: String = "") throws -> String {
        let env = ProcessInfo.processInfo.environment["KVDUEL_SHAPES_DIR"].flatMap { $0.isEmpty ? nil : $0 }
        let dir = env ?? FileManager.default.temporaryDirectory.appendingPathComponent("kvduel-shapes-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/shape-\(s.name)\(suffix).gguf"
        try ShapeModel.writer(s, vocabulary: try smolVocabulary()).write(to: path)
        return path
    }

    func logits(_ path: String, _ ids: [Int32], decode: Bool) throws -> [Float] {
        let m = try LlamaModel(path: path)
        let ctx = LlamaContext(model: m, threads: 2)
        let cache = KVState(config: m.config)
        let n = ids.count
        if !decode { return ctx.forward(tokens: ids, positions: (0..<Int32(n)).map { $0 }, cache: cache) }
        ctx.forward(tokens: Array(ids.dropLast()), positions: (0..<Int32(n - 1)).map { $0 }, cache: cache, logits: .none)
        return ctx.forward(tokens: [ids[n - 1]], positions: [Int32(n - 1)], cache: cache)
    }

    func testShapesMatchLlamaCpp() throws {
        // Every file first: scripts/make-shape-fixtures.sh runs llama.cpp on them.
        let paths = try ModelShape.all.map { try writeShape($0) }
        for (shape, path) in zip(ModelShape.all, paths) {
            let ref = try reference(shape)
            // The file is byte for byte the one llama.cpp read.
            XCTAssertEqual(try fnv1a64(file: path), ref.fnv, "\(shape.name): regenerated GGUF differs from the one the reference was made from")
            XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int, ref.bytes)
            let m = try LlamaModel(path: path)
            XCTAssertEqual(m.config.headDim, shape.headDim)
            XCTAssertEqual(m.config.ropeNeox, shape.architecture == "qwen2")
            XCTAssertEqual(m.config.ropeFreqFactors, shape.ropeFreqFactors)
            // The reference distribution is peaked: KL and top-k say something.
            let p = Divergence.logSoftmax(ref.logits).map(exp)
            let entropy = -p.reduce(0.0) { $1 > 0 ? $0 + $1 * log($1) : $0 }
            print("golden shape \(shape.name): reference top-1 probability \(String(format: "%.3f", p.max()!)), entropy \(String(format: "%.2f", entropy)) nats (uniform: \(String(format: "%.2f", log(Double(p.count)))))")
            XCTAssertLessThan(entropy, 0.5 * log(Double(p.count)), "\(shape.name): reference distribution is not peaked")
            assertMatchesReference(try logits(path, ref.ids, decode: false), ref.logits, "shape \(shape.name) prefill")
            assertMatchesReference(try logits(path, ref.ids, decode: true), ref.logits, "shape \(shape.name) decode")
            if ProcessInfo.processInfo.environment["KVDUEL_SHAPES_DIR"] == nil { try? FileManager.default.removeItem(atPath: path) }
        }
    }

    /// The comparison can fail: the same weights with Llama 3's frequency factors left out, or
    /// Qwen2's NEOX pairs replaced by adjacent pairs, are outside the tolerances.
    func testTheComparisonSeesAWrongRotation() throws {
        var noFactors = ModelShape.llama3
        noFactors.ropeFreqFactors = nil
        var adjacentPairs = ModelShape.qwen2
        adjacentPairs.architecture = "llama"   // same tensors, normal RoPE
        for (wrong, right) in [(noFactors, ModelShape.llama3), (adjacentPairs, ModelShape.qwen2)] {
            let ref = try reference(right)
            let path = try writeShape(wrong, suffix: "-wrong")
            let c = ReferenceComparison(try logits(path, ref.ids, decode: false), ref.logits)
            print("golden shape \(right.name) with the wrong rotation: \(c.summary)")
            XCTAssertFalse(c.withinTolerance, "\(right.name): a wrong rotation passes the comparison (\(c.summary))")
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// On every shape: a block computed alone at positions 20… and moved by 300 with
    /// `KVState.shift` has the keys of the same block computed alone at 320… (every layer: the
    /// block sees only itself, and attention depends on relative positions only), within f16
    /// rounding: the cache holds f16 and the two runs round apart, which later layers carry on
    /// (about 2^-7 of the largest key or value by layer 1). A wrong pairing (NEOX vs normal) or
    /// missing frequency factors shows here: the move itself changes the keys by over 0.05 of it.
    func testShiftedKeysEqualKeysComputedAtTheNewPosition() throws {
        let tokens: [Int32] = [5, 17, 3, 88, 42, 9, 61, 23, 77, 14, 30, 50, 7, 66, 19, 40]
        for shape in ModelShape.all {
            let m = try LlamaModel(path: try ShapeModel.tinyPath(shape))
            let ctx = LlamaContext(model: m, threads: 1)
            let n = tokens.count
            let atP = KVState(config: m.config), atQ = KVState(config: m.config)
            ctx.forward(tokens: tokens, positions: (20..<Int32(20 + n)).map { $0 }, cache: atP, logits: .none)
            ctx.forward(tokens: tokens, positions: (320..<Int32(320 + n)).map { $0 }, cache: atQ, logits: .none)
            let unshifted = atP.copy()
            atP.shift(0..<n, by: 300)
            XCTAssertEqual(atP.positions, atQ.positions)
            for l in 0..<m.config.layers {
                let (kp, vp) = atP.read(layer: l, slots: 0..<n), (kq, vq) = atQ.read(layer: l, slots: 0..<n)
                let (k0, _) = unshifted.read(layer: l, slots: 0..<n)
                let scale = max(1, kq.map(abs).max()!)
                let d = zip(kp, kq).map { abs($0 - $1) }.max()!
                XCTAssertLessThanOrEqual(d, 0x1p-6 * scale, "\(shape.name) layer \(l): shifted keys differ from keys computed at the new position by \(d)")
                XCTAssertGreaterThan(zip(k0, kq).map { abs($0 - $1) }.max()!, 0.05 * scale, "\(shape.name) layer \(l): the move changes the keys")
                XCTAssertLessThanOrEqual(zip(vp, vq).map { abs($0 - $1) }.max()!, 0x1p-6 * max(1, vq.map(abs).max()!), "\(shape.name) layer \(l) values")
            }
        }
    }

    /// The shapes load with the parts that make them what they are.
    func testShapeConfigs() throws {
        for shape in ModelShape.all {
            let m = try LlamaModel(path: try ShapeModel.tinyPath(shape))
            let c = m.config
            XCTAssertEqual(c.qDim, shape.heads * shape.headDim, shape.name)
            XCTAssertEqual(c.kvDim, shape.kvHeads * shape.headDim, shape.name)
            XCTAssertEqual(c.ropeBase, shape.ropeBase, shape.name)
            XCTAssertEqual(m.weights.layers[0].qkvBias != nil, shape.biases, shape.name)
        }
        XCTAssertNotEqual(ModelShape.mqa.heads * ModelShape.mqa.headDim, ModelShape.mqa.dim, "MQA shape has H·Dh ≠ D")
    }
}
