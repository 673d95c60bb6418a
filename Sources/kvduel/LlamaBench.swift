import Foundation

/// llama.cpp's `llama-bench`, run as the reference in the same `bench engine` run: same model
/// file, same thread count, same prompt lengths and decode length. Built by
/// `scripts/reference-llama-cpp.sh` (`make reference`); optional.
struct LlamaBench {
    let path: String

    struct Result {
        var commit: String
        var prefill: [Int: Double] = [:]    // prompt tokens → best tok/s over the repetitions
        var decode: Double?                 // best tok/s
    }

    /// `--llama-bench` as given: a path, "none", or nil for the default places.
    static func locate(_ option: String?) throws -> LlamaBench? {
        let fm = FileManager.default
        if let option {
            if option == "none" { return nil }
            guard fm.isExecutableFile(atPath: option) else {
                throw CLIError("--llama-bench: no executable at \(option) (build one with `make reference`, or pass none)")
            }
            return LlamaBench(path: option)
        }
        let built = ModelOptions.cacheDir + "/llama.cpp/bin/llama-bench"
        if fm.isExecutableFile(atPath: built) { return LlamaBench(path: built) }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let p = String(dir) + "/llama-bench"
            if fm.isExecutableFile(atPath: p) { return LlamaBench(path: p) }
        }
        return nil
    }

    /// Runs llama-bench and reads its JSON. The best sample is kept, as kvduel reports its best.
    func run(model: String, threads: Int, prompts: [Int], decode: Int, repeats: Int) throws -> Result {
        var args = ["-m", model, "-t", String(threads), "-r", String(max(1, repeats)), "-o", "json"]
        args += ["-p", prompts.isEmpty ? "0" : prompts.map(String.init).joined(separator: ",")]
        args += ["-n", String(decode)]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        // stderr goes to a file: two pipes read one after the other can deadlock on a chatty child.
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("kvduel-llama-bench-\(getpid()).err")
        _ = FileManager.default.createFile(atPath: errPath.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errPath) }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = try FileHandle(forWritingTo: errPath)
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let errText = (try? String(contentsOf: errPath, encoding: .utf8)) ?? ""
            let last = errText.split(separator: "\n").last.map(String.init) ?? ""
            throw CLIError("llama-bench exited with status \(p.terminationStatus)" + (last.isEmpty ? "" : ": \(last)"))
        }
        guard let rows = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw CLIError("llama-bench printed no JSON results")
        }
        var result = Result(commit: rows.first?["build_commit"] as? String ?? "?")
        for row in rows {
            let np = (row["n_prompt"] as? NSNumber)?.intValue ?? 0, ng = (row["n_gen"] as? NSNumber)?.intValue ?? 0
            let samples = (row["samples_ts"] as? [NSNumber])?.map(\.doubleValue) ?? []
            guard let best = samples.max() ?? (row["avg_ts"] as? NSNumber)?.doubleValue else { continue }
            if np > 0 && ng == 0 { result.prefill[np] = best }
            if ng > 0 && np == 0 { result.decode = best }
        }
        return result
    }
}
