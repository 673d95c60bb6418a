import Crypto
import Foundation
import KVCache

/// A store tier on a Redis-protocol server (Redis, Valkey), shared by every kvduel instance
/// pointed at it.
///
/// - **Keys** `kvduel:v1:<model fingerprint>:<encoding>:<prefix|segment>:<digest>`: no prompt text.
/// - **Values** the disk tier's entry format (`EntryCodec`: 128-byte versioned header with model,
///   key, shape and an XXH64 checksum, then the body). With a secret, an HMAC-SHA256 over the
///   Redis key and the entry follows it (32 bytes).
/// - **Reads** `fetch` asks for all keys of a request in one MGET (one round trip); `stream` keeps
///   `streamWindow` GETs in flight and hands over each entry as it arrives (Cake's I/O side).
///   Every value is checked like a disk file (and its MAC) and a bad one is rejected and counted,
///   never used.
/// - **Writes** `put` queues and returns at once; one writer thread sends queued SETs, pipelined.
///   The queue is bounded (entries and bytes): a write that does not fit, or that arrives while
///   the server is unreachable, is dropped and counted.
/// - **Faults** connect and per-command timeouts (`timeout`, default 300 ms). After a failure the
///   tier reports `unreachable`/`retrying`, answers reads with nothing at once, and reconnects
///   in the background with exponential backoff (0.25 s up to 8 s). While connected and idle it
///   PINGs every second, so a stopped server shows within about a second.
public final class RedisTier: KVTier, @unchecked Sendable {
    public struct Configuration: Sendable {
        public var url: RedisURL
        public var fingerprint: ModelFingerprint
        public var encoding: KVEncoding
        public var shape: (layers: Int, kvDim: Int)
        /// HMAC-SHA256 key; nil: entries carry no MAC and any writer to the server is trusted.
        public var secret: [UInt8]?
        /// Connect and per-command timeout, seconds.
        public var timeout: Double
        /// Queue bounds for asynchronous writes.
        public var maxQueuedWrites: Int
        public var maxQueuedBytes: Int
        /// Optional expiry of written entries, seconds (nil: none; capacity is the server's `maxmemory`).
        public var ttlSeconds: Int?

        public init(url: RedisURL, fingerprint: ModelFingerprint, encoding: KVEncoding,
                    shape: (layers: Int, kvDim: Int), secret: [UInt8]? = nil, timeout: Double = 0.3,
                    maxQueuedWrites: Int = 512, maxQueuedBytes: Int = 256 << 20, ttlSeconds: Int? = nil) {
            self.url = url
            self.fingerprint = fingerprint
            self.encoding = encoding
            self.shape = shape
            self.secret = secret
            self.timeout = timeout
            self.maxQueuedWrites = maxQueuedWrites
            self.maxQueuedBytes = maxQueuedBytes
            self.ttlSeconds = ttlSeconds
        }
    }

    /// Why a remote value was rejected.
    public enum Rejection: String, Error, Sendable, CaseIterable {
        case missingMAC, badMAC, wrongEncoding
        case truncated, trailingBytes, badMagic, unsupportedVersion, badHeader, wrongKey, foreignModel, wrongShape, checksumMismatch
        case other
    }

    public enum State: String, Sendable {
        /// Connected; the last command succeeded.
        case ok
        /// The last connect attempt failed; retrying with backoff.
        case unreachable
        /// The connection was lost; a reconnect is scheduled.
        case retrying
    }

    public let configuration: Configuration
    public var name: String { "remote" }
    public var isLocal: Bool { false }
    /// `kvduel:v1:<fingerprint>:<encoding>:`
    public let keyPrefix: String

    private let cond = NSCondition()
    // Everything below is guarded by `cond`.
    private var state_: State = .unreachable
    private var lastError_: String?
    private var nextAttempt = 0.0
    private var backoff = 0.25
    private var queue: [(key: [UInt8], value: [UInt8])] = []
    private var queuedBytes = 0
    private var inFlight = 0
    private var stopping = false
    private var stats_ = TierStats(name: "remote")
    private var rejections_: [Rejection: Int] = [:]
    private var reader: RedisConnection?
    private let readLock = NSLock()
    private var writerThread: Thread?

