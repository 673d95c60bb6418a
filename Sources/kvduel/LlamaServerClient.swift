import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// llama.cpp's `llama-server` as the multi-turn reference of `bench --scenario --llama-server
/// PATH`: started on the same model file with the same threads, one slot, on a loopback port the
/// kernel picks, and sent the same prompt token ids turn after turn (POST /completion, greedy,
/// `cache_prompt` true, streamed). Stopped on exit, on errors and on SIGINT/SIGTERM/SIGHUP.
public final class LlamaServer {
    let path: String
    private var process: Process?
    private var logPath: String?
    private(set) var port = 0

    /// `--llama-server PATH`: an executable, or a one-line error naming `make reference`.
    static func locate(_ option: String?) throws -> LlamaServer? {
        guard let option else { return nil }
        let p = option == "default" ? ModelOptions.cacheDir + "/llama.cpp/bin/llama-server" : NSString(string: option).expandingTildeInPath
        guard FileManager.default.isExecutableFile(atPath: p) else {
            throw CLIError("--llama-server: no executable at \(p) (build llama.cpp's llama-server with `make reference`)")
        }
        return LlamaServer(path: p)
    }

    init(path: String) { self.path = path }

    /// The pid of the server running now, for the signal handler (0: none).
    nonisolated(unsafe) static var runningPID: pid_t = 0
    /// Its log's path as a C string, for the signal handler to unlink.
    nonisolated(unsafe) private static var runningLog: UnsafeMutablePointer<CChar>?
    nonisolated(unsafe) private static var handlersInstalled = false

    private static func installSignalHandlers() {
        guard !handlersInstalled else { return }
        handlersInstalled = true
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { s in
                let pid = LlamaServer.runningPID
                if pid > 0 { kill(pid, SIGKILL) }
                if let log = LlamaServer.runningLog { unlink(log) }
                _exit(128 + s)
            }
        }
    }

    /// The command line, without the port (0: the server binds one the kernel picks and logs it).
    public static func arguments(model: String, threads: Int, context: Int) -> [String] {
        ["-m", model, "-t", String(threads), "-tb", String(threads), "-c", String(context), "-np", "1",
         "--host", "127.0.0.1", "--port", "0", "--no-webui", "--threads-http", "1"]
    }

    /// Starts the server and waits until it answers /health with 200 (the model loaded).
    func start(model: String, threads: Int, context: Int, extra: [String] = [], timeout: Double = 180) throws {
        stop()
        Self.installSignalHandlers()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("kvduel-llama-server-\(getpid()).log").path
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        logPath = log
        Self.runningLog = strdup(log)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = Self.arguments(model: model, threads: threads, context: context) + extra
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { throw CLIError("--llama-server: cannot start \(path): \(error)") }
        process = p
        Self.runningPID = p.processIdentifier
        let t0 = Clock.now()
        while true {
            guard p.isRunning else {
                stop()
                throw CLIError("llama-server exited with status \(p.terminationStatus) while starting: \(lastLogLine(of: log))")
            }
            if port == 0, let text = try? String(contentsOfFile: log, encoding: .utf8), let found = Self.listeningPort(inLog: text) {
                port = found
            }
            if port > 0, let r = try? HTTPClient.request(port: port, method: "GET", path: "/health", timeout: 5), r.status == 200 {
                return
            }
            if Clock.seconds(since: t0) > timeout {
                stop()
                throw CLIError("llama-server did not become ready within \(Int(timeout)) s: \(lastLogLine(of: log))")
            }
            usleep(50_000)
        }
    }

    /// The port from the log line "HTTP server is listening, hostname: 127.0.0.1, port: 41234, ...".
    public static func listeningPort(inLog text: String) -> Int? {
        for line in text.split(separator: "\n") where line.contains("HTTP server is listening") {
            guard let r = line.range(of: "port: ") else { continue }
            let digits = line[r.upperBound...].prefix { $0.isNumber }
            if let p = Int(digits), p > 0 { return p }
        }
        return nil
    }

    private func lastLogLine(of path: String) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }).map(String.init) ?? "(no output)"
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its log.
    func stop() {
        if let p = process {
            if p.isRunning {
                p.terminate()
                let t0 = Clock.now()
                while p.isRunning && Clock.seconds(since: t0) < 5 { usleep(20_000) }
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
                p.waitUntilExit()
            }
            process = nil
        }
        Self.runningPID = 0
        if let l = Self.runningLog { Self.runningLog = nil; free(l) }
        port = 0
        if let l = logPath { try? FileManager.default.removeItem(atPath: l); logPath = nil }
    }

    deinit { stop() }

    /// One completion of the prompt's token ids, streamed. `ttft` is the wall time from sending the
    /// request (the JSON of the ids included) to the first streamed token.
    func complete(prompt: [Int32], maxTokens: Int, cachePrompt: Bool, ignoreEOS: Bool = false) throws -> LlamaCompletion {
        guard port > 0 else { throw CLIError("llama-server is not running") }
        let body = LlamaCompletion.requestBody(prompt: prompt, maxTokens: maxTokens, cachePrompt: cachePrompt, ignoreEOS: ignoreEOS)
        let r = try HTTPClient.request(port: port, method: "POST", path: "/completion", body: body, timeout: 600)
        guard r.status == 200 else {
            throw CLIError("llama-server /completion answered HTTP \(r.status): \(String(decoding: r.body.prefix(300), as: UTF8.self))")
        }
        var c = try LlamaCompletion.parse(stream: r.body)
        c.ttft = r.firstEventSeconds ?? r.totalSeconds
        c.total = r.totalSeconds
        return c
    }
}

