import Foundation

extension NSLock {
    @inline(__always)
    func held<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// Outcome of a put into a tier.
public enum PutResult: Sendable, Equatable {
    /// Stored; these keys were evicted to make room, oldest first.
    case stored(evicted: [CacheKey])
    /// Larger than the tier's whole capacity: not stored.
    case rejectedOversize
    /// Shape (layers, kvDim) differs from the store's: not stored.
    case rejectedShape
    /// Could not be written (disk tier only: I/O error).
    case failed

    public var isStored: Bool {
        if case .stored = self { return true }
        return false
    }
}

/// Prefix-chunk children by parent key, so a partial tail chunk can be found from its parent.
struct ChildIndex {
    private var map: [Digest128: [CacheKey: Int]] = [:]

    mutating func insert(_ key: CacheKey, tokenCount: Int) {
        guard key.kind == .prefixChunk else { return }
        map[key.parent, default: [:]][key] = tokenCount
    }

    mutating func remove(_ key: CacheKey) {
        guard key.kind == .prefixChunk, var m = map[key.parent] else { return }
        m[key] = nil
        map[key.parent] = m.isEmpty ? nil : m
    }

    mutating func removeAll() { map = [:] }

    func children(of parent: Digest128) -> [(key: CacheKey, tokenCount: Int)] {
        (map[parent] ?? [:]).map { (key: $0.key, tokenCount: $0.value) }
    }
}

/// In-memory tier: encoded entries bounded by their total `byteCount`, least recently used out
/// first. `get` counts as a use, `contains` does not. One lock guards everything, so any thread
/// may call any method.
public final class RAMTier: @unchecked Sendable {
    public struct Stats: Sendable, Equatable {
        public var bytes = 0
        public var entries = 0
        public var capacityBytes = 0
        public var hits = 0
        public var misses = 0
        public var evictions = 0
        public var oversizeRejected = 0
    }

    public let capacityBytes: Int
    private let lock = NSLock()
    private var entries: [CacheKey: (key: CacheKey, value: EncodedKV)] = [:]
    private var lru = LRUList<CacheKey>()
    private var children = ChildIndex()
    private var stats_ = Stats()

    public init(capacityBytes: Int) {
        self.capacityBytes = max(0, capacityBytes)
        stats_.capacityBytes = self.capacityBytes
    }

    public var stats: Stats { lock.held { stats_ } }

    /// The entry, marking it most recently used; nil (a miss) when absent.
    public func get(_ key: some CacheKeyConvertible) -> EncodedKV? {
        let key = key.cacheKey
        return lock.held {
            guard let e = entries[key] else {
                stats_.misses += 1
                return nil
            }
            stats_.hits += 1
            lru.touch(key)
            return e.value
        }
    }

    /// Whether the entry is held. Does not change recency or counters.
    public func contains(_ key: some CacheKeyConvertible) -> Bool {
        let key = key.cacheKey
        return lock.held { entries[key] != nil }
    }

    /// Stores (or replaces) an entry as most recently used, evicting least recently used entries
    /// until the total fits. An entry larger than the whole capacity is rejected and counted.
    @discardableResult
    public func put(_ key: some CacheKeyConvertible, _ value: EncodedKV) -> PutResult {
        let key = key.cacheKey
        return lock.held {
            guard value.byteCount <= capacityBytes else {
                stats_.oversizeRejected += 1
                return .rejectedOversize
            }
            if let old = entries[key] {
                stats_.bytes -= old.value.byteCount
                children.remove(old.key)
            }
            entries[key] = (key, value)
            children.insert(key, tokenCount: value.tokenCount)
            lru.touch(key)
            stats_.bytes += value.byteCount
            var evicted: [CacheKey] = []
            while stats_.bytes > capacityBytes, let victim = lru.oldest, victim != key {
                removeLocked(victim)
                evicted.append(victim)
            }
            stats_.evictions += evicted.count
            stats_.entries = entries.count
            return .stored(evicted: evicted)
        }
    }

    @discardableResult
    public func remove(_ key: some CacheKeyConvertible) -> Bool {
        let key = key.cacheKey
        return lock.held {
            guard entries[key] != nil else { return false }
            removeLocked(key)
            stats_.entries = entries.count
            return true
        }
    }

    /// Drops every entry (not counted as evictions). Counters are kept; see `resetCounters`.
    public func removeAll() {
        lock.held {
            entries = [:]
            lru.removeAll()
            children.removeAll()
            stats_.bytes = 0
            stats_.entries = 0
        }
    }

    public func resetCounters() {
        lock.held {
            stats_.hits = 0
            stats_.misses = 0
            stats_.evictions = 0
            stats_.oversizeRejected = 0
        }
    }

    /// Keys from least to most recently used.
    public var keysOldestFirst: [CacheKey] { lock.held { lru.oldestFirst } }

    /// Stored prefix chunks whose parent is `parent`, with their token counts.
    public func children(of parent: Digest128) -> [(key: CacheKey, tokenCount: Int)] {
        lock.held { children.children(of: parent) }
    }

    private func removeLocked(_ key: CacheKey) {
        guard let e = entries.removeValue(forKey: key) else { return }
        lru.remove(key)
        children.remove(e.key)
        stats_.bytes -= e.value.byteCount
    }
}