    /// Tries to connect once (bounded by the timeout) and starts the writer thread. Never throws:
    /// an unreachable server leaves the tier `unreachable`, retrying in the background.
    public init(_ configuration: Configuration) {
        self.configuration = configuration
        keyPrefix = "kvduel:v1:\(configuration.fingerprint.digest.hex):\(configuration.encoding.description):"
        stats_.state = State.unreachable.rawValue
        var err = ""
        if let c = RedisConnection.open(configuration.url, timeout: configuration.timeout, error: &err) {
            reader = c
            state_ = .ok
        } else {
            lastError_ = err
            nextAttempt = Self.now() + backoff
        }
        let t = Thread { [weak self] in self?.writerLoop() }
        t.name = "kvduel.remote.writer"
        writerThread = t
        t.start()
    }

    deinit {
        cond.lock()
        stopping = true
        cond.broadcast()
        cond.unlock()
    }

    /// Stops the writer thread after it has sent what is queued (or `timeout` passed).
    public func close(timeout: Double = 2) {
        _ = drain(timeout: timeout)
        cond.lock()
        stopping = true
        cond.broadcast()
        cond.unlock()
    }

    public var state: State { cond.lock(); defer { cond.unlock() }; return state_ }
    public var lastError: String? { cond.lock(); defer { cond.unlock() }; return lastError_ }
    public var rejections: [Rejection: Int] { cond.lock(); defer { cond.unlock() }; return rejections_ }

    /// Waits until every queued write was sent (or dropped); false if `timeout` passed first.
    @discardableResult
    public func drain(timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        cond.lock()
        defer { cond.unlock() }
        while !queue.isEmpty || inFlight > 0 {
            if !cond.wait(until: deadline) { return queue.isEmpty && inFlight == 0 }
        }
        return true
    }

    // MARK: keys and values

    public func redisKey(_ key: CacheKey) -> [UInt8] {
        Array((keyPrefix + (key.kind == .prefixChunk ? "prefix:" : "segment:") + key.digest.hex).utf8)
    }

    /// The value stored for an entry: the disk format, then the MAC when there is a secret.
    public func encodeValue(_ key: CacheKey, _ value: EncodedKV) -> [UInt8] {
        let entry = EntryCodec.encode(key: key, fingerprint: configuration.fingerprint, value: value)
        guard let secret = configuration.secret else { return entry }
        return entry + Self.mac(secret: secret, key: redisKey(key), entry: entry)
    }

    static func mac(secret: [UInt8], key: [UInt8], entry: [UInt8]) -> [UInt8] {
        var h = HMAC<SHA256>(key: SymmetricKey(data: secret))
        // Length-prefixed key, so (key, entry) pairs cannot be re-split.
        withUnsafeBytes(of: UInt64(key.count).littleEndian) { h.update(data: Data($0)) }
        h.update(data: key)
        h.update(data: entry)
        return Array(h.finalize())
    }

    /// Checks a value read for `key`: MAC (with a secret), then every check of a disk entry, then the encoding.
    public func decodeValue(_ bytes: [UInt8], key: CacheKey) -> Result<EncodedKV, Rejection> {
        var entry = bytes
        if let secret = configuration.secret {
            let plain = EntryCodec.decode(bytes, key: key, fingerprint: configuration.fingerprint, shape: configuration.shape)
            guard bytes.count >= EntryCodec.headerSize + 32 else {
                if case .success = plain { return .failure(.missingMAC) }
                return .failure(.badMAC)
            }
            let body = Array(bytes[..<(bytes.count - 32)])
            let tag = Array(bytes[(bytes.count - 32)...])
            guard Self.constantTimeEqual(Self.mac(secret: secret, key: redisKey(key), entry: body), tag) else {
                if case .success = plain { return .failure(.missingMAC) }
                return .failure(.badMAC)
            }
            entry = body
        }
        switch EntryCodec.decode(entry, key: key, fingerprint: configuration.fingerprint, shape: configuration.shape) {
        case .success(let v):
            guard v.encoding == configuration.encoding else { return .failure(.wrongEncoding) }
            return .success(v)
        case .failure(let r):
            return .failure(Rejection(rawValue: r.rawValue) ?? .other)
        }
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var d: UInt8 = 0
        for i in 0..<a.count { d |= a[i] ^ b[i] }
        return d == 0
    }

    // MARK: KVTier

