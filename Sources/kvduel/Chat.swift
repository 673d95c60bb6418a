import ArgumentParser
import DuelCore
import Engine
import Foundation
import GGUF
import Llama
import TerminalUI
import Tokenizer

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The duel: ask both engines, side by side, in a full-screen terminal app.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var cacheOptions: CacheOptions
    @Option(help: "Threads in all; with the parallel schedule each engine gets half.")
    var threads = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "parallel (both at once, half the threads each) or alternate (one after the other, all threads).")
    var schedule: String = "parallel"
    @Option(help: "Load *.txt and *.md files in this directory as context blocks.") var docs: String?
    @Option(help: "A document file to use as a context block (repeatable).") var doc: [String] = []
    @Option(help: "Start from a bench scenario's documents and system prompt.") var scenario: String?
    @Option(help: "Theme: default, presentation (high contrast) or mono.") var theme: String = "default"
    @Option(help: "Maximum tokens per answer.") var maxTokens: Int?
    @Flag(help: "Keep the KV store in RAM only (no disk tier under $KVDUEL_CACHE_DIR/kv).") var noDisk = false
    @Flag(help: "Run with stand-in engines and no model (to try the screen).") var demo = false

    func run() throws {
        guard let sched = Schedule(rawValue: schedule) else { throw CLIError("--schedule must be parallel or alternate, got '\(schedule)'") }
        guard ["default", "presentation", "mono"].contains(theme) else { throw CLIError("--theme must be default, presentation or mono") }
        guard threads > 0 else { throw CLIError("--threads must be positive, got \(threads)") }
        let perEngine = sched == .parallel ? max(1, threads / 2) : threads
        let options = try cacheOptions.engineOptions(diskDirectory: noDisk ? nil : ModelOptions.cacheDir + "/kv")

        var config = DuelConfig(info: SessionInfo(modelName: "", threadsPerEngine: perEngine, schedule: sched,
                                                  recomputeRatio: options.recomputeRatio,
                                                  storeCapacityBytes: options.ramBytes, storage: options.encoding.description),
                                theme: theme)
        if let scenario {
            do { config.apply(try Scenario.load(path: scenario)) } catch { throw CLIError("\(error)") }
        }
        if let docs {
            do { config.documents = try Document.loadDirectory(docs) } catch { throw CLIError("cannot read documents in \(docs): \(error.localizedDescription)") }
            guard !config.documents.isEmpty else { throw CLIError("no .txt or .md files in \(docs)") }
        }
        if !doc.isEmpty {
            do { config.documents += try doc.map { try Document.load(path: $0) } } catch { throw CLIError("cannot read document: \(error.localizedDescription)") }
        }
        if config.documents.isEmpty && scenario == nil {
            // The sample set: four of six blocks included, so the first (cold) answer comes quickly
            // on a laptop; Space includes the others.
            config.documents = Document.defaultDocuments()
            if docs == nil && doc.isEmpty { config.initialOrder = config.documents.prefix(4).map(\.id) }
        }
        if let maxTokens { config.maxTokens = maxTokens }

        if demo {
            config.info.modelName = "demo engine (no model)"
            let exit = try runDuelDemo(config: config)
            if case .signal(let s) = exit { Foundation.exit(128 + s) }
            return
        }

        // Everything that can fail with a one-line message fails before the screen opens.
        let path = try modelOptions.existingPath()
        let file: GGUFFile
        let tokenizer: Tokenizer
        let llamaConfig: LlamaConfig
        do {
            file = try GGUFFile(path: path)
            tokenizer = try Tokenizer(gguf: file)
            llamaConfig = try LlamaConfig(gguf: file)
        } catch { throw CLIError("\(path): \(error)") }
        config.info.modelName = llamaConfig.name
        config.info.modelBytes = file.fileSize
        let builder = ChatPromptBuilder(tokenizer: tokenizer, template: try modelOptions.chatTemplate(tokenizer))

        let exit = try runDuel(config: config, promptBuilder: builder, makeEngines: { progress in
            progress(0, "Loading \(llamaConfig.name)…")
            let model = try LlamaModel(path: path) { f in progress(f * 0.95, "Loading weights… \(Int(f * 100))%") }
            let cached = try ReuseEngine(model: model, tokenizer: tokenizer, threads: perEngine, options: options)
            let baseline = BaselineEngine(model: model, tokenizer: tokenizer, threads: perEngine)
            progress(1, "Ready")
            return DuelEngines(cached: cached, baseline: baseline)
        }, divergence: { _, cached, baseline in
            guard let b = baseline.firstTokenLogits, let c = cached.firstTokenLogits else { return nil }
            return klDivergence(b, c)
        })
        if case .signal(let s) = exit { Foundation.exit(128 + s) }
    }
}
