import CKernels
import Engine
import Foundation
import Llama

/// The lines both benches print first (and their JSON): the machine, the matrix-product path of
/// the C kernels, the thread count and the model, so figures from two runs can be told apart.
enum BenchHeader {
    static var kernelPath: String { String(cString: kv_qgemm_path()) }
    static var kernelPaths: String { String(cString: kv_qgemm_paths()) }

    static func machineLine() -> String {
        let m = MachineInfo.current
        return "machine : \(m.description), \(m.cpus) CPUs"
    }
    static func modelLine(_ model: LlamaModel, path: String) -> String {
        "model   : \(model.config.name) (\(path))"
    }
    static func kernelLine(hint: String = "") -> String {
        "kernel  : \(kernelPath) matrix products (this CPU has \(kernelPaths)\(hint))"
    }

    /// The shared JSON fields.
    static func json(model: LlamaModel, path: String, threads: Int) -> [String: Any] {
        let m = MachineInfo.current
        return ["machine": m.description, "cpus": m.cpus, "threads": threads, "model": model.config.name,
                "model_path": path, "kernel_path": kernelPath, "kernel_paths_supported": kernelPaths]
    }
}

/// The raw engine work of N new tokens on a cache already holding C tokens: one forward pass of
/// N tokens at positions C..<C+N, plus picking the first token, with nothing else (no lookup, no
/// store, no bookkeeping). It is the physical limit of a turn that reuses an exact prefix of C
/// tokens and computes N new ones. `bench engine --extend C+N` and `bench --scenario` (next to
/// each warm exact-prefix turn) both time it with this.
///
/// The cache's first C tokens are random vocabulary ids (attention costs the same whatever the
/// ids); they are computed, untimed, the first time a context that long is asked for.
final class ExtendProbe {
    let ctx: LlamaContext
    let cache: KVState
    private var rng: SplitMix64
    private let vocab: Int32
    /// Slots 0..<filled hold computed tokens at positions 0..<filled.
    private var filled = 0

    init(model: LlamaModel, threads: Int, capacity: Int, seed: UInt64 = 42) {
        ctx = LlamaContext(model: model, threads: threads)
        cache = KVState(config: model.config, capacity: capacity)
        rng = SplitMix64(seed: seed)
        vocab = Int32(model.config.vocabSize)
    }

    /// Random token ids away from the special tokens at both ends of the vocabulary.
    func randomTokens(_ n: Int) -> [Int32] { Self.randomTokens(n, vocab: vocab, rng: &rng) }

    static func randomTokens(_ n: Int, vocab: Int32, rng: inout SplitMix64) -> [Int32] {
        let span = UInt64(max(1, Int(vocab) - 1000))
        return (0..<n).map { _ in Int32(truncatingIfNeeded: rng.next() % span) + Int32(min(500, Int(vocab) / 4)) }
    }

    /// Leaves the cache holding exactly `c` computed tokens (computing more first if needed, untimed).
    func prepare(context c: Int) {
        if c > filled {
            cache.truncate(to: filled)
            let more = c - filled
            // In slices, as a long prompt would be prefilled: one pass's scratch stays bounded.
            var done = 0
            while done < more {
                let n = min(512, more - done)
                ctx.forward(tokens: randomTokens(n), positions: (Int32(filled + done)..<Int32(filled + done + n)).map { $0 },
                            cache: cache, logits: .none)
                done += n
            }
        }
        cache.truncate(to: c)
        filled = c
    }

    /// Times N new tokens at positions C..<C+N on the C tokens the cache holds (they stay in the
    /// cache after it). Returns the seconds and the last row's logits.
    func extend(_ new: [Int32]) -> (seconds: Double, logits: [Float]) {
        let c = cache.count
        let t0 = Clock.now()
        let logits = ctx.forward(tokens: new, positions: (Int32(c)..<Int32(c + new.count)).map { $0 }, cache: cache)
        _ = Sampler.argmax(logits)
        let s = Clock.seconds(since: t0)
        filled = c + new.count   // contiguous positions: a longer context can build on them
        return (s, logits)
    }

    /// The limit of a turn with an exact prefix of `context` tokens and `new` tokens to compute.
    func limit(context: Int, new: Int) -> Double {
        prepare(context: context)
        return extend(randomTokens(new)).seconds
    }
}

/// Median and range of one figure over repeated runs; every sample is kept.
public struct Spread: Equatable {
    public var samples: [Double]
    public init(_ samples: [Double]) { self.samples = samples }

    /// The middle sample (the mean of the two middle ones for an even count); 0 without samples.
    public var median: Double {
        let s = samples.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
    public var min: Double { samples.min() ?? 0 }
    public var max: Double { samples.max() ?? 0 }
    public var isEmpty: Bool { samples.isEmpty }
    /// Every sample times `k` (seconds to milliseconds).
    public func scaled(_ k: Double) -> Spread { Spread(samples.map { $0 * k }) }

    /// `{"median", "min", "max", "samples"}`.
    public var json: [String: Any] { ["median": median, "min": min, "max": max, "samples": samples] }

    /// "45" or, with more than one sample, "45 (43–48)": the median, then the range, scaled by
    /// `scale` and printed with `decimals` decimals.
    public func text(scale: Double = 1, decimals: Int = 0, suffix: String = "") -> String {
        let f = "%.\(decimals)f"
        let m = String(format: f, median * scale) + suffix
        guard samples.count > 1 else { return m }
        return m + " (" + String(format: f, min * scale) + "–" + String(format: f, max * scale) + ")"
    }
}

/// A TTFT breakdown in milliseconds, as the benches' JSON writes it (`load_ms` per tier; `sum_ms`
/// is every part, which adds up to the TTFT).
public func breakdownJSON(_ b: TTFTBreakdown) -> [String: Any] {
    ["tokenize_ms": b.tokenize * 1000, "lookup_ms": b.lookup * 1000,
     "load_ms": Dictionary(b.load.map { ($0.tier, $0.seconds * 1000) }, uniquingKeysWith: +),
     "rerotate_ms": b.rerotate * 1000, "blend_check_ms": b.blendCheck * 1000, "recompute_ms": b.recompute * 1000,
     "compute_new_ms": b.computeNew * 1000, "other_ms": b.other * 1000, "overlapped_load_ms": b.overlappedLoad * 1000,
     "sum_ms": b.total * 1000]
}