/// What llama-server reported for one streamed completion.
public struct LlamaCompletion: Equatable {
    public init() {}
    /// Wall time to the first streamed token, and to the end of the response (set by the client).
    public var ttft = 0.0
    public var total = 0.0
    public var tokens: [Int32] = []
    public var content = ""
    /// `tokens_evaluated`: the prompt's length as the server saw it.
    public var tokensEvaluated = 0
    /// `tokens_cached`: tokens in the slot's cache after the request (prompt and answer).
    public var tokensCached = 0
    /// `timings.prompt_n`, `timings.prompt_ms`: the prompt tokens the server computed (not taken
    /// from its cache) and the time that took.
    public var promptN = 0
    public var promptMs = 0.0
    public var predictedN = 0
    public var predictedMs = 0.0
    public var stopType = ""

    /// Prompt tokens the server took from its cache.
    public var reused: Int { max(0, tokensEvaluated - promptN) }

    /// `ignoreEOS`: decode all `maxTokens` tokens (a speed measurement), as `bench engine` does.
    public static func requestBody(prompt: [Int32], maxTokens: Int, cachePrompt: Bool, ignoreEOS: Bool = false) -> Data {
        var obj: [String: Any] = ["prompt": prompt.map { Int($0) }, "n_predict": maxTokens, "temperature": 0,
                                  "cache_prompt": cachePrompt, "stream": true]
        if ignoreEOS { obj["ignore_eos"] = true }
        return (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data()
    }

    /// The events of a streamed /completion response (server-sent events, `data: {json}` lines).
    public static func parse(stream body: Data) throws -> LlamaCompletion {
        var c = LlamaCompletion()
        var sawFinal = false
        let text = String(decoding: body, as: UTF8.self)
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            guard line.hasPrefix("data:") else { continue }
            let payload = line.dropFirst(5).trimmingCharacters(in: .whitespaces)
            if payload == "[DONE]" { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] else {
                throw CLIError("llama-server sent an event that is not JSON: \(payload.prefix(120))")
            }
            if let err = obj["error"] as? [String: Any] {
                throw CLIError("llama-server: \(err["message"] as? String ?? "\(err)")")
            }
            c.content += obj["content"] as? String ?? ""
            if let t = obj["tokens"] as? [NSNumber] { c.tokens += t.map { Int32(truncating: $0) } }
            if let n = obj["tokens_evaluated"] as? NSNumber { c.tokensEvaluated = n.intValue }
            if (obj["stop"] as? Bool) == true {
                sawFinal = true
                c.tokensCached = (obj["tokens_cached"] as? NSNumber)?.intValue ?? 0
                c.stopType = obj["stop_type"] as? String ?? ""
                if let t = obj["timings"] as? [String: Any] {
                    c.promptN = (t["prompt_n"] as? NSNumber)?.intValue ?? 0
                    c.promptMs = (t["prompt_ms"] as? NSNumber)?.doubleValue ?? 0
                    c.predictedN = (t["predicted_n"] as? NSNumber)?.intValue ?? 0
                    c.predictedMs = (t["predicted_ms"] as? NSNumber)?.doubleValue ?? 0
                }
            }
        }
        guard sawFinal else { throw CLIError("llama-server's stream ended without its final event") }
        return c
    }
}

