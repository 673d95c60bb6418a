import ArgumentParser
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
    @Option(help: "Append N tokens to a cache of C tokens (\"C+N\", empty to skip): the work that exact prefix reuse leaves, then decode at that context.")
    var extend: String = "2000+50"
    @Option(help: "Repetitions per figure (the best is reported).") var repeats: Int = 2
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        guard threads > 0 else { throw CLIError("--threads must be positive, got \(threads)") }
        let model = try modelOptions.load()
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

        var prefillRates: [(Int, Double, Double)] = []   // (tokens, tok/s, ttft seconds)
        for n in lengths {
            let tokens = randomTokens(n)
            var best = Double.infinity
            for _ in 0..<repeats {
                let cache = KVState(config: model.config, capacity: n + 1)
                let t0 = Clock.now()
                let logits = ctx.forward(tokens: tokens, positions: (0..<Int32(n)).map { $0 }, cache: cache)
                _ = Sampler.argmax(logits)
                best = min(best, Clock.seconds(since: t0))
            }
            prefillRates.append((n, Double(n) / best, best))
        }

        // Decode: a 16-token prompt, then `decode` greedy steps.
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

        // Extend: N new tokens on top of C cached ones (a multi-turn chat's next turn with its
        // prefix reused), then greedy decode at that context.
        var extendFigure: (context: Int, new: Int, ms: Double, decode: Double)?
        if parts.count == 2, let c = parts[0], let n = parts[1], c > 0, n > 0 {
            let cache = KVState(config: model.config, capacity: c + n + decode + 1)
            ctx.forward(tokens: randomTokens(c), positions: (0..<Int32(c)).map { $0 }, cache: cache, logits: .none)
            let new = randomTokens(n)
            var best = Double.infinity, bestRate = 0.0
            for _ in 0..<repeats {
                cache.truncate(to: c)
                let t0 = Clock.now()
                var logits = ctx.forward(tokens: new, positions: (Int32(c)..<Int32(c + n)).map { $0 }, cache: cache)
                best = min(best, Clock.seconds(since: t0))
                let t1 = Clock.now()
                for i in 0..<decode {
                    let next = Sampler.argmax(logits)
                    logits = ctx.forward(tokens: [next], positions: [Int32(c + n + i)], cache: cache)
                }
                bestRate = max(bestRate, Double(decode) / Clock.seconds(since: t1))
            }
            extendFigure = (c, n, best * 1000, bestRate)
        }

        let machine = MachineInfo.current
        let rss = MachineInfo.peakRSSBytes
        // llama.cpp b4748 on this project's reference machine (2 threads, same Q4_1 file),
        // from docs/platform notes: not measured in this run.
        let reference: [Int: Double] = [512: 175, 2048: 149]
        let referenceDecode = 89.0

        if json {
            var obj: [String: Any] = [
                "machine": machine.description, "cpus": machine.cpus, "threads": threads,
                "model": model.config.name, "model_path": modelOptions.resolvedPath,
                "decode_tokens": decode, "decode_tok_s": bestDecode, "peak_rss_bytes": rss,
            ]
            obj["prefill"] = prefillRates.map { ["tokens": $0.0, "tok_s": $0.1, "ttft_ms": $0.2 * 1000] }
            if let e = extendFigure {
                obj["extend"] = ["context_tokens": e.context, "new_tokens": e.new, "ms": e.ms, "decode_tok_s": e.decode]
            }
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("kvduel bench engine")
        print("machine : \(machine.description), \(machine.cpus) CPUs")
        print("model   : \(model.config.name) (\(modelOptions.resolvedPath))")
        print("threads : \(threads)   (best of \(repeats) runs)")
        print("")
        print("prompt tokens   prefill tok/s   TTFT ms   vs llama.cpp b4748 (reference figure, not this run)")
        for (n, rate, ttft) in prefillRates {
            let ref = reference[n].map { String(format: "%.2fx of %.0f tok/s", rate / $0, $0) } ?? "-"
            print(String(format: "%13d   %13.1f   %7.1f   %@", n, rate, ttft * 1000, ref))
        }
        print(String(format: "decode %d tokens: %.1f tok/s   (%.2fx of llama.cpp tg128 %.0f tok/s, reference figure)",
                     decode, bestDecode, bestDecode / referenceDecode, referenceDecode))
        if let e = extendFigure {
            print(String(format: "extend %d + %d tokens: %.1f ms, then decode %.1f tok/s at that context",
                         e.context, e.new, e.ms, e.decode))
        }
        print(String(format: "peak RSS: %.1f MiB", Double(rss) / 1048576))
    }
}
