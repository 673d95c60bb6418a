import ArgumentParser
import DuelCore
import Engine
import Foundation
import GGUF
import KVCache
import Llama
import RedisTier
import Session
import TerminalUI
import Tokenizer

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The duel: ask both engines, side by side, in a full-screen terminal app.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var cacheOptions: CacheOptions
    @OptionGroup var remoteOptions: RemoteOptions
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
    @Option(help: "Record the session log to this file as the duel runs (newline-delimited JSON, mode 0600).") var record: String?
    @Flag(help: "Play the --scenario unattended: type each question, move the blocks, wait for both answers, hold.") var autoplay = false
    @Option(help: "Autoplay typing speed, characters per second.") var typingCps: Double = 14
    @Option(help: "Autoplay: seconds to hold after both answers (a turn's `hold:` wins).") var hold: Double = 3
    @Flag(help: "Autoplay: after the last turn, reset to cold and start over (booth mode).") var loop = false

    mutating func run() throws {
        guard let sched = Schedule(rawValue: schedule) else { throw CLIError("--schedule must be parallel or alternate, got '\(schedule)'") }
        guard ["default", "presentation", "mono"].contains(theme) else { throw CLIError("--theme must be default, presentation or mono") }
        threads = try checked(Limits.threads(threads))
        if let m = maxTokens { maxTokens = try checkedMaxTokens(m) }
        let perEngine = sched == .parallel ? max(1, threads / 2) : threads
        let options = try cacheOptions.engineOptions(diskDirectory: noDisk ? nil : ModelOptions.cacheDir + "/kv")
        let remoteURL = try remoteOptions.url()
        let links = remoteOptions
        _ = try links.strategy()
        _ = try links.throttles()

        var config = DuelConfig(info: SessionInfo(modelName: "", threadsPerEngine: perEngine, schedule: sched,
                                                  recomputeRatio: options.recomputeRatio,
                                                  storeCapacityBytes: options.ramBytes, storage: options.encoding.description),
                                theme: theme)
        config.info.remote = remoteURL?.description
        config.info.loadStrategy = try remoteOptions.strategy().rawValue
        config.info.link = remoteOptions.linkDescription
        var loadedScenario: Scenario?
        if let scenario {
            do { loadedScenario = try Scenario.load(path: scenario) } catch { throw CLIError("\(error)") }
            config.apply(loadedScenario!)
        }
        if autoplay && loadedScenario == nil { throw CLIError("--autoplay plays a scenario: give --scenario FILE") }
        if !autoplay && (loop || hold != 3 || typingCps != 14) { throw CLIError("--loop, --hold and --typing-cps go with --autoplay") }
        guard typingCps > 0, typingCps.isFinite else { throw CLIError("--typing-cps must be positive, got \(typingCps)") }
        guard hold >= 0, hold.isFinite else { throw CLIError("--hold must be 0 or more seconds, got \(hold)") }
        let source = loadedScenario.flatMap { sc in
            autoplay ? Autoplay(scenario: sc, options: Autoplay.Options(typingCPS: typingCps, hold: hold, loop: loop)) : nil
        }
        if let docs {
            do { config.documents = try Document.loadDirectory(docs) } catch let e as DocumentError { throw CLIError("--docs: \(e)") } catch { throw CLIError("cannot read documents in \(docs): \(error.localizedDescription)") }
            guard !config.documents.isEmpty else { throw CLIError("no .txt or .md files in \(docs)") }
        }
        if !doc.isEmpty {
            do { config.documents += try doc.map { try Document.load(path: $0) } } catch { throw CLIError("--doc: \(error)") }
        }
        if config.documents.isEmpty && scenario == nil {
            // The sample set: four of six blocks included, so the first (cold) answer comes quickly
            // on a laptop; Space includes the others.
            config.documents = Document.defaultDocuments()
            if docs == nil && doc.isEmpty { config.initialOrder = config.documents.prefix(4).map(\.id) }
        }
        if let maxTokens { config.maxTokens = maxTokens }

        func header(model: SessionHeader.Model, engines: String) -> SessionHeader {
            SessionHeader(config: config, model: model,
                          options: .init(schedule: sched.rawValue, threadsPerEngine: perEngine,
                                         recomputeRatio: options.recomputeRatio, encoding: options.encoding.description,
                                         storeRAMBytes: options.ramBytes, diskTier: !noDisk && !demo, maxTokens: config.maxTokens,
                                         temperature: Double(config.sampling.temperature), topK: config.sampling.topK,
                                         topP: Double(config.sampling.topP), seed: config.sampling.seed, engines: engines),
                          cols: 0, rows: 0, title: loadedScenario.map { "kvduel · \($0.name)" })
        }
        var chrome = SessionChrome()
        chrome.recording = record != nil

        if demo {
            config.info.modelName = "demo engine (no model)"
            let recorder = try record.map { path in
                try openRecorder(path, header(model: .init(name: config.info.modelName), engines: "demo"))
            }
            let exit = try runDuelDemo(config: config, source: source, sinks: recorder.map { [$0] } ?? [], chrome: chrome)
            finish(recorder)
            if case .signal(let s) = exit { Foundation.exit(128 + s) }
            if case .loadFailed(let m) = exit { throw CLIError(m) }
            return
        }

        // Everything that can fail with a one-line message fails before the screen opens.
        let path = try modelOptions.existingPath()
        if !noDisk {
            for dir in [ModelOptions.cacheDir, ModelOptions.cacheDir + "/kv"] {
                if let note = DiskTier.tightenPermissions(of: dir) { Notes.print(note) }
            }
        }
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
        let recorder = try record.map { p in
            try openRecorder(p, header(model: .init(name: llamaConfig.name, fileBytes: file.fileSize, file: path), engines: "llama"))
        }

        let exit = try runDuel(config: config, promptBuilder: builder, makeEngines: { progress in
            progress(0, "Loading \(llamaConfig.name)…")
            let model = try LlamaModel(path: path, identityMemoDirectory: ModelOptions.cacheDir,
                                       progress: { f in progress(f * 0.9, "Loading weights… \(Int(f * 100))%") },
                                       fingerprintProgress: { f in progress(0.9 + f * 0.05, "Fingerprinting… \(Int(f * 100))%") })
            recorder?.setModel(fingerprint: model.fingerprint)
            var options = options
            if let remoteURL { progress(0.96, "Connecting to \(remoteURL)…") }
            try links.apply(to: &options, url: remoteURL, model: model)
            return try makeLlamaEngines(model, tokenizer, threads: perEngine, options: options, progress: progress)
        }, divergence: firstTokenKL, source: source, sinks: recorder.map { [$0] } ?? [], chrome: chrome)
        finish(recorder)
        if case .signal(let s) = exit { Foundation.exit(128 + s) }
        if case .loadFailed(let m) = exit { throw CLIError(m) }
    }
}