    /// One MGET for every key. Returns at once with nothing while the server is unreachable.
    public func fetch(_ keys: [CacheKey]) -> [CacheKey: EncodedKV] {
        guard !keys.isEmpty else { return [:] }
        let start = Self.now()
        guard let reply = readCommand([Array("MGET".utf8)] + keys.map(redisKey)) else { return [:] }
        guard let out = takeMGET(reply, keys: keys, since: start) else {
            noteFailure("unexpected MGET reply")
            return [:]
        }
        return out
    }

    /// One pipelined round trip: MGET of `keys`, then EXISTS for each of `probing`.
    public func fetch(_ keys: [CacheKey], probing: [CacheKey]) -> (found: [CacheKey: EncodedKV], present: Set<CacheKey>) {
        if probing.isEmpty { return (fetch(keys), []) }
        if keys.isEmpty { return ([:], present(probing)) }
        let start = Self.now()
        let commands = [[Array("MGET".utf8)] + keys.map(redisKey)] + probing.map { [Array("EXISTS".utf8), redisKey($0)] }
        guard let replies = readPipeline(commands), replies.count == commands.count else { return ([:], []) }
        guard let out = takeMGET(replies[0], keys: keys, since: start) else {
            noteFailure("unexpected MGET reply")
            return ([:], [])
        }
        var present = Set<CacheKey>()
        for (k, r) in zip(probing, replies.dropFirst()) { if case .integer(let n) = r, n > 0 { present.insert(k) } }
        return (out, present)
    }

    /// The entries of an MGET reply for `keys` (damaged, foreign or unauthenticated ones rejected
    /// and counted), and the read counted as one round trip since `start`; nil for a reply that is
    /// not an array of `keys.count` values.
    private func takeMGET(_ reply: RedisReply, keys: [CacheKey], since start: Double) -> [CacheKey: EncodedKV]? {
        guard case .array(let values) = reply, values.count == keys.count else { return nil }
        var out: [CacheKey: EncodedKV] = [:]
        var read = 0
        var rejected: [Rejection] = []
        for (k, v) in zip(keys, values) {
            guard case .string(let bytes) = v else { continue }
            read += bytes.count
            switch decodeValue(bytes, key: k) {
            case .success(let e): out[k] = e
            case .failure(let r): rejected.append(r)
            }
        }
        let elapsed = Self.now() - start
        cond.lock()
        stats_.bytesRead += read
        stats_.roundTrips += 1
        stats_.readSeconds += elapsed
        stats_.rejectedEntries += rejected.count
        for r in rejected { rejections_[r, default: 0] += 1 }
        cond.unlock()
        return out
    }

    /// One pipelined round trip of EXISTS, one per key (no bodies).
    public func present(_ keys: [CacheKey]) -> Set<CacheKey> {
        guard !keys.isEmpty else { return [] }
        let start = Self.now()
        guard let replies = readPipeline(keys.map { [Array("EXISTS".utf8), redisKey($0)] }), replies.count == keys.count else { return [] }
        var out = Set<CacheKey>()
        for (k, r) in zip(keys, replies) { if case .integer(let n) = r, n > 0 { out.insert(k) } }
        let elapsed = Self.now() - start
        cond.lock()
        stats_.roundTrips += 1
        stats_.readSeconds += elapsed
        cond.unlock()
        return out
    }

    public func get(_ key: some CacheKeyConvertible) -> EncodedKV? {
        let k = key.cacheKey
        return fetch([k])[k]
    }

    /// GETs kept `streamWindow` deep in flight on the reader connection: while the caller works
    /// on one entry, the next is already on its way. Entries are checked as in `fetch`; the
    /// stream counts as one round trip. Counters are updated as each reply arrives (a caller
    /// that stops listening early still sees what was read), and the read time excludes the
    /// caller's own work. Stops at once (handing nothing) while unreachable.
    public func stream(_ keys: [CacheKey], _ body: (CacheKey, EncodedKV?) -> Bool) {
        guard !keys.isEmpty else { return }
        readLock.lock()
        defer { readLock.unlock() }
        guard openReader() else { return }
        var mark = Self.now(), next = 0
        let ok = reader!.stream(keys.map { [Array("GET".utf8), redisKey($0)] }, window: Self.streamWindow) { reply in
            let k = keys[next]
            next += 1
            var value: EncodedKV?
            var read = 0
            var rejected: Rejection?
            if case .string(let bytes) = reply {
                read = bytes.count
                switch decodeValue(bytes, key: k) {
                case .success(let e): value = e
                case .failure(let r): rejected = r
                }
            }
            let arrived = Self.now()
            cond.lock()
            stats_.bytesRead += read
            if next == 1 { stats_.roundTrips += 1 }
            stats_.readSeconds += arrived - mark
            if let r = rejected {
                stats_.rejectedEntries += 1
                rejections_[r, default: 0] += 1
            }
            cond.unlock()
            defer { mark = Self.now() }
            return body(k, value)
        }
        if !ok { dropReader() }
    }

