import ArgumentParser
import CKernels
import DuelCore
import Engine
import Foundation
import KVCache
import Llama
import RedisTier
import Tokenizer

/// `kvduel bench cake`: the TTFT of a long stored prefix in a slow tier, brought in three ways:
/// compute it (prefill), load it, or both at once (Cake), over a sweep of link bandwidths.
struct BenchCake: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cake",
        abstract: "Compute-only, load-only and Cake TTFT for a stored prefix in a slow tier, over a sweep of link bandwidths.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Prompt tokens (the stored prefix is all of them but the last).") var context: Int = 2048
    @Option(help: "The slow tier the prefix is stored in: disk or remote (remote needs --remote).") var tier: String = "disk"
    @Option(help: ArgumentHelp("Link bandwidths in MB/s, comma-separated; `inf` = unthrottled; `xF` = F times the crossover (the bandwidth at which loading the prefix takes as long as computing it, measured first in this run).", valueName: "list"))
    var bandwidths: String = "inf,x8,x2,x1,x0.5,x0.125"
    @Option(help: "Milliseconds added to every round trip of the link.") var latency: Double = 0
    @Option(help: "Stored KV encodings to compare, comma-separated.") var encoding: String = "int8,int4"
    @Option(help: "Runs per figure; medians and ranges are printed.") var repeats: Int = 3
    @Option(help: "Worker threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: ArgumentHelp("Redis-protocol server for --tier remote.", valueName: "url")) var remote: String?
    @Flag(help: "Print JSON.") var json = false

    struct Run {
        var ttft: Double
        var computed: Int
        var loaded: Int
        var breakdown: TTFTBreakdown
        var firstTokenKL: Double
        var sameFirstToken: Bool
    }

    mutating func run() throws {
        threads = try checked(Limits.threads(threads))
        guard ["disk", "remote"].contains(tier) else { throw CLIError("--tier takes disk or remote, got '\(tier)'") }
        guard repeats >= 1 && repeats <= 50 else { throw CLIError("--repeats takes 1 to 50, got \(repeats)") }
        guard latency >= 0 && latency.isFinite else { throw CLIError("--latency must be 0 or more milliseconds, got \(latency)") }
        let encodings = try encoding.split(separator: ",").map { name -> KVEncoding in
            guard let e = KVEncoding(name: name.trimmingCharacters(in: .whitespaces)) else {
                throw CLIError("--encoding takes \(KVEncoding.allCases.map(\.description).joined(separator: ", ")), got '\(name)'")
            }
            return e
        }
        enum BW { case inf, mbps(Double), crossover(Double) }
        let sweep = try bandwidths.split(separator: ",").map { item -> BW in
            let s = item.trimmingCharacters(in: .whitespaces).lowercased()
            if s == "inf" || s == "unlimited" { return .inf }
            if s.hasPrefix("x"), let f = Double(s.dropFirst()), f > 0 { return .crossover(f) }
            if let v = Double(s), v > 0, v.isFinite { return .mbps(v) }
            throw CLIError("--bandwidths takes MB/s values, inf, or xF (a multiple of the crossover), got '\(item)'")
        }
        var url: RedisURL?
        if tier == "remote" {
            guard let r = remote ?? ProcessInfo.processInfo.environment["KVDUEL_REMOTE"] else {
                throw CLIError("--tier remote needs --remote redis://host:port (or $KVDUEL_REMOTE)")
            }
            do { url = try RedisURL(parsing: r) } catch { throw CLIError("\(error)") }
        }

        let model = try modelOptions.load()
        let tokenizer = try loadTokenizer(model.file)
        guard context >= 32 && context + 1 <= model.config.contextLength else {
            throw CLIError("--context takes 32 to \(model.config.contextLength - 1) tokens for this model, got \(context)")
        }
        let prompt = Self.prompt(tokens: context, tokenizer: tokenizer)
        let request = EngineRequest(segments: [PromptSegment(role: .question, tokens: prompt)], maxTokens: 1)
        let machine = MachineInfo.current
        let kernel = String(cString: kv_qgemm_path())
        let header = "bench cake: \(model.config.name) · \(machine.description) · \(threads) threads · \(kernel) kernels · prompt \(prompt.count) tokens, stored prefix \(prompt.count - 1) in \(tier)\(latency > 0 ? String(format: " · +%g ms/round trip", latency) : "") · median of \(repeats) (range)"
        if !json { print(header) }

        let baseDir = ModelOptions.cacheDir + "/bench-cake-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: baseDir) }
        var out: [[String: Any]] = []

        for enc in encodings {
            let dir = baseDir + "/" + enc.description
            try? FileManager.default.removeItem(atPath: dir)
            func engine(strategy: LoadStrategy, link: Throttle?) throws -> (ReuseEngine, RedisTier?) {
                var o = ReuseEngine.Options()
                o.encoding = enc
                o.loadStrategy = strategy
                var r: RedisTier?
                if let url {
                    let t = RemoteOptions.tier(url, model: model, encoding: enc)
                    r = t
                    o.lowerTiers = [link.map { ThrottledTier(t, throttle: $0) } ?? t]
                } else {
                    o.diskDirectory = dir
                    o.diskThrottle = link
                }
                do { return (try ReuseEngine(model: model, tokenizer: tokenizer, threads: threads, options: o), r) } catch { throw CLIError("\(dir): \(error)") }
            }
            // ---- the writer: compute the prompt once and store its chunks in the slow tier ----
            do {
                let (w, r) = try engine(strategy: .compute, link: nil)
                if let r {
                    r.removeAll()
                    guard r.state == .ok else { throw CLIError("remote \(url!) is \(r.state.rawValue): \(r.lastError ?? "")") }
                }
                _ = try w.generate(request, cancel: nil) { _ in }
                if let r, !r.drain(timeout: 60) { throw CLIError("remote \(url!): the writes did not finish within 60 s") }
            }
            let bytesPerToken = enc.bytesPerToken(layers: model.config.layers, kvDim: model.config.kvDim)
            let storedBytes = Double(bytesPerToken * (prompt.count - 1))

            func measure(_ strategy: LoadStrategy, link: Throttle?, reference: [Float]?) throws -> (Run, [Float]) {
                let (e, r) = try engine(strategy: strategy, link: link)
                defer { r?.close(timeout: 2) }
                var req = request
                req.submittedAt = nil
                let res = try e.generate(req, cancel: nil) { _ in }
                let logits = res.firstTokenLogits ?? []
                let st = res.stats
                var run = Run(ttft: st.ttftSeconds, computed: st.computedFresh, loaded: st.reusedExact,
                              breakdown: st.breakdown, firstTokenKL: 0, sameFirstToken: true)
                if let c = st.cake { run.computed = c.computed.count; run.loaded = c.loaded.count }
                if let reference {
                    run.firstTokenKL = Divergence.kl(reference, logits)
                    run.sameFirstToken = argmax(reference) == argmax(logits)
                }
                return (run, logits)
            }

            // ---- compute-only, once up front: the reference logits and the crossover. Every row
            // measures compute-only again, interleaved with load-only and Cake, so a change in
            // the machine's load during the sweep moves all three alike. ----
            let (first, reference) = try measure(.compute, link: nil, reference: nil)
            let computeMedian = Spread([first.ttft])
            // The crossover: the bandwidth at which loading the stored bytes takes as long as computing them.
            let crossoverMBps = storedBytes / computeMedian.median / 1e6
            if !json {
                print("")
                print(String(format: "%@: %d B/token, %.1f MB stored · a first compute-only run took %@ · crossover ≈ %.1f MB/s",
                             enc.description, bytesPerToken, storedBytes / 1e6, ttftText(computeMedian), crossoverMBps))
                print("  link MB/s   compute-only            load-only               Cake                    best pure      Cake vs best   meeting: computed ▸ ◂ loaded   first-token KL (load, cake)")
            }
            var rows: [[String: Any]] = []
            for bw in sweep {
                let mbps: Double?
                switch bw {
                case .inf: mbps = nil
                case .mbps(let v): mbps = v
                case .crossover(let f): mbps = crossoverMBps * f
                }
                var loadRuns: [Run] = [], cakeRuns: [Run] = [], computeRuns: [Run] = []
                for _ in 0..<repeats {
                    computeRuns.append(try measure(.compute, link: nil, reference: reference).0)
                    // Each run gets its own link, idle at the start.
                    let ms = latency
                    func link() -> Throttle? { mbps != nil || ms > 0 ? Throttle(bytesPerSecond: mbps.map { $0 * 1e6 }, latency: ms / 1000) : nil }
                    loadRuns.append(try measure(.load, link: link(), reference: reference).0)
                    cakeRuns.append(try measure(.cake, link: link(), reference: reference).0)
                }
                let load = Spread(loadRuns.map(\.ttft)), cake = Spread(cakeRuns.map(\.ttft))
                let compute = Spread(computeRuns.map(\.ttft))
                let best = min(load.median, compute.median)
                let ratio = cake.median / best
                // The meeting point of the run with the median TTFT.
                let mid = cakeRuns.sorted { $0.ttft < $1.ttft }[cakeRuns.count / 2]
                let meetComputed = Double(mid.computed), meetLoaded = Double(mid.loaded)
                let label: String
                switch bw {
                case .inf: label = "inf"
                case .mbps(let v): label = String(format: "%g", v)
                case .crossover(let f): label = String(format: "%.1f (x%g)", mbps!, f)
                }
                if !json {
                    let verdict = ratio <= 1 ? String(format: "%.2f× faster", 1 / ratio) : String(format: "%.2f× slower", ratio)
                    print("  " + pad(label, width: 11) + pad(ttftText(compute), width: 24) + pad(ttftText(load), width: 24) + pad(ttftText(cake), width: 24)
                          + pad(load.median <= compute.median ? "load" : "compute", width: 15)
                          + pad(verdict, width: 15)
                          + pad(String(format: "%.0f ▸ ◂ %.0f", meetComputed, meetLoaded), width: 31)
                          + String(format: "%.4f, %.4f", Spread(loadRuns.map(\.firstTokenKL)).median, Spread(cakeRuns.map(\.firstTokenKL)).median))
                }
                func samples(_ runs: [Run]) -> [[String: Any]] {
                    runs.map { r in
                        ["ttft_ms": r.ttft * 1000, "computed_tokens": r.computed, "loaded_tokens": r.loaded,
                         "first_token_kl": r.firstTokenKL, "same_first_token": r.sameFirstToken, "breakdown": breakdownJSON(r.breakdown)]
                    }
                }
                rows.append(["bandwidth_mbps": mbps ?? -1, "unthrottled": mbps == nil,
                             "compute_ms": compute.scaled(1000).json, "load_ms": load.scaled(1000).json, "cake_ms": cake.scaled(1000).json,
                             "cake_vs_best_pure": ratio, "best_pure": load.median <= compute.median ? "load" : "compute",
                             "meeting_computed_tokens": meetComputed, "meeting_loaded_tokens": meetLoaded,
                             "load_samples": samples(loadRuns), "cake_samples": samples(cakeRuns)])
            }
            out.append(["encoding": enc.description, "bytes_per_token": bytesPerToken, "stored_bytes": storedBytes,
                        "compute_first_ms": computeMedian.scaled(1000).json, "crossover_mbps": crossoverMBps, "rows": rows])
            try? FileManager.default.removeItem(atPath: dir)
        }
        if json {
            let obj: [String: Any] = ["machine": machine.description, "threads": threads, "kernel": kernel,
                                      "model": model.config.name, "prompt_tokens": prompt.count, "tier": tier,
                                      "latency_ms": latency, "repeats": repeats, "encodings": out]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("")
            print("Goals: Cake within 5% of the better pure strategy everywhere; at the crossover, ≥ 1.6× faster than it.")
        }
    }

    /// `n` prompt tokens of real text: the bundled documents, repeated as needed.
    static func prompt(tokens n: Int, tokenizer: Tokenizer) -> [Int32] {
        let here = FileManager.default.currentDirectoryPath + "/assets/docs"
        let dir = FileManager.default.fileExists(atPath: here) ? here
            : URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("assets/docs").path
        var text = ""
        if let names = try? FileManager.default.contentsOfDirectory(atPath: dir) {
            for name in names.sorted() where name.hasSuffix(".md") {
                text += (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)) ?? ""
                text += "\n\n"
            }
        }
        if text.isEmpty { text = "The quick brown fox jumps over the lazy dog. " }
        var ids = tokenizer.encode(text)
        while ids.count < n { ids += tokenizer.encode(text, addBOS: false) }
        return Array(ids.prefix(n))
    }
}

/// "1.23 s (1.20–1.31)" or "57 ms (55–58)": a TTFT spread with the unit chosen by its median.
private func ttftText(_ s: Spread) -> String {
    s.median >= 1 ? s.text(decimals: 2, suffix: " s") : s.text(scale: 1000, suffix: " ms")
}

private func argmax(_ v: [Float]) -> Int { v.indices.max { v[$0] < v[$1] } ?? -1 }

private func pad(_ s: String, width: Int) -> String {
    let w = s.count
    return w >= width ? s + " " : s + String(repeating: " ", count: width - w)
}
