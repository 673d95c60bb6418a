import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum DiskTierError: Error, CustomStringConvertible {
    case cannotCreateDirectory(path: String, errno: Int32)
    case notADirectory(path: String)

    public var description: String {
        switch self {
        case let .cannotCreateDirectory(path, e): return "cannot create \(path): \(String(cString: strerror(e)))"
        case let .notADirectory(path): return "\(path) exists and is not a directory"
        }
    }
}

/// Disk tier: one file per entry (format in DiskFormat.swift) in a directory of its own, bounded by
/// the total size of its files, least recently used out first.
///
/// - Opening scans the directory and reads each entry's 128-byte header (never a payload) to rebuild
///   the index; recency starts in file mtime order. Bad entries found then are rejected and deleted,
///   one by one: an entry larger than the whole capacity is rejected itself, never let in to evict
///   the others.
/// - Every header is checked (shape, the key's token count, size against the real file size and
///   the capacity) before a body byte is read, so a crafted header costs a 128-byte read.
///   Temp files older than `staleTempAge` (left by a crash) are deleted; other names are left alone.
/// - `get` reads and checks the whole file (checksum included) and sets its mtime to now, so recency
///   survives a restart. A bad file is rejected, counted, deleted, and `get` returns nil.
/// - `put` writes a temp file (0600) in the same directory and `rename`s it over the entry, so a
///   reader sees the old file or the new one, never a part. No fsync by default: after a power
///   loss a file may be short or zeroed, which the checks reject; it is a cache.
/// - Thread-safe: the index is under one lock; file reads and temp writes run outside it.
///   One process per directory is assumed (a second process's writes are seen only after reopening).
public final class DiskTier: @unchecked Sendable {
    public struct Stats: Sendable, Equatable {
        public var bytes = 0
        public var entries = 0
        public var capacityBytes = 0
        public var hits = 0
        public var misses = 0
        public var evictions = 0
        public var oversizeRejected = 0
        public var rejectedEntries = 0
        public var rejections: [DiskRejection: Int] = [:]
        public var writeErrors = 0
        public var staleTempFilesRemoved = 0
    }

    struct IndexEntry {
        var key: CacheKey
        var fileBytes: Int
        var tokenCount: Int
        var generation: UInt64
    }

    public let directory: String
    public let fingerprint: ModelFingerprint
    public let capacityBytes: Int
    /// When set, entries of another (layers, kvDim) are rejected.
    public let shape: (layers: Int, kvDim: Int)?
    public let fsyncWrites: Bool
    /// Temp files older than this (seconds) are removed when the directory is opened.
    public static let staleTempAge: Double = 600

    private let lock = NSLock()
    private var index: [CacheKey: IndexEntry] = [:]
    private var lru = LRUList<CacheKey>()
    private var children = ChildIndex()
    private var stats_ = Stats()
    private var nextGeneration: UInt64 = 0
    private var tempCounter: UInt64 = 0

    /// Opens (creating it 0700 if needed) `directory` and indexes the entries in it.
    public init(directory: String, fingerprint: ModelFingerprint, capacityBytes: Int,
                shape: (layers: Int, kvDim: Int)? = nil, fsyncWrites: Bool = false) throws {
        self.directory = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        self.fingerprint = fingerprint
        self.capacityBytes = max(0, capacityBytes)
        self.shape = shape
        self.fsyncWrites = fsyncWrites
        stats_.capacityBytes = self.capacityBytes
        try Self.makeDirectory(self.directory)
        scan()
    }

    public var stats: Stats { lock.held { stats_ } }

    /// Whether an entry is indexed (no file access).
    public func contains(_ key: some CacheKeyConvertible) -> Bool {
        let key = key.cacheKey
        return lock.held { index[key] != nil }
    }

    /// Keys from least to most recently used.
    public var keysOldestFirst: [CacheKey] { lock.held { lru.oldestFirst } }

