import ArgumentParser
import CKernels
import DuelCore
import Foundation
import Llama

struct BenchEngine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Measure prefill and decode speed of the engine on one model.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Worker threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Prompt lengths to prefill, comma-separated.") var prefill: String = "128,512,2048"
    @Option(help: "Tokens to decode.") var decode: Int = 128
    @Option(help: "Append N tokens to a cache of C tokens (\"C+N\", empty to skip): the work that exact prefix reuse leaves (the physical limit of such a turn, as `bench --scenario` measures it beside each warm turn), then decode at that context.")
    var extend: String = "2000+50"
    @Option(help: "Repetitions per figure (the best is reported).") var repeats: Int = 2
    @Option(help: "llama.cpp's llama-bench, measured in the same run as the reference (default: $KVDUEL_CACHE_DIR/llama.cpp/bin/llama-bench from `make reference`, then PATH; none to skip).")
    var llamaBench: String?
    @Option(help: "llama.cpp's llama-server, to measure its decode at the --extend context in the same run: the same model and threads, a prompt of C + N token ids, then --decode tokens, the best of --repeats (default: $KVDUEL_CACHE_DIR/llama.cpp/bin/llama-server from `make reference` when it is there; none to skip).")
    var llamaServer: String?
    @Option(help: "Also measure prefill and decode on these matrix-product paths (comma-separated, or all: every path this CPU supports), one after the other in this run. They give the same bits; only the speed differs.")
    var kernels: String?
    @Flag(help: "Print JSON.") var json = false

    mutating func run() throws {
        threads = try checked(Limits.threads(threads))
        let model = try modelOptions.load()
        let reference = try LlamaBench.locate(llamaBench)
        let server: LlamaServer? = switch llamaServer {
        case "none": nil
        case nil: try? LlamaServer.locate("default")
        default: try LlamaServer.locate(llamaServer)
        }
        let parts = extend.split(separator: "+", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        if !extend.isEmpty {
            guard parts.count == 2, let c = parts[0], let n = parts[1], c > 0, n > 0 else {
                throw CLIError("--extend takes C+N (cached tokens + new tokens, both positive), got '\(extend)'")
            }
            guard c + n + decode <= model.config.contextLength else {
                throw CLIError("--extend \(extend) plus \(decode) decoded tokens exceeds the model's context of \(model.config.contextLength) tokens")
            }
        }
        let lengths = try prefill.split(separator: ",").map { item -> Int in
            guard let n = Int(item.trimmingCharacters(in: .whitespaces)), n > 0, n <= model.config.contextLength else {
                throw CLIError("--prefill takes token counts from 1 to the model's context (\(model.config.contextLength)), got '\(item)'")
            }
            return n
        }
        guard decode >= 0, 16 + decode <= model.config.contextLength else {
            throw CLIError("--decode takes 0 to \(model.config.contextLength - 16) tokens, got \(decode)")
        }
        let ctx = LlamaContext(model: model, threads: threads)
        var rng = SplitMix64(seed: 42)
        let vocab = Int32(model.config.vocabSize)
        func randomTokens(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(rng.next() % UInt64(vocab - 1000)) + 500 } }

        // Warm-up: touch every weight once.
        ctx.forward(tokens: randomTokens(8), positions: Array(0..<8), cache: KVState(config: model.config), logits: .none)

        func measurePrefill() -> [(Int, Double, Double)] {   // (tokens, tok/s, ttft seconds)
            lengths.map { n in
                let tokens = randomTokens(n)
                var best = Double.infinity
                for _ in 0..<repeats {
                    let cache = KVState(config: model.config, capacity: n + 1)
                    let t0 = Clock.now()
                    let logits = ctx.forward(tokens: tokens, positions: (0..<Int32(n)).map { $0 }, cache: cache)
                    _ = Sampler.argmax(logits)
                    best = min(best, Clock.seconds(since: t0))
                }
                return (n, Double(n) / best, best)
            }
        }
        // Decode: a 16-token prompt, then `decode` greedy steps.
        func measureDecode() -> Double {
            var bestDecode = 0.0
            for _ in 0..<repeats {
                let cache = KVState(config: model.config, capacity: 16 + decode + 1)
                let prompt = randomTokens(16)
                var logits = ctx.forward(tokens: prompt, positions: Array(0..<16), cache: cache)
                let t0 = Clock.now()
                for i in 0..<decode {
                    let next = Sampler.argmax(logits)
                    logits = ctx.forward(tokens: [next], positions: [Int32(16 + i)], cache: cache)
                }
                bestDecode = max(bestDecode, Double(decode) / Clock.seconds(since: t0))
            }
            return bestDecode
        }
        // Keys a decoded token attends to, on average: short decode starts after 16 prompt tokens,
        // decode after an extend after C + N.
        let shortKeys = 16 + Double(decode) / 2
        func decodeKeys(_ e: (context: Int, new: Int, ms: Double, decode: Double)) -> Double { Double(e.context + e.new) + Double(decode) / 2 }
        let kernelPath = String(cString: kv_qgemm_path())
        let prefillRates = measurePrefill()
        let bestDecode = measureDecode()

        // Extend: N new tokens on top of C cached ones (a multi-turn chat's next turn with its
        // prefix reused), then greedy decode at that context.
        var extendFigure: (context: Int, new: Int, ms: Double, decode: Double)?
        var floor: AttentionFloor?
        if parts.count == 2, let c = parts[0], let n = parts[1], c > 0, n > 0 {
            let probe = ExtendProbe(model: model, threads: threads, capacity: c + n + decode + 1)
            probe.prepare(context: c)
            let new = probe.randomTokens(n)
            var best = Double.infinity, bestRate = 0.0
            for _ in 0..<repeats {
                probe.prepare(context: c)
                var (seconds, logits) = probe.extend(new)
                best = min(best, seconds)
                let t1 = Clock.now()
                for i in 0..<decode {
                    let next = Sampler.argmax(logits)
                    logits = probe.ctx.forward(tokens: [next], positions: [Int32(c + n + i)], cache: probe.cache)
                }
                bestRate = max(bestRate, Double(decode) / Clock.seconds(since: t1))
            }
            extendFigure = (c, n, best * 1000, bestRate)
        }

        // The other matrix-product paths, on the same prompts, one after the other.
        var perPath: [(path: String, prefill: [(Int, Double, Double)], decode: Double)] = []
        if let kernels {
            let supported = String(cString: kv_qgemm_paths()).split(separator: ",").map(String.init)
            let wanted = kernels == "all" ? supported : kernels.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            for path in wanted where path != kernelPath {
                guard kv_qgemm_select(path) == 0 else {
                    throw CLIError("--kernels: this CPU has no '\(path)' path (it has \(supported.joined(separator: ", ")))")
                }
                perPath.append((path, measurePrefill(), measureDecode()))
            }
            _ = kv_qgemm_select(kernelPath)
        }

        let rss = MachineInfo.peakRSSBytes
        // What decode over the extended cache could reach at best: after the peak RSS is read,
        // as the floor's read measurement holds 64 MiB a thread.
        if extendFigure != nil { floor = AttentionFloor.measure(on: ctx) }

        // llama.cpp's decode at the extended context: its server, the same model and threads, a
        // prompt of C + N random token ids, then `decode` tokens with EOS ignored. The first request
        // computes the prompt; the repeats take it from the server's cache (cache_prompt), so
        // each decodes at the same positions as kvduel's figure above.
        var serverDecode: Double?
        var serverError: String?
        if let server, decode > 0, parts.count == 2, let c = parts[0], let n = parts[1], c > 0, n > 0 {
            if !json { FileHandle.standardError.write(Data("measuring llama.cpp's decode at \(c + n) tokens (\(server.path))...\n".utf8)) }
            do {
                try server.start(model: modelOptions.resolvedPath, threads: threads, context: c + n + decode + 16)
                defer { server.stop() }
                var prng = SplitMix64(seed: 7)
                let prompt = ExtendProbe.randomTokens(c + n, vocab: vocab, rng: &prng)
                var best = 0.0
                for _ in 0..<repeats + 1 {   // the first computes the prompt, the rest decode from its cache
                    let r = try server.complete(prompt: prompt, maxTokens: decode, cachePrompt: true, ignoreEOS: true)
                    guard r.predictedN > 0, r.predictedMs > 0 else { throw CLIError("llama-server reported no decode timings") }
                    best = max(best, Double(r.predictedN) / (r.predictedMs / 1000))
                }
                serverDecode = best
            } catch { serverError = "\(error)" }
        }

        // The reference, right after kvduel, on the same file, threads and lengths.
        var llama: LlamaBench.Result?
        var llamaError: String?
        if let reference {
            if !json { FileHandle.standardError.write(Data("measuring llama.cpp (\(reference.path))...\n".utf8)) }
            do {
                llama = try reference.run(model: modelOptions.resolvedPath, threads: threads, prompts: lengths,
                                          decode: decode, repeats: repeats)
            } catch { llamaError = "\(error)" }
        }

        if json {
            var obj = BenchHeader.json(model: model, path: modelOptions.resolvedPath, threads: threads)
            obj["decode_tokens"] = decode
            obj["decode_tok_s"] = bestDecode
            obj["peak_rss_bytes"] = rss
            if !perPath.isEmpty {
                obj["other_kernel_paths"] = perPath.map { p -> [String: Any] in
                    ["path": p.path, "decode_tok_s": p.decode,
                     "prefill": p.prefill.map { ["tokens": $0.0, "tok_s": $0.1, "ttft_ms": $0.2 * 1000] }]
                }
            }
            obj["prefill"] = prefillRates.map { (n, rate, ttft) -> [String: Any] in
                var row: [String: Any] = ["tokens": n, "tok_s": rate, "ttft_ms": ttft * 1000]
                if let r = llama?.prefill[n] { row["llama_cpp_tok_s"] = r; row["ratio"] = rate / r }
                return row
            }
            if let e = extendFigure {
                var row: [String: Any] = ["context_tokens": e.context, "new_tokens": e.new, "ms": e.ms, "decode_tok_s": e.decode]
                if let f = floor {
                    let keys = decodeKeys(e)
                    row["attention_floor"] = [
                        "slices_per_s": f.slicesPerSecond, "read_bytes_per_s": f.bytesPerSecond, "threads": f.threads, "mean_keys": keys,
                        "arithmetic_ms_per_token": f.arithmeticSeconds(config: model.config, keys: keys) * 1000,
                        "read_ms_per_token": f.readSeconds(config: model.config, keys: keys) * 1000,
                        "ms_per_token": f.seconds(config: model.config, keys: keys) * 1000,
                        "decode_bound_tok_s": f.decodeBound(config: model.config, keys: keys, shortRate: bestDecode, shortKeys: shortKeys),
                    ]
                }
                if let d = serverDecode { row["llama_cpp_decode_tok_s"] = d; row["decode_ratio"] = e.decode / d }
                if let serverError { row["llama_cpp_error"] = serverError }
                obj["extend"] = row
            }
            if let llama {
                var ref: [String: Any] = ["build_commit": llama.commit, "path": reference!.path, "statistic": "best sample"]
                if let d = llama.decode { ref["decode_tok_s"] = d; ref["decode_ratio"] = bestDecode / d }
                obj["llama_cpp"] = ref
            } else if let llamaError {
                obj["llama_cpp_error"] = llamaError
            }
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("kvduel bench engine")
        print(BenchHeader.machineLine())
        print(BenchHeader.modelLine(model, path: modelOptions.resolvedPath))
        print("threads : \(threads)   (best of \(repeats) runs)")
        print(BenchHeader.kernelLine(hint: "; KVDUEL_KERNEL or --kernels to compare"))
        if let llama {
            print("llama.cpp: \(llama.commit), llama-bench -t \(threads) -r \(repeats), best sample, measured in this run after kvduel")
        } else if let llamaError {
            print("llama.cpp: not measured: \(llamaError)")
        } else {
            print("llama.cpp: not measured (build it with `make reference`, or pass --llama-bench PATH)")
        }
        print("")
        print("prompt tokens   prefill tok/s   TTFT ms   llama.cpp tok/s   kvduel / llama.cpp")
        for (n, rate, ttft) in prefillRates {
            let ref = llama?.prefill[n].map { String(format: "%15.1f   %17.2fx", $0, rate / $0) }
                ?? String(repeating: " ", count: 14) + "-" + String(repeating: " ", count: 20) + "-"
            print(String(format: "%13d   %13.1f   %7.1f   %@", n, rate, ttft * 1000, ref))
        }
        var decodeLine = String(format: "decode %d tokens: %.1f tok/s", decode, bestDecode)
        if let d = llama?.decode { decodeLine += String(format: "   llama.cpp %.1f tok/s   %.2fx", d, bestDecode / d) }
        print(decodeLine)
        if let e = extendFigure {
            var line = String(format: "extend %d + %d tokens: %.1f ms, then decode %.1f tok/s at that context", e.context, e.new, e.ms, e.decode)
            if let d = serverDecode { line += String(format: "   llama.cpp %.1f tok/s   %.2fx", d, e.decode / d) }
            print(line)
            if let d = serverDecode, let server {
                print(String(format: "  llama.cpp's decode there: %@, same model and threads, %d prompt token ids then %d tokens (EOS ignored), best of %d, %.1f tok/s",
                             server.path, e.context + e.new, decode, repeats, d))
            } else if let serverError {
                print("  llama.cpp's decode there: not measured: \(serverError)")
            }
            if let f = floor {
                let keys = decodeKeys(e)
                let bound = f.decodeBound(config: model.config, keys: keys, shortRate: bestDecode, shortKeys: shortKeys)
                let c = model.config
                print(String(format: "  attention's floor over %.0f keys, measured now on %d threads: %.2f ms a token, the slower of",
                             keys, f.threads, f.seconds(config: c, keys: keys) * 1000))
                print(String(format: "    arithmetic %.2f ms: %.2f M slices of K and V rows at %.2f G/s (8 lanes converted from f16, then %d FMAs)",
                             f.arithmeticSeconds(config: c, keys: keys) * 1000, AttentionFloor.slices(config: c, keys: keys) / 1e6,
                             f.slicesPerSecond / 1e9, c.groupSize))
                print(String(format: "    reading    %.2f ms: %.1f MB of K and V at %.1f GB/s",
                             f.readSeconds(config: c, keys: keys) * 1000, AttentionFloor.bytes(config: c, keys: keys) / 1e6, f.bytesPerSecond / 1e9))
                print(String(format: "  so decode there, with a token's other work as at short context, could reach at most about %.1f tok/s (%.2f of short decode); measured %.1f (%.2f)",
                             bound, bound / bestDecode, e.decode, e.decode / bestDecode))
            }
        }
        if !perPath.isEmpty {
            print("")
            print("other matrix-product paths, measured after the figures above (same bits, other speed):")
            for p in perPath {
                let pre = zip(p.prefill, prefillRates).map { String(format: "%d: %.1f tok/s (%.2fx %@)", $0.0, $0.1, $0.1 / $1.1, kernelPath) }
                print("  \(p.path): prefill " + pre.joined(separator: ", ")
                      + String(format: "; decode %.1f tok/s (%.2fx %@)", p.decode, p.decode / bestDecode, kernelPath))
            }
        }
        print(String(format: "peak RSS: %.1f MiB (kvduel, before llama-bench ran)", Double(rss) / 1048576))
    }
}
