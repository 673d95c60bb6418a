import Foundation

/// Where an entry is held.
public enum StoreTier: Sendable, Equatable {
    case ram
    case disk
}

/// Counters and sizes of a `TieredStore`.
public struct StoreStats: Sendable, Equatable {
    public var encoding: KVEncoding = .default
    /// Stored bytes per token with the store's encoding and shape (`KVEncoding.bytesPerToken`).
    public var bytesPerToken = 0

    public var ramBytes = 0
    public var ramEntries = 0
    public var ramCapacityBytes = 0
    /// Disk bytes are whole files (128-byte header included).
    public var diskBytes = 0
    public var diskEntries = 0
    public var diskCapacityBytes = 0

    /// `get` calls answered from RAM / from disk / by neither.
    public var ramHits = 0
    public var diskHits = 0
    public var misses = 0
    public var ramEvictions = 0
    public var diskEvictions = 0
    /// Disk entries found corrupt, truncated or foreign, and deleted.
    public var rejectedEntries = 0
    /// Entries larger than a tier's whole capacity (counted per tier).
    public var oversizeRejected = 0
    public var diskWriteErrors = 0

    /// Time in `matchPrefix` (key chain, index checks).
    public var lookupSeconds = 0.0
    /// Time in `get` / `getBlock` (RAM copy or disk read and check; decode for `getBlock`).
    public var loadSeconds = 0.0

    public var hits: Int { ramHits + diskHits }
    public var evictions: Int { ramEvictions + diskEvictions }
}

/// Result of `TieredStore.matchPrefix`.
public struct PrefixMatch: Sendable, Equatable {
    /// Every chunk key of the tokens (what to store after prefill).
    public var chain: [PrefixChunkKey]
    /// The stored chunks covering the longest cached prefix, in order. All but the last are
    /// chain keys; the last may be a shorter stored chunk (a partial tail of an earlier prompt).
    public var keys: [PrefixChunkKey]
    /// Tokens covered by `keys`.
    public var tokenCount: Int { keys.last?.tokenRange.upperBound ?? 0 }
}

