import ArgumentParser
import DuelCore
import Engine
import Foundation
import KVCache
import Llama
import RedisTier
import Tokenizer

/// Options shared by `chat` and `bench`: the cached engine's settings.
struct CacheOptions: ParsableArguments {
    @Option(help: "Share of a reused segment's tokens recomputed (CacheBlend), 0...1.")
    var recompute: Double = ReuseEngine.Options().recomputeRatio
    @Option(help: "RAM budget of the KV store, MiB.")
    var cacheMB: Int = 512
    @Option(help: "Stored KV encoding: int8, f16, f32 or int4 (K 4-bit per channel over 64 tokens, V 4-bit per token after a Hadamard rotation: 6,484 B/token for SmolLM2-135M against int8's 11,764; RAG answer KL 0.034 vs int8 0.028, see README).")
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
        guard let enc = KVEncoding(name: kvEncoding) else { throw CLIError("--kv-encoding must be one of \(KVEncoding.allCases.map(\.description).joined(separator: ", ")), got '\(kvEncoding)'") }
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

/// KL(p ‖ q) of two logit vectors, in nats (`Divergence.kl`).
func klDivergence(_ p: [Float], _ q: [Float]) -> Double { Divergence.kl(p, q) }

/// `--remote` (or `$KVDUEL_REMOTE`): the shared KV tier on a Redis-protocol server.
struct RemoteOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Share KV with other instances through a Redis-protocol server: redis://[user:password@]host:port[/db]. Also $KVDUEL_REMOTE; the password also from $KVDUEL_REMOTE_PASSWORD; $KVDUEL_REMOTE_SECRET signs every entry (HMAC-SHA256).",
        valueName: "url"))
    var remote: String?
    @Option(help: ArgumentHelp(
        "How the cached engine brings in a stored prefix that sits in a slow tier (disk, remote): cake (prefill from the front while an I/O thread loads from the back; they stop where they meet), load (load all of it) or compute (prefill it).",
        valueName: "cake|load|compute"))
    var loadStrategy: String = LoadStrategy.cake.rawValue
    @Option(help: ArgumentHelp("Throttle reads from the remote tier to this many MB/s (10^6 bytes; a token bucket in the client). Default: unthrottled.", valueName: "MB/s"))
    var remoteBandwidth: Double?
    @Option(help: ArgumentHelp("Add this many milliseconds to every remote round trip. Default: 0.", valueName: "ms"))
    var remoteLatency: Double = 0
    @Option(help: ArgumentHelp("Throttle reads from the disk tier to this many MB/s. Default: unthrottled.", valueName: "MB/s"))
    var diskBandwidth: Double?

    func strategy() throws -> LoadStrategy {
        guard let s = LoadStrategy(rawValue: loadStrategy.lowercased()) else {
            throw CLIError("--load-strategy must be one of cake, load, compute, got '\(loadStrategy)'")
        }
        return s
    }

    /// The links as set on the command line (validated).
    func throttles() throws -> (remote: Throttle?, disk: Throttle?) {
        for (name, v) in [("--remote-bandwidth", remoteBandwidth), ("--disk-bandwidth", diskBandwidth)] {
            if let v, !(v > 0 && v.isFinite) { throw CLIError("\(name) must be a positive number of MB/s, got \(v)") }
        }
        guard remoteLatency >= 0 && remoteLatency.isFinite else { throw CLIError("--remote-latency must be 0 or more milliseconds, got \(remoteLatency)") }
        let remote = remoteBandwidth != nil || remoteLatency > 0
            ? Throttle(bytesPerSecond: remoteBandwidth.map { $0 * 1e6 }, latency: remoteLatency / 1000) : nil
        let disk = diskBandwidth.map { Throttle(bytesPerSecond: $0 * 1e6) }
        return (remote, disk)
    }

    /// Sets the load strategy and the disk link on `options`, and the remote tier (behind its link)
    /// when `url` is given. Returns the remote tier itself (to close it at the end).
    @discardableResult
    func apply(to options: inout ReuseEngine.Options, url: RedisURL?, model: LlamaModel) throws -> RedisTier? {
        options.loadStrategy = try strategy()
        let (remoteLink, diskLink) = try throttles()
        options.diskThrottle = diskLink
        guard let url else { return nil }
        let tier = Self.tier(url, model: model, encoding: options.encoding)
        options.lowerTiers = [remoteLink.map { ThrottledTier(tier, throttle: $0) } ?? tier]
        return tier
    }

    /// What the links do, for the top bar and the bench header ("" when nothing is throttled).
    var linkDescription: String {
        var parts: [String] = []
        if let b = remoteBandwidth { parts.append(String(format: "remote %g MB/s", b)) }
        if remoteLatency > 0 { parts.append(String(format: "remote +%g ms/round trip", remoteLatency)) }
        if let b = diskBandwidth { parts.append(String(format: "disk %g MB/s", b)) }
        return parts.joined(separator: ", ")
    }

    /// The parsed URL, or nil when no remote tier is asked for.
    func url(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> RedisURL? {
        guard let text = remote ?? environment["KVDUEL_REMOTE"], !text.isEmpty else { return nil }
        do { return try RedisURL(parsing: text, environment: environment) } catch { throw CLIError("\(error)") }
    }

    /// The tier for this model and encoding (connects once, bounded by the timeout; never throws).
    static func tier(_ url: RedisURL, model: LlamaModel, encoding: KVEncoding,
                     environment: [String: String] = ProcessInfo.processInfo.environment) -> RedisTier {
        let secret = environment["KVDUEL_REMOTE_SECRET"].flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        return RedisTier(.init(url: url, fingerprint: ReuseEngine.storeFingerprint(model), encoding: encoding,
                               shape: (model.config.layers, model.config.kvDim), secret: secret))
    }
}
