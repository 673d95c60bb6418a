import Engine
import Foundation
import KVCache
import Llama
import RedisTier
import TestSupport
import Tokenizer
import XCTest

/// A real `redis-server` (Debian's), never a mock.
///
/// - `shared()`: the server CI started (`KVDUEL_TEST_REDIS=redis://127.0.0.1:PORT`), or else one
///   this process starts. With CI=true a missing server fails the test instead of skipping it.
/// - `RedisServer.start()`: a private server a test may kill (persistence off, temp dir).
final class RedisServer {
    let port: Int
    let process: Process
    let dir: String
    var url: RedisURL { RedisURL(host: "127.0.0.1", port: port) }

    private static let lock = NSLock()
    private static var sharedServer: RedisServer?

    static var binary: String? {
        for d in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") + ["/usr/bin", "/usr/sbin"] {
            let p = "\(d)/redis-server"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    static var inCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// The URL of the shared test server.
    static func sharedURL(file: StaticString = #filePath, line: UInt = #line) throws -> RedisURL {
        if let text = ProcessInfo.processInfo.environment["KVDUEL_TEST_REDIS"], !text.isEmpty {
            return try RedisURL(parsing: text, environment: [:])
        }
        if inCI {
            XCTFail("CI=true but KVDUEL_TEST_REDIS is not set: .ci/run must start redis-server", file: file, line: line)
            throw XCTSkip("no server")
        }
        lock.lock()
        defer { lock.unlock() }
        if let s = sharedServer { return s.url }
        let s = try start(file: file, line: line)
        sharedServer = s
        // Stopped when the test process exits.
        atexit { RedisServer.stopShared() }
        return s.url
    }

    static func stopShared() {
        lock.lock()
        let s = sharedServer
        sharedServer = nil
        lock.unlock()
        s?.kill()
    }

    /// Starts a private server on a free loopback port; fails (CI) or skips without redis-server.
    static func start(file: StaticString = #filePath, line: UInt = #line) throws -> RedisServer {
        guard let bin = binary else {
            if inCI { XCTFail("redis-server is not installed (CI must install it)", file: file, line: line) }
            throw XCTSkip("redis-server is not installed (apt-get install redis-server)")
        }
        for _ in 0..<20 {
            let port = Int.random(in: 20000...45000)
            let dir = NSTemporaryDirectory() + "kvduel-redis-\(getpid())-\(port)"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: bin)
            p.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let server = RedisServer(port: port, process: p, dir: dir)
            let deadline = Date(timeIntervalSinceNow: 5)
            while Date() < deadline && p.isRunning {
                var err = ""
                if RedisConnection.open(server.url, timeout: 0.3, error: &err) != nil { return server }
                usleep(20_000)
            }
            server.kill()
        }
        XCTFail("could not start redis-server", file: file, line: line)
        throw XCTSkip("no server")
    }

    private init(port: Int, process: Process, dir: String) {
        self.port = port
        self.process = process
        self.dir = dir
    }

    /// SIGKILL, and wait for it to be gone.
    func kill() {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: dir)
    }
}

enum Fixture {
    /// The tiny 2-layer model of TestSupport.
    static func tinyModel(seed: UInt64 = 7) throws -> (model: LlamaModel, tokenizer: Tokenizer) {
        try TinyModel.loaded(seed: seed)
    }

    static func tokens(_ n: Int, seed: UInt64) -> [Int32] {
        var rng = TestRNG(seed: seed)
        return (0..<n).map { _ in Int32(3 + rng.below(TinyModel.vocab - 3)) }
    }

    /// A fresh fingerprint, so tests sharing one server never see each other's keys.
    static func uniqueFingerprint() -> ModelFingerprint {
        ModelFingerprint(components: ["test", UUID().uuidString])
    }

    /// A tier on `url` for a toy shape.
    static func tier(_ url: RedisURL, fingerprint: ModelFingerprint, secret: String? = nil,
                     encoding: KVEncoding = .int8, shape: (Int, Int) = (2, 8)) -> RedisTier {
        RedisTier(.init(url: url, fingerprint: fingerprint, encoding: encoding, shape: shape,
                        secret: secret.map { Array($0.utf8) }))
    }

    /// A deterministic entry of `tokens` tokens for the toy shape (2 layers, kvDim 8).
    static func entry(_ seed: Int, tokens: Int = 4, encoding: KVEncoding = .int8) -> EncodedKV {
        let n = 2 * tokens * 8
        let k = (0..<n).map { Float(($0 * 31 + seed * 7) % 97) / 13 - 3 }
        let v = (0..<n).map { Float(($0 * 17 + seed * 5) % 89) / 11 - 4 }
        return EncodedKV(KVBlock(layers: 2, tokenCount: tokens, kvDim: 8, positions: (0..<Int32(tokens)).map { $0 },
                                 k: k, v: v), encoding: encoding)
    }

    static func key(_ i: Int) -> CacheKey {
        CacheKey(kind: .segment, digest: Digest128(hi: 0xfeed, lo: UInt64(i)))
    }

    /// Engine options for the tiny model: RAM only plus the given lower tiers.
    /// Strategy `load` by default: these tests count what the shared tier holds and its round
    /// trips; whether Cake's compute side beats the link on the tiny model is not their subject.
    static func options(_ tiers: [any KVTier], strategy: LoadStrategy = .load) -> ReuseEngine.Options {
        var o = ReuseEngine.Options()
        o.loadStrategy = strategy
        o.recomputeRatio = 0.15
        o.checkLayers = [0]
        o.ramBytes = 64 << 20
        o.lowerTiers = tiers
        return o
    }

    /// A tier for the tiny model's engine, keyed like its store.
    static func engineTier(_ url: RedisURL, model: LlamaModel, secret: String? = nil) -> RedisTier {
        RedisTier(.init(url: url, fingerprint: ReuseEngine.storeFingerprint(model), encoding: .int8,
                        shape: (model.config.layers, model.config.kvDim), secret: secret.map { Array($0.utf8) }))
    }
}

/// Direct server access for tests (corrupting values, copying keys).
func rawCommand(_ url: RedisURL, _ args: [String]) -> RedisReply? {
    rawCommand(url, args.map { Array($0.utf8) })
}

func rawCommand(_ url: RedisURL, _ args: [[UInt8]]) -> RedisReply? {
    var err = ""
    guard let c = RedisConnection.open(url, timeout: 1, error: &err) else { return nil }
    return c.command(args)
}

/// Polls `condition` for up to `seconds` (no timing assertion: a generous bound on a state change).
func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}