    public func children(of parent: Digest128) -> [(key: CacheKey, tokenCount: Int)] {
        lock.held { children.children(of: parent) }
    }

    public func path(for key: some CacheKeyConvertible) -> String {
        directory + "/" + DiskFormat.fileName(for: key.cacheKey)
    }

    // MARK: get

    /// Reads and checks the entry; nil when absent or rejected.
    public func get(_ key: some CacheKeyConvertible) -> EncodedKV? {
        let key = key.cacheKey
        guard let entry = lock.held({ () -> IndexEntry? in
            let e = index[key]
            if e == nil { stats_.misses += 1 }
            return e
        }) else { return nil }
        let path = path(for: key)
        switch read(path: path, key: key) {
        case let .success(value):
            lock.held {
                stats_.hits += 1
                if index[key] != nil { lru.touch(key) }
            }
            _ = utimensat(AT_FDCWD, path, nil, 0)
            return value
        case .failure(.gone):
            // Deleted behind our back (or evicted by another thread meanwhile): a plain miss.
            lock.held {
                stats_.misses += 1
                if index[key]?.generation == entry.generation { removeLocked(key, unlinking: false) }
            }
            return nil
        case let .failure(.rejected(reason)):
            lock.held {
                stats_.misses += 1
                countRejection(reason)
                if index[key]?.generation == entry.generation { removeLocked(key, unlinking: true) }
            }
            return nil
        }
    }

    enum ReadFailure: Error {
        case gone
        case rejected(DiskRejection)
    }

