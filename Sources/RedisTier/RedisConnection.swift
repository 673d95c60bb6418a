import CHiredis
import Foundation

/// One reply of a Redis-protocol server.
public enum RedisReply: Equatable, Sendable {
    case string([UInt8])
    case null
    case integer(Int)
    case status(String)
    case error(String)
    case array([RedisReply])
}

/// One blocking hiredis connection (the tier uses two; tests use one to reach the server directly) with connect and per-command timeouts. Not thread-safe: each
/// user holds its own. Any I/O error (timeout, reset, EOF) makes the connection unusable
/// (`pipeline` returns nil); open a new one.
public final class RedisConnection {
    private var ctx: UnsafeMutablePointer<redisContext>?

    /// Connects, sets the command timeout, authenticates and selects the database; nil (with
    /// the reason in `error`) on any failure. Never waits longer than about 2 × `timeout` + the
    /// AUTH/SELECT round trips.
    public static func open(_ url: RedisURL, timeout: Double, error: inout String) -> RedisConnection? {
        let tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        guard let c = redisConnectWithTimeout(url.host, Int32(url.port), tv) else {
            error = "cannot allocate a connection"
            return nil
        }
        if c.pointee.err != 0 {
            error = withUnsafeBytes(of: c.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            redisFree(c)
            return nil
        }
        _ = redisSetTimeout(c, tv)
        let conn = RedisConnection(c)
        var setup: [[[UInt8]]] = []
        if let password = url.password {
            setup.append(url.user.map { [Array("AUTH".utf8), Array($0.utf8), Array(password.utf8)] }
                         ?? [Array("AUTH".utf8), Array(password.utf8)])
        }
        if url.db != 0 { setup.append([Array("SELECT".utf8), Array(String(url.db).utf8)]) }
        setup.append([Array("PING".utf8)])
        guard let replies = conn.pipeline(setup) else {
            error = conn.lastError ?? "connection lost"
            return nil
        }
        for r in replies {
            if case .error(let e) = r {
                error = e
                return nil
            }
        }
        return conn
    }

    private init(_ ctx: UnsafeMutablePointer<redisContext>) {
        self.ctx = ctx
    }

    deinit {
        if let ctx { redisFree(ctx) }
    }

    public private(set) var lastError: String?

    /// Sends every command, then reads every reply: one round trip. nil on an I/O error.
    public func pipeline(_ commands: [[[UInt8]]]) -> [RedisReply]? {
        guard let ctx else { return nil }
        for args in commands {
            let ok = Self.withArgv(args) { argc, argv, lens in
                redisAppendCommandArgv(ctx, argc, argv, lens) == REDIS_OK
            }
            if !ok { return fail() }
        }
        var out: [RedisReply] = []
        out.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(ctx, &raw) == REDIS_OK, let raw else { return fail() }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            out.append(Self.convert(reply))
            freeReplyObject(raw)
        }
        return out
    }

    public func command(_ args: [[UInt8]]) -> RedisReply? { pipeline([args])?.first }

    /// Sends `commands` with at most `window` of them awaiting a reply, and hands each reply to
    /// `body` as it is read; `body` returns false to stop. The replies to commands already sent
    /// are then read and dropped, so the connection stays in step (at most `window - 1` of them).
    /// False on an I/O error (the connection is then unusable).
    public func stream(_ commands: [[[UInt8]]], window: Int, _ body: (RedisReply) -> Bool) -> Bool {
        guard let ctx else { return false }
        var sent = 0, received = 0, stopped = false
        func send(upTo n: Int) -> Bool {
            while sent < min(n, commands.count) {
                let ok = Self.withArgv(commands[sent]) { argc, argv, lens in
                    redisAppendCommandArgv(ctx, argc, argv, lens) == REDIS_OK
                }
                guard ok else { return false }
                sent += 1
            }
            return true
        }
        guard send(upTo: max(1, window)) else { return lost() }
        while received < sent {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(ctx, &raw) == REDIS_OK, let raw else { return lost() }
            received += 1
            if !stopped {
                let reply = Self.convert(raw.assumingMemoryBound(to: redisReply.self))
                freeReplyObject(raw)
                if body(reply) {
                    guard send(upTo: received + max(1, window)) else { return lost() }
                } else {
                    stopped = true
                }
            } else {
                freeReplyObject(raw)
            }
        }
        return true
    }

    private func lost() -> Bool {
        _ = fail()
        return false
    }

    private func fail() -> [RedisReply]? {
        if let ctx {
            lastError = ctx.pointee.err != 0
                ? withUnsafeBytes(of: ctx.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                : "connection lost"
            redisFree(ctx)
        }
        ctx = nil
        return nil
    }

    private static func convert(_ r: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let p = r.pointee
        switch p.type {
        case REDIS_REPLY_STRING:
            return .string(p.len > 0 ? Array(UnsafeRawBufferPointer(start: p.str, count: Int(p.len))) : [])
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_INTEGER:
            return .integer(Int(p.integer))
        case REDIS_REPLY_STATUS:
            return .status(p.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_ERROR:
            return .error(p.str.map { String(cString: $0) } ?? "error")
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            for i in 0..<Int(p.elements) {
                if let e = p.element[i] { items.append(convert(e)) } else { items.append(.null) }
            }
            return .array(items)
        default:
            return .error("unknown reply type \(p.type)")
        }
    }

    /// Binary-safe argv for hiredis.
    private static func withArgv<T>(_ args: [[UInt8]],
                                    _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> T) -> T {
        let bufs = args.map { a -> UnsafeMutablePointer<CChar> in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, a.count))
            a.withUnsafeBytes { if a.count > 0 { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress!, byteCount: a.count) } }
            return p
        }
        defer { for b in bufs { b.deallocate() } }
        var argv: [UnsafePointer<CChar>?] = bufs.map { UnsafePointer($0) }
        let lens: [Int] = args.map(\.count)
        return argv.withUnsafeMutableBufferPointer { av in
            lens.withUnsafeBufferPointer { lp in body(Int32(args.count), av.baseAddress!, lp.baseAddress!) }
        }
    }
}
