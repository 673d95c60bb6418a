import ArgumentParser
import DuelCore
import Foundation
import GGUF
import Llama
import Tokenizer

/// Reads a prompt given inline or from a file (byte for byte).
func readPrompt(text: String?, file: String?) throws -> String {
    switch (text, file) {
    case (let t?, nil): return t
    case (nil, let f?):
        // "-" is standard input; FileHandle also reads pipes such as /dev/stdin.
        var isDir: ObjCBool = false
        if f != "-" && FileManager.default.fileExists(atPath: f, isDirectory: &isDir) && isDir.boolValue {
            throw CLIError("cannot read prompt file: \(f) is a directory")
        }
        guard let h = f == "-" ? FileHandle.standardInput : FileHandle(forReadingAtPath: f) else {
            throw CLIError("cannot read prompt file: \(f)")
        }
        let data = h.readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self)
    default: throw CLIError("give exactly one of --prompt and --prompt-file")
    }
}

func loadTokenizer(_ file: GGUFFile) throws -> Tokenizer {
    do { return try Tokenizer(gguf: file) } catch { throw CLIError("\(file.path): \(error)") }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a prompt, streamed, with a timing line.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Prompt text.") var prompt: String?
    @Option(help: "Read the prompt from a file, byte for byte (- for standard input).") var promptFile: String?
    @Flag(help: "Wrap the prompt as a user message in the model's chat template (with its default system prompt).") var chat = false
    @Option(help: "System prompt for --chat instead of the template's default (\"\" for none).") var system: String?
    @Option(help: "Maximum tokens to generate.") var maxTokens = 128
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 0
    @Option(help: "Top-k (0 = off).") var topK = 40
    @Option(help: "Top-p (1 = off).") var topP: Float = 0.95
    @Option(help: "Random seed for sampling.") var seed: UInt64 = 0
    @Option(help: "Worker threads.") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "About 15-bit activations in matrix products (a second int8 pass over the rounding residual): float32-like results at about half the speed.") var preciseActivations = false

    mutating func run() throws {
        threads = try checked(Limits.threads(threads))
        maxTokens = try checkedMaxTokens(maxTokens)
        let text = try readPrompt(text: prompt, file: promptFile)
        let model = try modelOptions.load()
        let tok = try loadTokenizer(model.file)
        let t0 = Clock.now()
        guard system == nil || chat else { throw CLIError("--system applies to --chat prompts; add --chat") }
        let messages: [ChatMessage] = if let s = system, !s.isEmpty { [.system(s), .user(text)] } else { [.user(text)] }
        let rendered = chat
            ? try modelOptions.chatTemplate(tok).render(messages, addGenerationPrompt: true, defaultSystemPrompt: system == nil)
            : text
        let ids = tok.encode(rendered)
        guard !ids.isEmpty else { throw CLIError("the prompt is empty") }
        guard ids.count + maxTokens <= model.config.contextLength else {
            throw CLIError("prompt of \(ids.count) tokens plus \(maxTokens) to generate exceeds the model's context of \(model.config.contextLength) tokens")
        }
        let ctx = LlamaContext(model: model, threads: threads)
        ctx.preciseActivations = preciseActivations
        let cache = KVState(config: model.config, capacity: ids.count + maxTokens)
        var sampler = Sampler(temperature: temperature, topK: topK, topP: topP, seed: seed)
        var logits = ctx.forward(tokens: ids, positions: (0..<Int32(ids.count)).map { $0 }, cache: cache)
        let prefillSeconds = Clock.seconds(since: t0)
        var decoder = tok.makeStreamDecoder()
        var generated = 0
        var ttft = 0.0
        let t1 = Clock.now()
        while generated < maxTokens {
            let next = sampler.sample(logits)
            if generated == 0 { ttft = Clock.seconds(since: t0) }
            generated += 1
            if tok.isEndOfGeneration(next) { break }
            let piece = decoder.append(next)
            if !piece.isEmpty { FileHandle.standardOutput.write(Data(piece.utf8)) }
            if generated == maxTokens { break }
            logits = ctx.forward(tokens: [next], positions: [Int32(ids.count + generated - 1)], cache: cache)
        }
        let rest = decoder.flush()
        FileHandle.standardOutput.write(Data((rest + "\n").utf8))
        let decodeSeconds = Clock.seconds(since: t1)
        let decodeRate = generated > 1 ? Double(generated - 1) / decodeSeconds : 0
        let line = String(format: "[%d prompt tokens · prefill %.1f tok/s · %d generated · decode %.1f tok/s · TTFT %.0f ms · %d threads]",
                          ids.count, Double(ids.count) / prefillSeconds, generated, decodeRate, ttft * 1000, threads)
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the token ids of a text (control tokens parsed, no BOS unless the model asks).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Text file, used byte for byte (- for standard input).") var textFile: String?
    @Option(help: "Text.") var text: String?
    @Flag(help: "Print {\"ids\": [...]}.") var json = false

    func run() throws {
        let input = try readPrompt(text: text, file: textFile)
        let file: GGUFFile
        do { file = try GGUFFile(path: modelOptions.resolvedPath) } catch { throw CLIError("\(modelOptions.resolvedPath): \(error)") }
        let tok = try loadTokenizer(file)
        let ids = tok.encode(input)
        if json {
            print("{\"ids\": [\(ids.map(String.init).joined(separator: ", "))]}")
        } else {
            for id in ids { print(id, String(reflecting: tok.tokenText(id))) }
        }
    }
}

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the prompt's token ids and the final position's top logits.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Prompt file, used byte for byte (- for standard input).") var promptFile: String?
    @Option(help: "Token ids instead of a prompt file, comma-separated.") var ids: String?
    @Option(help: "How many top logits to print.") var top = 10
    @Option(help: "Write all final-position logits as raw little-endian float32.") var dump: String?
    @Option(help: "Worker threads.") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "About 15-bit activations in matrix products (a second int8 pass over the rounding residual): float32-like results at about half the speed.") var preciseActivations = false
    @Flag(help: "Print JSON.") var json = false

    mutating func run() throws {
        threads = try checked(Limits.threads(threads))
        let model = try modelOptions.load()
        let tok = try loadTokenizer(model.file)
        let ids: [Int32]
        if let list = self.ids {
            ids = try list.split(separator: ",").map {
                guard let v = Int32($0.trimmingCharacters(in: .whitespaces)), v >= 0, Int(v) < model.config.vocabSize else {
                    throw CLIError("invalid token id '\($0)' (vocabulary has \(model.config.vocabSize) tokens)")
                }
                return v
            }
        } else {
            ids = tok.encode(try readPrompt(text: nil, file: promptFile))
        }
        guard !ids.isEmpty else { throw CLIError("the prompt is empty") }
        guard ids.count <= model.config.contextLength else {
            throw CLIError("prompt of \(ids.count) tokens exceeds the model's context of \(model.config.contextLength)")
        }
        let ctx = LlamaContext(model: model, threads: threads)
        ctx.preciseActivations = preciseActivations
        let logits = ctx.forward(tokens: ids, positions: (0..<Int32(ids.count)).map { $0 }, cache: KVState(config: model.config))
        if let dump {
            let data = logits.withUnsafeBufferPointer { Data(buffer: $0) }
            guard FileManager.default.createFile(atPath: dump, contents: data) else { throw CLIError("cannot write \(dump)") }
        }
        let best = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(max(0, top))
        if json {
            let topJSON = best.map { "{\"id\": \($0), \"logit\": \(logits[$0])}" }.joined(separator: ", ")
            print("{\"ids\": [\(ids.map(String.init).joined(separator: ", "))], \"top\": [\(topJSON)]}")
        } else {
            print("prompt ids: \(ids)")
            for i in best { print(String(format: "%6d %10.4f  %@", i, logits[i], String(reflecting: tok.tokenText(Int32(i))))) }
        }
    }
}