/// RAM then disk. Typical engine use (prefix reuse):
///
///     let store = try TieredStore(.init(fingerprint: fp, layers: 30, kvDim: 192,
///                                       ramCapacityBytes: cacheMB << 20,
///                                       diskDirectory: cacheDir + "/kv", diskCapacityBytes: diskMB << 20))
///     let match = store.matchPrefix(tokens: prompt)          // longest stored prefix, nothing loaded
///     for key in match.keys {                                // in order; stop at the first nil
///         guard let e = store.get(key) else { break }
///         for l in 0..<30 { e.decode(.k, layer: l, into: kCache(l) + key.tokenRange.lowerBound * 192) … }
///     }
///     // prefill the rest, then store the chunks not yet stored:
///     for key in match.chain where !store.contains(key) { store.put(key, block: kv.slice(tokens: key.tokenRange)) }
///
/// Segment reuse is the same with `segmentKey(for:context:)` and `contains` / `get` / `put`.
///
/// `put` writes to RAM and, write-through, to disk: every entry is on disk as soon as
/// it is stored, so a run killed at any moment leaves a warm cache, and evicting from RAM never
/// writes (a RAM eviction can happen inside a `get` that promotes a disk hit, on the TTFT path).
/// The price is one file write per `put`, which the engine can make off its critical path.
public final class TieredStore: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var fingerprint: ModelFingerprint
        public var layers: Int
        public var kvDim: Int
        public var encoding: KVEncoding
        public var ramCapacityBytes: Int
        /// nil: RAM only.
        public var diskDirectory: String?
        public var diskCapacityBytes: Int
        public var chunkSize: Int
        public var fsyncWrites: Bool

        public init(fingerprint: ModelFingerprint, layers: Int, kvDim: Int, encoding: KVEncoding = .default,
                    ramCapacityBytes: Int, diskDirectory: String? = nil, diskCapacityBytes: Int = 0,
                    chunkSize: Int = PrefixKeys.defaultChunkSize, fsyncWrites: Bool = false) {
            self.fingerprint = fingerprint
            self.layers = layers
            self.kvDim = kvDim
            self.encoding = encoding
            self.ramCapacityBytes = ramCapacityBytes
            self.diskDirectory = diskDirectory
            self.diskCapacityBytes = diskCapacityBytes
            self.chunkSize = max(1, chunkSize)
            self.fsyncWrites = fsyncWrites
        }
    }

    public let configuration: Configuration
    public let ram: RAMTier
    public let disk: DiskTier?
    /// Parent of the first prefix chunk for this model.
    public let root: Digest128

    private let lock = NSLock()
    private var ramHits = 0, diskHits = 0, misses = 0
    private var lookupNanos: UInt64 = 0, loadNanos: UInt64 = 0

    /// Opens the tiers; throws only if the disk directory cannot be created.
    public init(_ configuration: Configuration) throws {
        self.configuration = configuration
        ram = RAMTier(capacityBytes: configuration.ramCapacityBytes)
        if let dir = configuration.diskDirectory {
            disk = try DiskTier(directory: dir, fingerprint: configuration.fingerprint,
                                capacityBytes: configuration.diskCapacityBytes,
                                shape: (configuration.layers, configuration.kvDim),
                                fsyncWrites: configuration.fsyncWrites)
        } else {
            disk = nil
        }
        root = PrefixKeys.root(configuration.fingerprint)
    }

    // MARK: keys

    /// Chunk keys of `tokens` with the configured chunk size.
    public func prefixKeys(for tokens: [Int32]) -> [PrefixChunkKey] {
        PrefixKeys.chain(tokens: tokens, root: root, chunkSize: configuration.chunkSize)
    }

    public func segmentKey(for tokens: some Collection<Int32>, context: Digest128? = nil) -> SegmentKey {
        SegmentKey(fingerprint: configuration.fingerprint, tokens: tokens, context: context)
    }

    // MARK: put / get

    /// Encodes with the configured encoding and stores. False if the block is malformed, has another
    /// shape than the store's, or was stored by no tier (too large for both).
    @discardableResult
    public func put(_ key: some CacheKeyConvertible, block: KVBlock) -> Bool {
        guard block.isWellFormed, block.layers == configuration.layers, block.kvDim == configuration.kvDim,
              configuration.encoding.bodyBytes(layers: block.layers, tokenCount: block.tokenCount,
                                                kvDim: block.kvDim) != nil
        else { return false }
        return put(key, encoded: EncodedKV(block, encoding: configuration.encoding))
    }

    /// Stores an already encoded entry (any encoding) in RAM and on disk.
    @discardableResult
    public func put(_ key: some CacheKeyConvertible, encoded: EncodedKV) -> Bool {
        guard encoded.layers == configuration.layers, encoded.kvDim == configuration.kvDim else { return false }
        let key = key.cacheKey
        let inRAM = ram.put(key, encoded).isStored
        let onDisk = disk?.put(key, encoded).isStored ?? false
        return inRAM || onDisk
    }

    /// The entry from RAM, else from disk (then promoted to RAM if it fits); nil on a miss.
    public func get(_ key: some CacheKeyConvertible) -> EncodedKV? {
        let start = Self.now()
        let key = key.cacheKey
        var tier: StoreTier?
        var value = ram.get(key)
        if value != nil {
            tier = .ram
        } else if let v = disk?.get(key) {
            tier = .disk
            value = v
            if v.byteCount <= ram.capacityBytes { ram.put(key, v) }
        }
        let elapsed = Self.now() &- start
        lock.held {
            loadNanos &+= elapsed
            switch tier {
            case .ram: ramHits += 1
            case .disk: diskHits += 1
            case nil: misses += 1
            }
        }
        return value
    }

    /// `get`, decoded to f32 (decode time counts as load time).
    public func getBlock(_ key: some CacheKeyConvertible) -> KVBlock? {
        guard let e = get(key) else { return nil }
        let start = Self.now()
        let block = e.decode()
        let elapsed = Self.now() &- start
        lock.held { loadNanos &+= elapsed }
        return block
    }

    /// Whether any tier holds the entry. Index look-ups only: no file access, no counters, no
    /// recency change (the UI can call it freely).
    public func contains(_ key: some CacheKeyConvertible) -> Bool {
        location(of: key) != nil
    }

    /// The fastest tier holding the entry.
    public func location(of key: some CacheKeyConvertible) -> StoreTier? {
        let key = key.cacheKey
        if ram.contains(key) { return .ram }
        if disk?.contains(key) == true { return .disk }
        return nil
    }

    /// The longest stored prefix of `tokens`: chain keys while they are stored, then, at the first
    /// missing chunk, the longest stored sibling that is a prefix of it (a partial tail stored for
    /// an earlier, shorter prompt). Does not load anything; a key found here may still be evicted
    /// before `get`, so treat a nil `get` as the end of the match.
    public func matchPrefix(tokens: [Int32]) -> PrefixMatch {
        let start = Self.now()
        let chain = prefixKeys(for: tokens)
        var keys: [PrefixChunkKey] = []
        for key in chain {
            if contains(key) {
                keys.append(key)
                continue
            }
            var counts = Set<Int>()
            var stored = Set<Digest128>()
            for c in ram.children(of: key.parent) + (disk?.children(of: key.parent) ?? [])
            where c.tokenCount < key.tokenCount {
                counts.insert(c.tokenCount)
                stored.insert(c.key.digest)
            }
            let lo = key.tokenRange.lowerBound
            for n in counts.sorted(by: >) {
                let d = PrefixKeys.chunkDigest(parent: key.parent, tokens: tokens[lo..<(lo + n)])
                if stored.contains(d) {
                    keys.append(PrefixChunkKey(digest: d, parent: key.parent, index: key.index, tokenRange: lo..<(lo + n)))
                    break
                }
            }
            break
        }
        let elapsed = Self.now() &- start
        lock.held { lookupNanos &+= elapsed }
        return PrefixMatch(chain: chain, keys: keys)
    }

    // MARK: maintenance

    /// Cold reset: drops RAM entries and zeroes every counter; with `wipeDisk`, deletes the disk
    /// entries too (otherwise the next `get` finds them, as after a restart).
    public func clear(wipeDisk: Bool = false) {
        ram.removeAll()
        if wipeDisk { disk?.removeAll() }
        resetCounters()
    }

    public func resetCounters() {
        ram.resetCounters()
        disk?.resetCounters()
        lock.held {
            ramHits = 0
            diskHits = 0
            misses = 0
            lookupNanos = 0
            loadNanos = 0
        }
    }

    public var stats: StoreStats {
        let r = ram.stats
        let d = disk?.stats
        var s = StoreStats()
        s.encoding = configuration.encoding
        s.bytesPerToken = configuration.encoding.bytesPerToken(layers: configuration.layers, kvDim: configuration.kvDim)
        s.ramBytes = r.bytes
        s.ramEntries = r.entries
        s.ramCapacityBytes = r.capacityBytes
        s.ramEvictions = r.evictions
        s.oversizeRejected = r.oversizeRejected + (d?.oversizeRejected ?? 0)
        s.diskBytes = d?.bytes ?? 0
        s.diskEntries = d?.entries ?? 0
        s.diskCapacityBytes = d?.capacityBytes ?? 0
        s.diskEvictions = d?.evictions ?? 0
        s.rejectedEntries = d?.rejectedEntries ?? 0
        s.diskWriteErrors = d?.writeErrors ?? 0
        lock.held {
            s.ramHits = ramHits
            s.diskHits = diskHits
            s.misses = misses
            s.lookupSeconds = Double(lookupNanos) / 1e9
            s.loadSeconds = Double(loadNanos) / 1e9
        }
        return s
    }

    /// Monotonic nanoseconds.
    @inline(__always)
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}
