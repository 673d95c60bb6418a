import Dispatch
import Engine
import Foundation
import GGUF
import KVCache
import Llama
import TestSupport
import Tokenizer
import XCTest

/// Shared fixtures: the tiny random model (seeds 7 and 11), its tokenizer, the default model,
/// request builders and logit comparisons. Models are loaded once per process.
enum Fixture {
    private static let lock = NSLock()
    private static var real: (LlamaModel, Tokenizer)?

    /// The tiny 2-layer model of TestSupport (f32 weights, vocab 96, context 512).
    static func tinyModel(seed: UInt64 = 7) throws -> (model: LlamaModel, tokenizer: Tokenizer) {
        try TinyModel.loaded(seed: seed)
    }

    /// The default model, or skip (fail when KVDUEL_REQUIRE_MODEL=1).
    static func realModel() throws -> (model: LlamaModel, tokenizer: Tokenizer) {
        lock.lock()
        defer { lock.unlock() }
        if let r = real { return r }
        guard DefaultModel.isAvailable else {
            if DefaultModel.required { XCTFail("default model missing at \(DefaultModel.path): run bash scripts/fetch-model.sh") }
            throw XCTSkip("default model not found at \(DefaultModel.path); run bash scripts/fetch-model.sh")
        }
        let model = try LlamaModel(path: DefaultModel.path)
        let tok = try Tokenizer(gguf: model.file)
        real = (model, tok)
        return (model, tok)
    }

    static func baseline(seed: UInt64 = 7) throws -> BaselineEngine {
        let (m, t) = try tinyModel(seed: seed)
        return BaselineEngine(model: m, tokenizer: t, threads: 1)
    }

    /// Check layer 0 on the 2-layer tiny model: candidates not chosen keep their loaded K/V in layer 1.
    static func tinyOptions(ratio: Double = 0.15, disk: String? = nil, encoding: KVEncoding = .int8,
                            chunkSize: Int = 256) -> ReuseEngine.Options {
        var o = ReuseEngine.Options()
        o.recomputeRatio = ratio
        o.checkLayers = [0]
        o.diskDirectory = disk
        o.encoding = encoding
        o.chunkSize = chunkSize
        o.ramBytes = 64 << 20
        o.diskBytes = 64 << 20
        return o
    }

    static func reuse(seed: UInt64 = 7, options: ReuseEngine.Options = tinyOptions()) throws -> ReuseEngine {
        let (m, t) = try tinyModel(seed: seed)
        return try ReuseEngine(model: m, tokenizer: t, threads: 1, options: options)
    }

    /// `n` deterministic ordinary (non-control) token ids of the tiny vocabulary, 3..<96.
    static func tokens(_ n: Int, seed: UInt64) -> [Int32] {
        var rng = TestRNG(seed: seed)
        return (0..<n).map { _ in Int32(3 + rng.below(TinyModel.vocab - 3)) }
    }

    /// ChatML-like turn close of the tiny vocabulary: `<|im_end|>` then an ordinary token.
    static let tinyTurnSuffix: [Int32] = [2, 12]

    static func tempDir(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("kvduel-enginetests-\(getpid())-\(name)-\(UInt32.random(in: 0...UInt32.max))").path
        try? FileManager.default.removeItem(atPath: dir)
        return dir
    }
}

/// Everything one `generate` call produced, with the events in order and the wall time around it.
struct Run {
    var result: GenerationResult
    var events: [EngineEvent]
    var wallSeconds: Double
}

@discardableResult
func runRequest(_ engine: InferenceEngine, _ request: EngineRequest, cancel: CancelFlag? = nil,
         onEvent: ((EngineEvent) -> Void)? = nil) throws -> Run {
    var events: [EngineEvent] = []
    let t0 = DispatchTime.now().uptimeNanoseconds
    let r = try engine.generate(request, cancel: cancel) { e in
        events.append(e)
        onEvent?(e)
    }
    let t1 = DispatchTime.now().uptimeNanoseconds
    return Run(result: r, events: events, wallSeconds: Double(t1 - t0) / 1e9)
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count, !a.isEmpty else { return .infinity }
    var m: Float = 0
    for i in a.indices { m = max(m, abs(a[i] - b[i])) }
    return m.isNaN ? .infinity : m
}

/// KL(p ‖ q) of the softmax distributions of two logit vectors, in nats (`Divergence.kl`).
func kl(_ p: [Float], _ q: [Float]) -> Double { Divergence.kl(p, q) }

/// The four-way split of prompt tokens, as a readable string for messages.
func split(_ s: RequestStats) -> String {
    "prompt \(s.promptTokens) = exact \(s.reusedExact) + blended \(s.reusedBlended) + recomputed \(s.recomputed) + fresh \(s.computedFresh)"
}

extension EngineEvent {
    var kind: String {
        switch self {
        case .started: return "started"
        case .prefillProgress: return "prefillProgress"
        case .firstToken: return "firstToken"
        case .token: return "token"
        case .finished: return "finished"
        }
    }
}
