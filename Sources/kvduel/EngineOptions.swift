import ArgumentParser
import DuelCore
import Engine
import Foundation
import KVCache
import Llama
import Tokenizer

/// Options shared by `chat` and `bench`: the cached engine's settings.
struct CacheOptions: ParsableArguments {
    @Option(help: "Share of a reused segment's tokens recomputed (CacheBlend), 0...1.")
    var recompute: Double = ReuseEngine.Options().recomputeRatio
    @Option(help: "RAM budget of the KV store, MiB.")
    var cacheMB: Int = 512
    @Option(help: "Stored KV encoding: int8, f16 or f32.")
    var kvEncoding: String = "int8"
    @Option(help: "Layers whose K/V deviation chooses the tokens to recompute, comma-separated.")
    var checkLayers: String = ReuseEngine.Options().checkLayers.map(String.init).joined(separator: ",")

    func engineOptions(diskDirectory: String?) throws -> ReuseEngine.Options {
        try Self.engineOptions(recompute: recompute, cacheMB: cacheMB, kvEncoding: kvEncoding,
                               checkLayers: checkLayers, diskDirectory: diskDirectory)
    }

    static func engineOptions(recompute: Double, cacheMB: Int, kvEncoding: String, checkLayers: String = "1,2,3",
                              diskDirectory: String?) throws -> ReuseEngine.Options {
        guard (0...1).contains(recompute) else { throw CLIError("--recompute must be between 0 and 1, got \(recompute)") }
        let cacheBytes = try checked(Limits.cacheBytes(megabytes: cacheMB))
        guard let enc = KVEncoding(name: kvEncoding) else { throw CLIError("--kv-encoding must be int4, int8, f16 or f32, got '\(kvEncoding)'") }
        var o = ReuseEngine.Options()
        o.recomputeRatio = recompute
        o.ramBytes = cacheBytes
        o.encoding = enc
        o.diskDirectory = diskDirectory
        let layers = checkLayers.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !layers.isEmpty, layers.allSatisfy({ ($0 ?? -1) >= 1 }) else {
            throw CLIError("--check-layers takes layer indices ≥ 1, comma-separated, got '\(checkLayers)'")
        }
        o.checkLayers = layers.compactMap { $0 }
        return o
    }
}

/// KL(p ‖ q) of two logit vectors, in nats.
func klDivergence(_ p: [Float], _ q: [Float]) -> Double {
    guard p.count == q.count, !p.isEmpty else { return .nan }
    func logSoftmax(_ x: [Float]) -> [Double] {
        let m = Double(x.max()!)
        var s = 0.0
        for v in x { s += exp(Double(v) - m) }
        let lse = m + log(s)
        return x.map { Double($0) - lse }
    }
    let lp = logSoftmax(p), lq = logSoftmax(q)
    var kl = 0.0
    for i in 0..<lp.count { kl += exp(lp[i]) * (lp[i] - lq[i]) }
    return max(0, kl)
}
