import ArgumentParser
import DuelCore
import Engine
import Foundation
import GGUF
import KVCache
import Llama
import RedisTier
import Tokenizer

/// `kvduel bench --scenario FILE`: the whole duel without a screen. Schedule `alternate`: each
/// engine gets all threads and they run one after the other, so timings do not disturb each other.
/// Both get the same prompt tokens each turn; history is built from the baseline's answers.
struct BenchScenario: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenario",
        abstract: "Run a scenario through both engines and compare TTFT, reuse and answer quality.")

    @Option(help: "Scenario YAML (see demos/).") var scenario: String
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Share of a reused segment's tokens recomputed (CacheBlend); a comma-separated list sweeps ratios, re-running only the cached engine.")
    var recompute: String = "\(ReuseEngine.Options().recomputeRatio)"
    @Option(help: "RAM budget of the KV store, MiB.") var cacheMB: Int = 512
    @Option(help: "Stored KV encoding: int8, f16, f32 or int4 (K 4-bit per channel over 64 tokens, V 4-bit per token after a Hadamard rotation: 6,484 B/token for SmolLM2-135M against int8's 11,764; RAG answer KL 0.034 vs int8 0.028, see README).") var kvEncoding: String = "int8"
    @Option(help: "Layers whose K/V deviation chooses the tokens to recompute, comma-separated.")
    var checkLayers: String = ReuseEngine.Options().checkLayers.map(String.init).joined(separator: ",")
    @Option(help: "Worker threads (each engine gets all of them, in turn).")
    var threads = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Override the scenario's max_tokens.") var maxTokens: Int?
    @Flag(help: "Give the cached engine a disk tier too (a fresh directory under $KVDUEL_CACHE_DIR, removed afterwards), so the disk path is exercised and measured; with a small --cache-mb, entries overflow RAM and are read back from disk.")
    var disk = false
    @OptionGroup var remoteOptions: RemoteOptions
    @Option(help: "Run the cached side this many times, each a fresh instance (empty RAM, no disk) sharing only the --remote tier; instance 2 on shows what the remote tier saves.")
    var instances = 1
    @Option(help: "First-turn pairs (fresh cached engine vs baseline) for the cold-cache overhead; 0 skips the check.")
    var coldPairs = 5
    @Flag(help: "Print JSON.") var json = false

    struct Side {
        var ttft: Double
        var reused: Int
        var blended: Int
        var recomputed: Int
        var fresh: Int
        var kvBytes: Int
        var storeBytes: Int
        var answer: String
        var tokens: [Int32]
        var stats: RequestStats
    }

    struct TurnResult {
        /// Which cached instance ran it (1-based; always 1 without --instances).
        var instance = 1
        var index: Int
        var promptTokens: Int
        var cached: Side
        var baseline: Side
        var answerKL: Double
        var firstTokenAgree: Bool
        var identical: Bool
        var ttftRatio: Double { cached.ttft > 0 ? baseline.ttft / cached.ttft : 0 }
    }

    mutating func run() throws {
        threads = try checked(Limits.threads(threads))
        if let m = maxTokens { maxTokens = try checkedMaxTokens(m) }
        let sc: Scenario
        do { sc = try Scenario.load(path: scenario) } catch { throw CLIError("\(error)") }
        let ratios = try recompute.split(separator: ",").map { s -> Double in
            guard let r = Double(s.trimmingCharacters(in: .whitespaces)), (0...1).contains(r) else {
                throw CLIError("--recompute takes ratios between 0 and 1, got '\(s)'")
            }
            return r
        }
        for r in ratios { _ = try CacheOptions.engineOptions(recompute: r, cacheMB: cacheMB, kvEncoding: kvEncoding, checkLayers: checkLayers, diskDirectory: nil) }
        let remoteURL = try remoteOptions.url()
        guard coldPairs >= 0 && coldPairs <= 100 else { throw CLIError("--cold-pairs must be between 0 and 100, got \(coldPairs)") }
        guard instances >= 1 && instances <= 16 else { throw CLIError("--instances must be between 1 and 16, got \(instances)") }
        if instances > 1 {
            guard remoteURL != nil else { throw CLIError("--instances \(instances) needs a shared tier: add --remote redis://host:port (or set KVDUEL_REMOTE)") }
            guard ratios.count == 1 else { throw CLIError("--instances takes one --recompute ratio, not a sweep") }
        }
        let model = try modelOptions.load()
        let tokenizer = try loadTokenizer(model.file)
        let builder = ChatPromptBuilder(tokenizer: tokenizer, template: try modelOptions.chatTemplate(tokenizer))
        let maxTok = maxTokens ?? sc.maxTokens
        var diskDirectory: String?
        if disk {
            diskDirectory = ModelOptions.cacheDir + "/bench-kv-\(getpid())"
            if let note = DiskTier.tightenPermissions(of: ModelOptions.cacheDir) { Notes.print(note) }
        }
        defer { if let d = diskDirectory { try? FileManager.default.removeItem(atPath: d) } }
        let baseline = BaselineEngine(model: model, tokenizer: tokenizer, threads: threads)

        // The baseline runs once; its answers make the history, so every sweep sees the same prompts.
        var requests: [EngineRequest] = []
        var baseResults: [GenerationResult] = []
        var history: [Turn] = []
        var docs: [Document] = []
        for turn in sc.turns {
            if !turn.documents.isEmpty { docs = sc.documents(for: turn) }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let segs = builder.segments(system: sc.system, documents: docs, history: history, question: turn.user)
            var req = EngineRequest(segments: segs, maxTokens: maxTok, submittedAt: t0,
                                    turnSuffix: builder.turnSuffix, collectLogits: true)
            let b = try baseline.generate(req, cancel: nil) { _ in }
            req.collectLogits = false
            req.submittedAt = nil
            requests.append(req)
            baseResults.append(b)
            history.append(Turn(question: turn.user, answer: b.text, answerTokens: b.tokens))
            if !json { FileHandle.standardError.write(Data("baseline turn \(requests.count)/\(sc.turns.count): \(req.promptTokens.count) prompt tokens, TTFT \(String(format: "%.0f", b.stats.ttftSeconds * 1000)) ms\n".utf8)) }
        }

        // Cold-cache overhead: the first turn on a fresh cached engine (empty store) against the
        // baseline, TTFT only, alternating, median of 5 pairs (one pair is too noisy to judge 5%).
        var coldCached: [Double] = [], coldBase: [Double] = []
        if var first = requests.first {
            first.maxTokens = 1
            let opts = try CacheOptions.engineOptions(recompute: ratios[0], cacheMB: cacheMB, kvEncoding: kvEncoding, checkLayers: checkLayers, diskDirectory: nil)
            for _ in 0..<coldPairs {
                first.submittedAt = DispatchTime.now().uptimeNanoseconds
                coldBase.append(try baseline.generate(first, cancel: nil) { _ in }.stats.ttftSeconds)
                let fresh = try ReuseEngine(model: model, tokenizer: tokenizer, threads: threads, options: opts)
                first.submittedAt = DispatchTime.now().uptimeNanoseconds
                coldCached.append(try fresh.generate(first, cancel: nil) { _ in }.stats.ttftSeconds)
            }
        }
        func median(_ x: [Double]) -> Double { x.isEmpty ? 0 : x.sorted()[x.count / 2] }
        let cold = ColdCheck(cachedTTFT: median(coldCached), baselineTTFT: median(coldBase), pairs: coldCached.count)

        var sweeps: [(Double, [TurnResult])] = []
        var stores: [StoreStats] = []   // the cached engine's store after each sweep
        var diskWarm: [[String: Double]] = []   // --disk: turn 1 again on a fresh engine over the sweep's directory
        for ratio in ratios {
          var results: [TurnResult] = []
          for instance in 1...instances {
            // A fresh instance: new store (empty RAM; with --disk an empty directory), its own
            // connection to the shared tier.
            if let d = diskDirectory { try? FileManager.default.removeItem(atPath: d) }
            var opts = try CacheOptions.engineOptions(recompute: ratio, cacheMB: cacheMB, kvEncoding: kvEncoding, checkLayers: checkLayers, diskDirectory: diskDirectory)
            let remote = remoteURL.map { RemoteOptions.tier($0, model: model, encoding: opts.encoding) }
            if let remote {
                if remote.state != .ok { FileHandle.standardError.write(Data("warning: remote \(remoteURL!) is \(remote.state.rawValue): \(remote.lastError ?? "")\n".utf8)) }
                opts.lowerTiers = [remote]
            }
            let cached: ReuseEngine
            do { cached = try ReuseEngine(model: model, tokenizer: tokenizer, threads: threads, options: opts) } catch { throw CLIError("\(diskDirectory ?? ""): \(error)") }
            for (i, base) in baseResults.enumerated() {
                var req = requests[i]
                req.submittedAt = DispatchTime.now().uptimeNanoseconds
                // Score the baseline's answer (and its end token, if it stopped there) teacher-forced.
                req.teacherForce = base.tokens + (base.stopToken.map { [$0] } ?? [])
                let c = try cached.generate(req, cancel: nil) { _ in }
                var kl = 0.0
                let steps = min(base.stepLogits?.count ?? 0, c.teacherLogits?.count ?? 0)
                for s in 0..<steps { kl += klDivergence(base.stepLogits![s], c.teacherLogits![s]) }
                let mem = cached.memory
                results.append(TurnResult(
                    instance: instance, index: i + 1, promptTokens: req.promptTokens.count,
                    cached: side(c, kvBytes: mem.liveKVBytes, store: mem.storeBytes),
                    baseline: side(base, kvBytes: base.stats.kvBytesLive, store: 0),
                    answerKL: steps > 0 ? kl / Double(steps) : 0,
                    firstTokenAgree: c.tokens.first == base.tokens.first,
                    identical: c.tokens == base.tokens))
                if !json { FileHandle.standardError.write(Data("cached\(instances > 1 ? " instance \(instance)" : "") (recompute \(ratio)) turn \(i + 1)/\(baseResults.count)\n".utf8)) }
            }
            // The next instance must find everything this one wrote.
            if let remote {
                if !remote.drain(timeout: 60) { FileHandle.standardError.write(Data("warning: remote writes still queued after 60 s\n".utf8)) }
                remote.close()
            }
            guard instance == instances else { continue }
            stores.append(cached.store.stats)
            if diskDirectory != nil, var first = requests.first {
                // The disk path read back: a fresh cached engine (empty RAM) on this sweep's
                // directory answers turn 1 again, as after a restart.
                first.maxTokens = 1
                var local = opts
                local.lowerTiers = []
                let warm = try ReuseEngine(model: model, tokenizer: tokenizer, threads: threads, options: local)
                first.submittedAt = DispatchTime.now().uptimeNanoseconds
                let r = try warm.generate(first, cancel: nil) { _ in }
                let s = warm.store.stats
                diskWarm.append(["ttft_ms": r.stats.ttftSeconds * 1000, "reused": Double(r.stats.reusedTokens),
                                 "prompt": Double(r.stats.promptTokens), "disk_hits": Double(s.diskHits),
                                 "cold_ttft_ms": (results.first { $0.instance == instance }?.cached.ttft ?? 0) * 1000])
            }
          }
          sweeps.append((ratio, results))
        }

        if json { try printJSON(sc, model: model, sweeps: sweeps, maxTok: maxTok, cold: cold, stores: stores, diskWarm: diskWarm) } else { printTable(sc, model: model, sweeps: sweeps, maxTok: maxTok, cold: cold, stores: stores, diskWarm: diskWarm) }
    }

    func side(_ r: GenerationResult, kvBytes: Int, store: Int) -> Side {
        Side(ttft: r.stats.ttftSeconds, reused: r.stats.reusedTokens, blended: r.stats.reusedBlended,
             recomputed: r.stats.recomputed, fresh: r.stats.computedFresh, kvBytes: kvBytes, storeBytes: store,
             answer: r.text, tokens: r.tokens, stats: r.stats)
    }

    /// Medians of the cold-cache check (first turn, fresh cached engine vs baseline).
    struct ColdCheck {
        var cachedTTFT = 0.0, baselineTTFT = 0.0, pairs = 0
        var overhead: Double { baselineTTFT > 0 ? cachedTTFT / baselineTTFT - 1 : 0 }
    }

    struct Summary {
        var meanRatio: Double
        var warmMeanRatio: Double
        var coldOverhead: Double
        var meanKL: Double
        var identicalTurns: Int
        var firstTokenAgreeTurns: Int
        var hitRate: Double
        var longTurn: TurnResult?
    }

    func summarize(_ r: [TurnResult], cold: ColdCheck) -> Summary {
        let warm = r.dropFirst()
        let reused = r.reduce(0) { $0 + $1.cached.reused }, prompt = r.reduce(0) { $0 + $1.promptTokens }
        // The turn where the prompt first passes 2000 tokens.
        let long = r.first { $0.promptTokens > 2000 }
        return Summary(
            meanRatio: r.map(\.ttftRatio).reduce(0, +) / Double(max(1, r.count)),
            warmMeanRatio: warm.isEmpty ? 0 : warm.map(\.ttftRatio).reduce(0, +) / Double(warm.count),
            coldOverhead: cold.overhead,
            meanKL: r.map(\.answerKL).reduce(0, +) / Double(max(1, r.count)),
            identicalTurns: r.filter(\.identical).count,
            firstTokenAgreeTurns: r.filter(\.firstTokenAgree).count,
            hitRate: prompt > 0 ? Double(reused) / Double(prompt) : 0,
            longTurn: long)
    }

    func header(_ sc: Scenario, model: LlamaModel, maxTok: Int) -> [String] {
        let m = MachineInfo.current
        return ["kvduel bench: \(sc.name)",
                "machine : \(m.description), \(m.cpus) CPUs",
                "model   : \(model.config.name) (\(modelOptions.resolvedPath))",
                "schedule: alternate — each engine gets all \(threads) threads, one after the other; greedy; max \(maxTok) tokens; same prompt tokens",
                "cached  : check layers \(checkLayers); each reused segment's first 4 tokens always recomputed",
                "store   : \(kvEncoding) (\(KVEncoding(name: kvEncoding)?.bytesPerToken(layers: model.config.layers, kvDim: model.config.kvDim) ?? 0) bytes/token), \(cacheMB) MiB RAM\(disk ? " + disk tier (fresh directory per sweep)" : ""); history from the baseline's answers"]
    }

    /// What the store's tiers did in one sweep (RAM and, with --disk, disk).
    func storeSummary(_ s: StoreStats) -> [String: Int] {
        var d = ["ram_hits": s.ramHits, "ram_evictions": s.ramEvictions, "misses": s.misses]
        if disk {
            d["disk_hits"] = s.diskHits
            d["disk_entries"] = s.diskEntries
            d["disk_bytes"] = s.diskBytes
            d["disk_evictions"] = s.diskEvictions
        }
        return d
    }

    /// Reused tokens by store tier ("ram", "disk", "remote"; 0 for a tier the engine lacks).
    static let tierNames = ["ram", "disk", "remote"]
    static func hitsByTier(_ st: RequestStats) -> [String: Int] {
        var out: [String: Int] = [:]
        for n in tierNames { out[n] = st[tier: n]?.hitTokens ?? 0 }
        for t in st.tiers { out[t.name] = t.hitTokens }
        return out
    }

    func printTable(_ sc: Scenario, model: LlamaModel, sweeps: [(Double, [TurnResult])], maxTok: Int, cold: ColdCheck,
                    stores: [StoreStats] = [], diskWarm: [[String: Double]] = []) {
        for line in header(sc, model: model, maxTok: maxTok) { print(line) }
        for (i, s) in stores.enumerated() where i < sweeps.count {
            print(String(format: "store after recompute %.2f: RAM hits %d, evictions %d", sweeps[i].0, s.ramHits, s.ramEvictions)
                  + (disk ? String(format: "; disk hits %d, %d entries, %d bytes, evictions %d", s.diskHits, s.diskEntries, s.diskBytes, s.diskEvictions) : ""))
            if i < diskWarm.count {
                let w = diskWarm[i]
                print(String(format: "  warm start from disk (fresh engine, empty RAM): turn 1 TTFT %.0f ms (cold %.0f ms), reused %.0f/%.0f, disk hits %.0f",
                             w["ttft_ms"] ?? 0, w["cold_ttft_ms"] ?? 0, w["reused"] ?? 0, w["prompt"] ?? 0, w["disk_hits"] ?? 0))
            }
        }
        for (ratio, all) in sweeps {
          for instance in 1...instances {
            let results = all.filter { $0.instance == instance }
            print("")
            print("recompute \(Int((ratio * 100).rounded()))%" + (instances > 1 ? " · instance \(instance) of \(instances) (fresh RAM, no disk; shares only the remote tier)" : ""))
            print("turn  prompt | cached TTFT  reused (blend) recomp  fresh  hits ram/disk/remote | baseline TTFT | speed-up  KL(b‖c)  1st  same")
            for t in results {
                let h = Self.hitsByTier(t.cached.stats)
                let hits = "\(h["ram"]!)/\(h["disk"]!)/\(h["remote"]!)"
                print(String(format: "%4d  %6d | %8.0f ms  %6d (%5d) %6d %6d  ", t.index, t.promptTokens, t.cached.ttft * 1000,
                             t.cached.reused, t.cached.blended, t.cached.recomputed, t.cached.fresh)
                      + String(repeating: " ", count: max(0, 19 - hits.count)) + hits
                      + String(format: " | %10.0f ms | %7.1fx  %7.4f  %@  %@", t.baseline.ttft * 1000, t.ttftRatio, t.answerKL,
                               t.firstTokenAgree ? "yes" : "NO ", t.identical ? "yes" : "NO"))
            }
            if let r = results.last?.cached.stats[tier: "remote"] {
                let c = results.compactMap { $0.cached.stats[tier: "remote"] }
                print(String(format: "remote: %@ · read %d B in %d round trips (%.1f ms) · %d rejected · %d write errors · %d dropped writes",
                             r.state ?? "–", c.reduce(0) { $0 + $1.bytesRead }, c.reduce(0) { $0 + $1.roundTrips },
                             c.reduce(0) { $0 + $1.readSeconds } * 1000, r.rejectedEntries, r.writeErrors, r.droppedWrites))
            }
            let s = summarize(results, cold: cold)
            print(String(format: "mean speed-up %.1fx (turns 2+: %.1fx) · hit rate %.1f%% of prompt tokens · mean answer KL %.4f · identical answers %d/%d · first token agrees %d/%d · cold-cache overhead %+.1f%% (median of %d first-turn pairs: %.0f vs %.0f ms)",
                         s.meanRatio, s.warmMeanRatio, s.hitRate * 100, s.meanKL, s.identicalTurns, results.count,
                         s.firstTokenAgreeTurns, results.count, s.coldOverhead * 100, cold.pairs, cold.cachedTTFT * 1000, cold.baselineTTFT * 1000))
            if let l = s.longTurn {
                print(String(format: "first turn past 2000 prompt tokens: turn %d, %d tokens, %d new: cached %.0f ms vs baseline %.0f ms = %.1fx",
                             l.index, l.promptTokens, l.promptTokens - l.cached.reused, l.cached.ttft * 1000, l.baseline.ttft * 1000, l.ttftRatio))
            }
            if instance > 1, let f = results.first {
                let h = Self.hitsByTier(f.cached.stats)
                print(String(format: "instance %d, first turn: %d prompt tokens, hit %.1f%% (remote %d tokens): cached %.0f ms vs baseline %.0f ms = %.1fx, same answer: %@",
                             instance, f.promptTokens, f.cached.stats.hitRate * 100, h["remote"]!, f.cached.ttft * 1000,
                             f.baseline.ttft * 1000, f.ttftRatio, f.identical ? "yes" : "NO"))
            }
          }
        }
        if sweeps.count > 1 {
            print("\nrecompute ratio vs quality and speed:")
            print("ratio   mean answer KL   mean speed-up (turns 2+)   identical")
            for (ratio, results) in sweeps {
                let s = summarize(results, cold: cold)
                print(String(format: "%4.0f%%   %14.4f   %24.1fx   %d/%d", ratio * 100, s.meanKL, s.warmMeanRatio, s.identicalTurns, results.count))
            }
        }
    }

    func printJSON(_ sc: Scenario, model: LlamaModel, sweeps: [(Double, [TurnResult])], maxTok: Int, cold: ColdCheck,
                   stores: [StoreStats] = [], diskWarm: [[String: Double]] = []) throws {
        func sideJSON(_ s: Side) -> [String: Any] {
            ["ttft_ms": s.ttft * 1000, "reused_tokens": s.reused, "blended_tokens": s.blended,
             "recomputed_tokens": s.recomputed, "fresh_tokens": s.fresh, "kv_bytes": s.kvBytes,
             "store_bytes": s.storeBytes, "answer": s.answer, "answer_tokens": s.tokens.count,
             "hit_rate": s.stats.hitRate, "lookup_ms": s.stats.lookupSeconds * 1000, "load_ms": s.stats.loadSeconds * 1000,
             "decode_tok_s": s.stats.decodeTokensPerSecond,
             "store_tiers": s.stats.tiers.map { t -> [String: Any] in
                 var o: [String: Any] = ["name": t.name, "hit_tokens": t.hitTokens, "store_bytes": t.storeBytes,
                                         "rejected_entries": t.rejectedEntries, "write_errors": t.writeErrors,
                                         "dropped_writes": t.droppedWrites, "bytes_read": t.bytesRead,
                                         "bytes_written": t.bytesWritten, "round_trips": t.roundTrips,
                                         "read_ms": t.readSeconds * 1000]
                 if let st = t.state { o["state"] = st }
                 return o
             }]
        }
        let m = MachineInfo.current
        var runs: [[String: Any]] = []
        for (ratio, all) in sweeps {
            // The summary is the last instance's (with --instances, the one that shares another's KV).
            let results = all.filter { $0.instance == instances }
            let s = summarize(results, cold: cold)
            var summary: [String: Any] = [
                "mean_ttft_ratio": s.meanRatio, "warm_mean_ttft_ratio": s.warmMeanRatio, "hit_rate": s.hitRate,
                "mean_answer_kl": s.meanKL, "identical_turns": s.identicalTurns, "first_token_agree_turns": s.firstTokenAgreeTurns,
                "turns": results.count, "cold_overhead": s.coldOverhead,
                "cold_check": ["pairs": cold.pairs, "cached_ttft_ms_median": cold.cachedTTFT * 1000,
                               "baseline_ttft_ms_median": cold.baselineTTFT * 1000],
            ]
            if let l = s.longTurn { summary["first_turn_past_2000"] = ["turn": l.index, "prompt_tokens": l.promptTokens, "ttft_ratio": l.ttftRatio] }
            if instances > 1 {
                summary["instance"] = instances
                summary["instances"] = (1...instances).map { k -> [String: Any] in
                    let r = all.filter { $0.instance == k }
                    let sk = summarize(r, cold: cold)
                    var o: [String: Any] = ["instance": k, "mean_ttft_ratio": sk.meanRatio, "hit_rate": sk.hitRate,
                                            "identical_turns": sk.identicalTurns, "turns": r.count]
                    if let f = r.first {
                        o["first_turn"] = ["prompt_tokens": f.promptTokens, "hit_rate": f.cached.stats.hitRate,
                                           "hit_tokens_by_tier": Self.hitsByTier(f.cached.stats), "ttft_ratio": f.ttftRatio,
                                           "cached_ttft_ms": f.cached.ttft * 1000, "baseline_ttft_ms": f.baseline.ttft * 1000,
                                           "answers_identical": f.identical] as [String: Any]
                    }
                    return o
                }
            }
            runs.append([
                "recompute": ratio,
                "turns": all.map { t -> [String: Any] in
                    ["turn": t.index, "instance": t.instance, "prompt_tokens": t.promptTokens, "cached": sideJSON(t.cached), "baseline": sideJSON(t.baseline),
                     "ttft_ratio": t.ttftRatio, "answers_identical": t.identical, "answer_kl": t.answerKL,
                     "first_token_agree": t.firstTokenAgree, "hit_tokens_by_tier": Self.hitsByTier(t.cached.stats)]
                },
                "summary": summary,
            ])
        }
        var obj: [String: Any] = [
            "scenario": sc.name, "machine": m.description, "cpus": m.cpus, "threads": threads, "schedule": "alternate",
            "model": model.config.name, "model_path": modelOptions.resolvedPath, "max_tokens": maxTok,
            "kv_encoding": kvEncoding, "cache_mb": cacheMB, "disk": disk, "instances": instances,
        ]
        if let url = try remoteOptions.url() { obj["remote"] = url.description }
        if stores.count == 1 { obj["store"] = storeSummary(stores[0]) } else if !stores.isEmpty { obj["stores"] = stores.map(storeSummary) }
        if diskWarm.count == 1 { obj["disk_warm_start"] = diskWarm[0] } else if !diskWarm.isEmpty { obj["disk_warm_starts"] = diskWarm }
        if runs.count == 1 {
            obj["recompute"] = runs[0]["recompute"]
            obj["turns"] = runs[0]["turns"]
            obj["summary"] = runs[0]["summary"]
        } else {
            obj["runs"] = runs
        }
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