    /// GETs in flight at once in `stream`.
    public static let streamWindow = 3

    /// EXISTS (a round trip): the store never calls it for a tier that is not local.
    public func contains(_ key: some CacheKeyConvertible) -> Bool {
        if case .integer(let n)? = readCommand([Array("EXISTS".utf8), redisKey(key.cacheKey)]) { return n > 0 }
        return false
    }

    /// Queues the write and returns at once; `.failed` when it was dropped (full queue, unreachable).
    @discardableResult
    public func put(_ key: some CacheKeyConvertible, _ value: EncodedKV) -> PutResult {
        let k = key.cacheKey
        guard value.layers == configuration.shape.layers, value.kvDim == configuration.shape.kvDim else { return .rejectedShape }
        let bytes = encodeValue(k, value)
        cond.lock()
        defer { cond.unlock() }
        guard state_ == .ok, queue.count < configuration.maxQueuedWrites,
              queuedBytes + bytes.count <= configuration.maxQueuedBytes else {
            stats_.droppedWrites += 1
            return .failed
        }
        queue.append((redisKey(k), bytes))
        queuedBytes += bytes.count
        cond.signal()
        return .stored(evicted: [])
    }

    @discardableResult
    public func remove(_ key: some CacheKeyConvertible) -> Bool {
        if case .integer(let n)? = readCommand([Array("DEL".utf8), redisKey(key.cacheKey)]) { return n > 0 }
        return false
    }

    /// Deletes every key of this model and encoding on the server (SCAN + DEL). `TieredStore`
    /// never calls it (a shared server is not wiped by one instance's reset); tests and tools do.
    public func removeAll() {
        var cursor = "0"
        repeat {
            guard case .array(let r)? = readCommand([Array("SCAN".utf8), Array(cursor.utf8), Array("MATCH".utf8),
                                                     Array((keyPrefix + "*").utf8), Array("COUNT".utf8), Array("1000".utf8)]),
                  r.count == 2, case .string(let c) = r[0], case .array(let keys) = r[1] else { return }
            cursor = String(decoding: c, as: UTF8.self)
            let names = keys.compactMap { k -> [UInt8]? in if case .string(let b) = k { return b } else { return nil } }
            if !names.isEmpty { _ = readCommand([Array("DEL".utf8)] + names) }
        } while cursor != "0"
    }

    public func resetCounters() {
        cond.lock()
        let keep = stats_
        stats_ = TierStats(name: name)
        stats_.state = keep.state
        rejections_ = [:]
        cond.unlock()
    }

    public var tierStats: TierStats {
        cond.lock()
        defer { cond.unlock() }
        var s = stats_
        s.state = state_.rawValue
        return s
    }

    public func children(of parent: Digest128) -> [(key: CacheKey, tokenCount: Int)] { [] }

    // MARK: connection

    /// A command on the reader connection; nil (at once, without I/O) while unreachable, or on failure.
    private func readCommand(_ args: [[UInt8]]) -> RedisReply? {
        guard let r = readPipeline([args])?.first else { return nil }
        if case .error(let e) = r {
            cond.lock()
            lastError_ = e
            cond.unlock()
            return nil
        }
        return r
    }

    /// Commands pipelined on the reader connection (one round trip); nil while unreachable or on failure.
    private func readPipeline(_ commands: [[[UInt8]]]) -> [RedisReply]? {
        readLock.lock()
        defer { readLock.unlock() }
        guard openReader() else { return nil }
        guard let replies = reader!.pipeline(commands), replies.count == commands.count else {
            dropReader()
            return nil
        }
        return replies
    }

