import ArgumentParser
import DuelCore
import Engine
import Foundation
import GGUF
import Llama
import Session
import TerminalUI
import Tokenizer

/// Reads a session log, or a one-line error.
func readLog(_ path: String) throws -> SessionLog {
    do { return try SessionLog.read(path: path) } catch { throw CLIError("\(error)") }
}

/// Damage and skipped kinds, one line each, after the terminal is restored.
func reportLogProblems(_ log: SessionLog) {
    if let w = log.warning { FileHandle.standardError.write(Data((w + "\n").utf8)) }
    if log.skippedUnknown > 0 {
        FileHandle.standardError.write(Data("note: skipped \(log.skippedUnknown) events of kinds this kvduel does not know\n".utf8))
    }
}

struct PlaybackArguments: ParsableArguments {
    @Option(help: "Playback speed (2 = twice as fast).") var speed: Double = 1
    @Option(help: "Cut pauses longer than this many seconds to it (like asciinema -i).") var idleLimit: Double?
    @Option(help: "Theme: default, presentation or mono (default: the recorded one).") var theme: String?

    func validated() throws -> PlaybackOptions {
        guard speed > 0, speed.isFinite else { throw CLIError("--speed must be positive, got \(speed)") }
        if let idleLimit { guard idleLimit > 0, idleLimit.isFinite else { throw CLIError("--idle-limit must be positive seconds, got \(idleLimit)") } }
        if let theme { guard Theme.names.contains(theme) else { throw CLIError("--theme must be default, presentation or mono, got '\(theme)'") } }
        return PlaybackOptions(speed: speed, idleLimit: idleLimit)
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Play a recorded session full screen, with no model (or --live: re-run it on the real engines).")

    @Argument(help: "A session log written by `chat --record`.") var file: String
    @OptionGroup var playback: PlaybackArguments
    @Flag(help: "Pause at each marker (Space resumes).") var pauseAtMarkers = false
    @Flag(help: "Re-run the person's actions against the real engines on the recorded model, then compare TTFT per turn.") var live = false
    @Option(name: .long, help: "With --live: the GGUF model file (must be the recorded model; default: the default model).") var model: String?
    @Option(help: "With --live: threads in all (default: as recorded).") var threads: Int?
    @Option(help: "With --live: record the re-run to this file.") var record: String?

    func run() throws {
        var options = try playback.validated()
        options.pauseAtMarkers = pauseAtMarkers
        let log = try readLog(file)
        if live {
            if playback.speed != 1 || playback.idleLimit != nil || pauseAtMarkers {
                throw CLIError("--speed, --idle-limit and --pause-at-markers are for replays; --live runs at the engines' own pace")
            }
            try runLive(log)
            return
        }
        if record != nil || model != nil || threads != nil { throw CLIError("--model, --threads and --record go with --live") }
        let exit = try runReplay(log: log, options: options, theme: playback.theme ?? log.header.theme)
        reportLogProblems(log)
        if case .signal(let s) = exit { Foundation.exit(128 + s) }
    }

    func runLive(_ log: SessionLog) throws {
        let h = log.header
        var config = h.config
        if let t = playback.theme { config.theme = t }
        let recorded = log.turns
        let source = LiveRerun(log: log)
        let collector = TurnCollector(config: config)
        var chrome = SessionChrome()
        chrome.mode = .liveRerun
        chrome.recording = record != nil
        let onFrame: (inout AppState) -> Void = { state in
            guard state.chrome.comparison == nil, source.isFinished, !state.turnInFlight,
                  !state.panes.contains(where: \.isBusy), collector.turns.count >= recorded.count else { return }
            state.chrome.comparison = compareTTFT(recorded: recorded, live: collector.turns)
        }
        var headerCopy = h
        headerCopy.title = "live re-run of " + h.title
        headerCopy.started = ISO8601DateFormatter().string(from: Date())
        headerCopy.startedUnix = Date().timeIntervalSince1970
        headerCopy.machine = .current

        if h.options.engines == "demo" {
            let recorder = try record.map { try openRecorder($0, headerCopy) }
            let exit = try runDuelDemo(config: config, source: source, sinks: [collector] + (recorder.map { [$0] } ?? []),
                                       chrome: chrome, onFrame: onFrame)
            finish(recorder)
            printComparison(recorded: recorded, live: collector.turns)
            if case .signal(let s) = exit { Foundation.exit(128 + s) }
            return
        }

        // The recorded model, checked before the screen opens.
        let path = model ?? ModelOptions.defaultModelPath
        let needed = "\(h.model.name) (fingerprint \(h.model.fingerprint.isEmpty ? "unknown" : h.model.fingerprint), \(h.model.fileBytes) bytes\(h.model.file.isEmpty ? "" : ", recorded from \(h.model.file)"))"
        guard FileManager.default.fileExists(atPath: path) else {
            throw CLIError("--live needs the recorded model \(needed); \(path) does not exist: pass --model FILE")
        }
        let llama: LlamaModel
        let tokenizer: Tokenizer
        do {
            llama = try LlamaModel(path: path, identityMemoDirectory: ModelOptions.cacheDir)
            tokenizer = try Tokenizer(gguf: llama.file)
        } catch { throw CLIError("\(path): \(error)") }
        guard llama.fingerprint == h.model.fingerprint else {
            throw CLIError("\(file) was recorded on \(needed), but \(path) is \(llama.config.name) (fingerprint \(llama.fingerprint)): pass --model with the recorded model")
        }
        let perEngine = threads.map { t in h.options.schedule == "parallel" ? max(1, t / 2) : t } ?? h.options.threadsPerEngine
        guard perEngine > 0 else { throw CLIError("--threads must be positive") }
        config.info.threadsPerEngine = perEngine
        headerCopy.options.threadsPerEngine = perEngine
        let engineOptions = try CacheOptions.engineOptions(recompute: h.options.recomputeRatio,
                                                          cacheMB: max(1, h.options.storeRAMBytes >> 20),
                                                          kvEncoding: h.options.encoding,
                                                          diskDirectory: h.options.diskTier ? ModelOptions.cacheDir + "/kv" : nil)
        let recorder = try record.map { p -> SessionRecorder in
            let r = try openRecorder(p, headerCopy)
            r.setModel(fingerprint: llama.fingerprint)
            return r
        }
        let exit = try runDuel(config: config, promptBuilder: ChatPromptBuilder(tokenizer: tokenizer), makeEngines: { progress in
            try makeLlamaEngines(llama, tokenizer, threads: perEngine, options: engineOptions, progress: progress)
        }, divergence: firstTokenKL, source: source, sinks: [collector] + (recorder.map { [$0] } ?? []), chrome: chrome, onFrame: onFrame)
        finish(recorder)
        printComparison(recorded: recorded, live: collector.turns)
        if case .signal(let s) = exit { Foundation.exit(128 + s) }
    }

    func printComparison(recorded: [TurnFigures], live: [TurnFigures]) {
        guard !live.isEmpty else { return }
        print(comparisonLines(compareTTFT(recorded: recorded, live: live)).joined(separator: "\n"))
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a recorded session as an asciicast v2 file (for asciinema, agg, slides), with no model.")

    @Argument(help: "A session log written by `chat --record`.") var file: String
    @Option(name: .shortAndLong, help: "Output .cast file.") var output: String
    @Option(help: "Terminal size COLSxROWS (default: the recorded size).") var size: String?
    @OptionGroup var playback: PlaybackArguments

    func run() throws {
        var options = ExportOptions()
        options.playback = try playback.validated()
        options.theme = playback.theme
        if let size {
            let parts = size.lowercased().split(separator: "x")
            guard parts.count == 2, let c = Int(parts[0]), let r = Int(parts[1]), c > 0, r > 0, c <= 1000, r <= 500 else {
                throw CLIError("--size must be COLSxROWS, e.g. 160x45, got '\(size)'")
            }
            options.cols = c
            options.rows = r
        }
        let log = try readLog(file)
        let (text, summary) = try exportAsciicast(log, options: options)
        do { try text.write(toFile: output, atomically: true, encoding: .utf8) } catch {
            throw CLIError("cannot write \(output): \(error.localizedDescription)")
        }
        reportLogProblems(log)
        print("wrote \(output): asciicast v2, \(summary.cols)×\(summary.rows), \(summary.frames) frames, \(summary.markers) markers, \(String(format: "%.1f", summary.duration)) s")
    }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw a recorded session's TTFT, hit rate and memory per turn as SVG or HTML, for a slide.")

    @Argument(help: "A session log written by `chat --record`.") var file: String
    @Option(name: .shortAndLong, help: "Output file: .svg or .html.") var output: String

    func run() throws {
        let ext = (output as NSString).pathExtension.lowercased()
        guard ext == "svg" || ext == "html" || ext == "htm" else { throw CLIError("--output must end in .svg or .html, got '\(output)'") }
        let log = try readLog(file)
        let text = ext == "svg" ? SessionReport.svg(log) : SessionReport.html(log)
        do { try text.write(toFile: output, atomically: true, encoding: .utf8) } catch {
            throw CLIError("cannot write \(output): \(error.localizedDescription)")
        }
        reportLogProblems(log)
        let turns = log.turns
        print("wrote \(output): \(turns.count) turns" + (turns.compactMap(\.speedup).isEmpty ? "" :
            ", speed-up per turn " + turns.map { $0.speedup.map { "×" + String(format: "%.1f", $0) } ?? "–" }.joined(separator: " ")))
    }
}