    /// Opens an entry file, reads and checks its header, and hands the open descriptor on.
    private func openEntry<T>(path: String, key: CacheKey,
                              _ then: (Int32, [UInt8], DiskFormat.Header, Int, stat) -> Result<T, ReadFailure>)
        -> Result<T, ReadFailure> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 {
            let e = errno
            if e == ENOENT { return .failure(.gone) }
            return .failure(.rejected(e == ELOOP ? .notRegularFile : .unreadable))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(.rejected(.unreadable)) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .failure(.rejected(.notRegularFile)) }
        let size = Int(st.st_size)
        var header = [UInt8](repeating: 0, count: DiskFormat.headerSize)
        if size >= DiskFormat.headerSize,
           !Self.preadFully(fd, &header, count: DiskFormat.headerSize, offset: 0) {
            return .failure(.rejected(.truncated))
        }
        switch DiskFormat.parse(header, fileSize: size, expectedKey: key, fingerprint: fingerprint, shape: shape,
                                maxFileSize: capacityBytes) {
        case let .success(h): return then(fd, header, h, size, st)
        case let .failure(r): return .failure(.rejected(r))
        }
    }

    private func read(path: String, key: CacheKey) -> Result<EncodedKV, ReadFailure> {
        openEntry(path: path, key: key) { fd, header, h, _, _ in
            var body = [UInt8](repeating: 0, count: h.bodyLength)
            guard Self.preadFully(fd, &body, count: h.bodyLength, offset: DiskFormat.headerSize) else {
                return .failure(.rejected(.truncated))
            }
            guard DiskFormat.checksum(header: header, body: body) == h.checksum else {
                return .failure(.rejected(.checksumMismatch))
            }
            guard let value = EncodedKV(encoding: h.encoding, layers: h.layers, tokenCount: h.tokenCount,
                                        kvDim: h.kvDim, body: body) else { return .failure(.rejected(.badHeader)) }
            return .success(value)
        }
    }

    // MARK: put

    /// Writes the entry (replacing any with the same key) and evicts least recently used entries
    /// until the total fits. An entry larger than the whole budget is rejected and counted.
    @discardableResult
    public func put(_ key: some CacheKeyConvertible, _ value: EncodedKV) -> PutResult {
        let key = key.cacheKey
        if let shape, shape.layers != value.layers || shape.kvDim != value.kvDim { return .rejectedShape }
        if let n = key.tokenCount, n != value.tokenCount { return .rejectedShape }
        let fileBytes = DiskFormat.headerSize + value.byteCount
        let tmpName: String? = lock.held {
            guard fileBytes <= capacityBytes else {
                stats_.oversizeRejected += 1
                return nil
            }
            tempCounter += 1
            return "\(DiskFormat.tempPrefix)\(getpid())-\(tempCounter)-\(UInt32.random(in: 0...UInt32.max))"
        }
        guard let tmpName else { return .rejectedOversize }
        let tmp = directory + "/" + tmpName
        let header = DiskFormat.header(key: key, fingerprint: fingerprint, value: value)
        guard writeFile(tmp, header: header, body: value.body) else {
            unlink(tmp)
            lock.held { stats_.writeErrors += 1 }
            return .failed
        }
        let final = path(for: key)
        return lock.held {
            guard rename(tmp, final) == 0 else {
                unlink(tmp)
                stats_.writeErrors += 1
                return .failed
            }
            if index[key] != nil { removeLocked(key, unlinking: false) }
            insertLocked(IndexEntry(key: key, fileBytes: fileBytes, tokenCount: value.tokenCount, generation: 0))
            var evicted: [CacheKey] = []
            while stats_.bytes > capacityBytes, let victim = lru.oldest, victim != key {
                removeLocked(victim, unlinking: true)
                evicted.append(victim)
            }
            stats_.evictions += evicted.count
            return .stored(evicted: evicted)
        }
    }

    private func writeFile(_ path: String, header: [UInt8], body: [UInt8]) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return false }
        var ok = fchmod(fd, 0o600) == 0
        ok = ok && Self.writeFully(fd, header) && Self.writeFully(fd, body)
        if ok && fsyncWrites { ok = fsync(fd) == 0 }
        return close(fd) == 0 && ok
    }

    // MARK: removal

    @discardableResult
    public func remove(_ key: some CacheKeyConvertible) -> Bool {
        let key = key.cacheKey
        return lock.held {
            guard index[key] != nil else { return false }
            removeLocked(key, unlinking: true)
            return true
        }
    }

    /// Deletes every entry file in the directory (indexed or not). Counters are kept.
    public func removeAll() {
        lock.held {
            index = [:]
            lru.removeAll()
            children.removeAll()
            stats_.bytes = 0
            stats_.entries = 0
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            where DiskFormat.parseFileName(name) != nil {
                unlink(directory + "/" + name)
            }
        }
    }

    /// Drops index entries whose file is gone (another process sharing the directory deleted
    /// it, e.g. its Ctrl-R), so the sizes shown stay true. One `lstat` per entry, no reads.
    @discardableResult
    public func dropVanishedEntries() -> Int {
        let snapshot = lock.held { index.values.map { ($0.key, $0.generation) } }
        var gone: [(CacheKey, UInt64)] = []
        for (key, generation) in snapshot {
            var st = stat()
            if lstat(path(for: key), &st) != 0 && errno == ENOENT { gone.append((key, generation)) }
        }
        guard !gone.isEmpty else { return 0 }
        return lock.held {
            var n = 0
            for (key, generation) in gone where index[key]?.generation == generation {
                removeLocked(key, unlinking: false)
                n += 1
            }
            return n
        }
    }

    public func resetCounters() {
        lock.held {
            let keep = stats_
            stats_ = Stats()
            stats_.bytes = keep.bytes
            stats_.entries = keep.entries
            stats_.capacityBytes = keep.capacityBytes
        }
    }

    // MARK: index

    private func insertLocked(_ e: IndexEntry) {
        var e = e
        nextGeneration += 1
        e.generation = nextGeneration
        index[e.key] = e
        lru.touch(e.key)
        children.insert(e.key, tokenCount: e.tokenCount)
        stats_.bytes += e.fileBytes
        stats_.entries = index.count
    }

    private func removeLocked(_ key: CacheKey, unlinking: Bool) {
        guard let e = index.removeValue(forKey: key) else { return }
        lru.remove(key)
        children.remove(e.key)
        stats_.bytes -= e.fileBytes
        stats_.entries = index.count
        if unlinking { unlink(path(for: key)) }
    }

    private func countRejection(_ r: DiskRejection) {
        stats_.rejectedEntries += 1
        stats_.rejections[r, default: 0] += 1
    }

    /// Rebuilds the index from the directory: headers only, oldest mtime first.
    private func scan() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var found: [(entry: IndexEntry, mtime: timespec, name: String)] = []
        let now = Date().timeIntervalSince1970
        for name in names {
            let path = directory + "/" + name
            if name.hasPrefix(DiskFormat.tempPrefix) {
                var st = stat()
                if lstat(path, &st) == 0, now - Double(Self.mtime(st).tv_sec) > Self.staleTempAge {
                    if unlink(path) == 0 { stats_.staleTempFilesRemoved += 1 }
                }
                continue
            }
            guard let (kind, digest) = DiskFormat.parseFileName(name) else { continue }
            switch readHeader(path: path, key: CacheKey(kind: kind, digest: digest)) {
            case let .success((h, size, mtime)):
                found.append((IndexEntry(key: h.key, fileBytes: size, tokenCount: h.tokenCount, generation: 0),
                              mtime, name))
            case .failure(.gone):
                continue
            case let .failure(.rejected(reason)):
                countRejection(reason)
                unlink(path)
            }
        }
        found.sort { a, b in
            (a.mtime.tv_sec, a.mtime.tv_nsec, a.name) < (b.mtime.tv_sec, b.mtime.tv_nsec, b.name)
        }
        lock.held {
            for f in found { insertLocked(f.entry) }
            while stats_.bytes > capacityBytes, let victim = lru.oldest {
                removeLocked(victim, unlinking: true)
                stats_.evictions += 1
            }
        }
    }

    private func readHeader(path: String, key: CacheKey)
        -> Result<(DiskFormat.Header, Int, timespec), ReadFailure> {
        openEntry(path: path, key: key) { _, _, h, size, st in .success((h, size, Self.mtime(st))) }
    }

    // MARK: POSIX helpers

    static func mtime(_ st: stat) -> timespec {
        #if canImport(Darwin)
        return st.st_mtimespec
        #else
        return st.st_mtim
        #endif
    }

    /// Makes a directory that others can read or write (e.g. 0777, 0755) private: 0700 when this
    /// user owns it and it is not a shared sticky directory like /tmp. Returns a one-line note
    /// of what was done (or, when it could not be tightened, a warning); nil when it was fine.
    @discardableResult
    public static func tightenPermissions(of path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return nil }
        let mode = Int(st.st_mode) & 0o7777
        guard mode & 0o077 != 0 else { return nil }
        let octal = String(mode, radix: 8)
        if st.st_uid == geteuid(), mode & Int(S_ISVTX) == 0, chmod(path, 0o700) == 0 {
            return "tightened \(path) from \(octal) to 700 (KV entries are private)"
        }
        return "warning: \(path) is open to other users (mode \(octal)) and was not changed; they could read or plant KV entries there"
    }

    static func makeDirectory(_ path: String) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw DiskTierError.notADirectory(path: path) }
            tightenPermissions(of: path)
            return
        }
        // Create missing components, each 0700.
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if mkdir(prefix, 0o700) == 0 {
                chmod(prefix, 0o700)  // exact, whatever the umask
            } else if errno != EEXIST {
                throw DiskTierError.cannotCreateDirectory(path: prefix, errno: errno)
            }
        }
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw DiskTierError.notADirectory(path: path)
        }
    }

    static func preadFully(_ fd: Int32, _ buf: inout [UInt8], count: Int, offset: Int) -> Bool {
        buf.withUnsafeMutableBytes { raw in
            var done = 0
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
                if n > 0 {
                    done += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    return false
                }
            }
            return true
        }
    }

    static func writeFully(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n > 0 {
                    done += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    return false
                }
            }
            return true
        }
    }
}
