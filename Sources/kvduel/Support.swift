import ArgumentParser
import Foundation
import DuelCore
import Llama
import Tokenizer

/// Monotonic clock used by the CLI.
enum Clock {
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
    static func seconds(since t0: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
}

struct MachineInfo {
    var description: String
    var cpus: Int

    static var current: MachineInfo {
        var name = "unknown CPU"
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            name = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        #if os(Linux)
        let os = "Linux"
        #else
        let os = "macOS"
        #endif
        return MachineInfo(description: "\(name), \(os)", cpus: ProcessInfo.processInfo.activeProcessorCount)
    }

    static var peakRSSBytes: Int {
        var u = rusage()
        getrusage(RUSAGE_SELF_VALUE, &u)
        #if os(Linux)
        return Int(u.ru_maxrss) * 1024
        #else
        return Int(u.ru_maxrss)
        #endif
    }

    static var currentRSSBytes: Int {
        #if os(Linux)
        if let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let f = s.split(separator: " ")
            if f.count > 1, let pages = Int(f[1]) { return pages * Int(sysconf(Int32(_SC_PAGESIZE))) }
        }
        #endif
        return peakRSSBytes
    }
}

/// `--model PATH`, defaulting to the default model in the kvduel cache directory.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "GGUF model file (default: SmolLM2-135M-Instruct Q4_1 in $KVDUEL_CACHE_DIR/models).")
    var model: String?

    static var cacheDir: String {
        if let d = ProcessInfo.processInfo.environment["KVDUEL_CACHE_DIR"], !d.isEmpty { return d }
        return NSString(string: "~/.cache/kvduel").expandingTildeInPath
    }
    static var defaultModelPath: String { cacheDir + "/models/SmolLM2-135M-Instruct.Q4_1.gguf" }

    @Option(name: .long, help: ArgumentHelp("Chat format instead of the one detected from the model's template: chatml (SmolLM, Qwen), llama3 or mistral.", valueName: "format"))
    var chatFormat: String?

    var resolvedPath: String { model ?? Self.defaultModelPath }

    /// The chat format: `--chat-format` when given, else the one recognised in the model's
    /// template; a template kvduel does not recognise is a one-line error naming the option.
    func chatTemplate(_ tokenizer: Tokenizer) throws -> ChatTemplate {
        if let name = chatFormat {
            guard let f = ChatFormat(rawValue: name) else {
                throw CLIError("--chat-format takes \(ChatFormat.allCases.map(\.rawValue).joined(separator: ", ")), got '\(name)'")
            }
            return ChatTemplate(format: f, template: tokenizer.chatTemplateSource)
        }
        guard tokenizer.chatTemplate.isRecognized else {
            let what = tokenizer.chatTemplateSource == nil ? "has no chat template" : "has a chat template kvduel does not recognise"
            throw CLIError("the model \(what); choose one with --chat-format chatml|llama3|mistral")
        }
        return tokenizer.chatTemplate
    }

    /// The model's path, or a one-line error saying how to get it.
    func existingPath() throws -> String {
        let path = resolvedPath
        guard FileManager.default.fileExists(atPath: path) else {
            if model == nil {
                throw CLIError("default model not found at \(path); fetch it with: bash scripts/fetch-model.sh (or make setup)")
            }
            throw CLIError("model file not found: \(path)")
        }
        return path
    }

    func load(progress: ((Double) -> Void)? = nil) throws -> LlamaModel {
        let path = try existingPath()
        do { return try LlamaModel(path: path, identityMemoDirectory: Self.cacheDir, progress: progress) } catch { throw CLIError("\(path): \(error)") }
    }
}

/// A checked command-line value: a `Limits.Error` becomes a `CLIError`; a clamp's note goes to
/// standard error (once per distinct note), before any screen opens.
func checked<T: Equatable>(_ check: @autoclosure () throws -> Limits.Checked<T>) throws -> T {
    do {
        let c = try check()
        if let note = c.note { Notes.print(note) }
        return c.value
    } catch let e as Limits.Error {
        throw CLIError(e.description)
    }
}

func checkedMaxTokens(_ n: Int, contextLength: Int? = nil) throws -> Int {
    do { return try Limits.maxTokens(n, contextLength: contextLength) } catch let e as Limits.Error { throw CLIError(e.description) }
}

enum Notes {
    nonisolated(unsafe) static var printed: Set<String> = []
    static func print(_ note: String) {
        guard printed.insert(note).inserted else { return }
        FileHandle.standardError.write(Data("kvduel: \(note)\n".utf8))
    }
}

/// An error printed as one line, with a non-zero exit.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

#if os(Linux)
let RUSAGE_SELF_VALUE = __rusage_who_t(RUSAGE_SELF.rawValue)
#else
let RUSAGE_SELF_VALUE = RUSAGE_SELF
#endif