/// A minimal HTTP/1.1 client over a loopback TCP socket: one request per connection
/// (`Connection: close`), chunked or plain bodies, and the time the first server-sent event
/// arrived. No proxies, no TLS: it only ever talks to the llama-server it started.
public enum HTTPClient {
    public struct Response {
        public var status: Int
        public var headers: [String: String]
        public var body: Data
        /// Seconds from sending the request to the first `data:` event of the body (nil: none).
        public var firstEventSeconds: Double?
        public var totalSeconds: Double
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    static func request(port: Int, method: String, path: String, body: Data? = nil, timeout: Double) throws -> Response {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw Failure(description: "connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))") }

        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        head += "\r\n"
        var out = Data(head.utf8)
        if let body { out.append(body) }
        let t0 = Clock.now()
        try out.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var sent = 0
            while sent < raw.count {
                let n = send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                guard n > 0 else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
                sent += n
            }
        }
        var buf = Data()
        var firstEvent: Double?
        var headerEnd: Int?
        var chunk = [UInt8](repeating: 0, count: 65536)
        let marker = Data("data:".utf8)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "recv: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            buf.append(contentsOf: chunk[0..<n])
            if headerEnd == nil, let r = buf.range(of: Data("\r\n\r\n".utf8)) { headerEnd = r.upperBound }
            if firstEvent == nil, let h = headerEnd, buf.range(of: marker, in: h..<buf.count) != nil {
                firstEvent = Clock.seconds(since: t0)
            }
        }
        let total = Clock.seconds(since: t0)
        var r = try parseResponse(buf)
        r.firstEventSeconds = firstEvent
        r.totalSeconds = total
        return r
    }

    /// Status, headers (names lower-cased) and body (de-chunked) of a whole HTTP/1.1 response.
    public static func parseResponse(_ data: Data) throws -> Response {
        guard let r = data.range(of: Data("\r\n\r\n".utf8)) else { throw Failure(description: "HTTP response without a header end") }
        let head = String(decoding: data[data.startIndex..<r.lowerBound], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
            throw Failure(description: "bad HTTP status line: \(statusLine.prefix(80))")
        }
        var headers: [String: String] = [:]
        for l in lines {
            guard let c = l.firstIndex(of: ":") else { continue }
            headers[l[..<c].lowercased().trimmingCharacters(in: .whitespaces)] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Data(data[r.upperBound...])
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            body = try dechunk(body)
        } else if let len = headers["content-length"].flatMap(Int.init), len < body.count {
            body = body.prefix(len)
        }
        return Response(status: status, headers: headers, body: body, firstEventSeconds: nil, totalSeconds: 0)
    }

    /// A chunked transfer-encoded body, joined (chunk extensions and trailers ignored).
    public static func dechunk(_ data: Data) throws -> Data {
        let bytes = [UInt8](data)
        var out = Data()
        var i = 0
        while i < bytes.count {
            guard let eol = indexOfCRLF(bytes, from: i) else { throw Failure(description: "chunked body: a size line without CRLF") }
            let sizeText = String(decoding: bytes[i..<eol], as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                throw Failure(description: "chunked body: bad chunk size '\(sizeText.prefix(20))'")
            }
            i = eol + 2
            if size == 0 { return out }
            guard i + size <= bytes.count else { throw Failure(description: "chunked body: a chunk is cut short") }
            out.append(contentsOf: bytes[i..<(i + size)])
            i += size + 2   // the chunk's CRLF
        }
        throw Failure(description: "chunked body: no last chunk")
    }

    private static func indexOfCRLF(_ b: [UInt8], from: Int) -> Int? {
        var j = from
        while j + 1 < b.count {
            if b[j] == 13 && b[j + 1] == 10 { return j }
            j += 1
        }
        return nil
    }
}