/// Both engines on one loaded model.
func makeLlamaEngines(_ model: LlamaModel, _ tokenizer: Tokenizer, threads: Int, options: ReuseEngine.Options,
                      progress: (Double, String) -> Void) throws -> DuelEngines {
    let cached = try ReuseEngine(model: model, tokenizer: tokenizer, threads: threads, options: options)
    let baseline = BaselineEngine(model: model, tokenizer: tokenizer, threads: threads)
    progress(1, "Ready")
    return DuelEngines(cached: cached, baseline: baseline)
}

/// The answer check: KL(baseline ‖ cached) of the first token's distribution.
let firstTokenKL: DivergenceProbe = { _, cached, baseline in
    guard let b = baseline.firstTokenLogits, let c = cached.firstTokenLogits else { return nil }
    return klDivergence(b, c)
}

/// Opens a session log for writing before the screen opens (a bad path is a one-line error).
func openRecorder(_ path: String, _ header: SessionHeader) throws -> SessionRecorder {
    do { return try SessionRecorder(path: path, header: header) } catch { throw CLIError("\(error)") }
}

/// Closes the log and says what was written (after the terminal is restored).
func finish(_ recorder: SessionRecorder?) {
    guard let recorder else { return }
    recorder.close()
    if let e = recorder.writeError {
        FileHandle.standardError.write(Data("warning: recording stopped: \(e)\n".utf8))
    } else {
        FileHandle.standardError.write(Data("recorded \(recorder.eventsWritten) events to \(recorder.path)\n".utf8))
    }
}