    /// The reader connection failed: close it and mark the server lost. Call with `readLock` held.
    private func dropReader() {
        let err = reader?.lastError ?? "connection lost"
        reader = nil
        noteFailure(err)
    }

    /// Whether the reader connection is open (opened now if needed); false while unreachable.
    /// Call with `readLock` held.
    private func openReader() -> Bool {
        cond.lock()
        let ok = state_ == .ok
        cond.unlock()
        guard ok else { return false }
        if reader == nil {
            var err = ""
            reader = RedisConnection.open(configuration.url, timeout: configuration.timeout, error: &err)
            if reader == nil {
                noteFailure(err)
                return false
            }
        }
        return true
    }

    /// Marks the server lost: reads return nothing until the writer thread reconnects.
    private func noteFailure(_ error: String) {
        cond.lock()
        if state_ == .ok {
            state_ = .retrying
            backoff = 0.25
            nextAttempt = Self.now() + backoff
        }
        lastError_ = error
        cond.broadcast()
        cond.unlock()
    }

    private func writerLoop() {
        var conn: RedisConnection?
        var lastOK = Self.now()
        cond.lock()
        if state_ == .ok {
            cond.unlock()
            var err = ""
            conn = RedisConnection.open(configuration.url, timeout: configuration.timeout, error: &err)
            if conn == nil { noteFailure(err) }
            cond.lock()
        }
        while !stopping {
            if state_ != .ok {
                // Drop what was queued: the server is gone, and writes must never pile up.
                stats_.droppedWrites += queue.count
                queue = []
                queuedBytes = 0
                cond.broadcast()
                let wait = nextAttempt - Self.now()
                if wait > 0 {
                    _ = cond.wait(until: Date(timeIntervalSinceNow: min(wait, 1)))
                    continue
                }
                cond.unlock()
                var err = ""
                let c = RedisConnection.open(configuration.url, timeout: configuration.timeout, error: &err)
                cond.lock()
                if let c {
                    conn = c
                    state_ = .ok
                    backoff = 0.25
                    lastOK = Self.now()
                } else {
                    state_ = .unreachable
                    lastError_ = err
                    backoff = min(backoff * 2, 8)
                    nextAttempt = Self.now() + backoff
                }
                continue
            }
            if queue.isEmpty {
                if Self.now() - lastOK >= 1 {
                    cond.unlock()
                    let pong = conn?.command([Array("PING".utf8)])
                    cond.lock()
                    if pong == nil {
                        conn = nil
                        cond.unlock()
                        noteFailure("no answer to PING")
                        cond.lock()
                    } else {
                        lastOK = Self.now()
                    }
                    continue
                }
                _ = cond.wait(until: Date(timeIntervalSinceNow: 0.5))
                continue
            }
            // Up to 32 entries or 16 MiB per pipelined batch.
            var batch: [(key: [UInt8], value: [UInt8])] = []
            var bytes = 0
            while let first = queue.first, batch.count < 32, batch.isEmpty || bytes + first.value.count <= 16 << 20 {
                batch.append(queue.removeFirst())
                bytes += first.value.count
            }
            queuedBytes -= bytes
            inFlight = batch.count
            let ttl = configuration.ttlSeconds
            cond.unlock()
            let commands = batch.map { e -> [[UInt8]] in
                var c = [Array("SET".utf8), e.key, e.value]
                if let ttl { c += [Array("EX".utf8), Array(String(ttl).utf8)] }
                return c
            }
            if conn == nil {
                var err = ""
                conn = RedisConnection.open(configuration.url, timeout: configuration.timeout, error: &err)
            }
            let replies = conn?.pipeline(commands)
            cond.lock()
            inFlight = 0
            if let replies {
                lastOK = Self.now()
                for (e, r) in zip(batch, replies) {
                    if case .error(let msg) = r {
                        stats_.writeErrors += 1
                        lastError_ = msg
                    } else {
                        stats_.bytesWritten += e.value.count
                        stats_.bytes += e.value.count
                        stats_.entries += 1
                    }
                }
            } else {
                stats_.writeErrors += batch.count
                conn = nil
                if state_ == .ok {
                    state_ = .retrying
                    backoff = 0.25
                    nextAttempt = Self.now() + backoff
                }
                lastError_ = "write failed: connection lost"
            }
            cond.broadcast()
        }
        cond.unlock()
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
