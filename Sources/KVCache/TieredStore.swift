import Foundation

/// Where an entry is held: a tier's name.
public struct StoreTier: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    public init(_ name: String) { self.name = name }
    public static let ram = StoreTier("ram")
    public static let disk = StoreTier("disk")
    public static let remote = StoreTier("remote")
    public var description: String { name }
}

/// Counters and sizes of a `TieredStore`: one `TierStats` per tier, fastest first.
public struct StoreStats: Sendable, Equatable {
    public var encoding: KVEncoding = .default
    /// Stored bytes per token with the store's encoding and shape (`KVEncoding.bytesPerToken`).
    public var bytesPerToken = 0
    /// One per tier, in the store's order (RAM first). `hits` counts `get` calls answered by the tier.
    public var tiers: [TierStats] = []
    /// `get` calls answered by no tier.
    public var misses = 0

    /// Time in `matchPrefix` and `prefetch` (key chain, index checks, remote round trips).
    public var lookupSeconds = 0.0
    /// Time in `get` / `getBlock` (RAM copy or disk read and check; decode for `getBlock`).
    public var loadSeconds = 0.0

    public init() {}

    /// The tier named `name`, if the store has one.
    public subscript(tier name: String) -> TierStats? { tiers.first { $0.name == name } }

    public var hits: Int { tiers.reduce(0) { $0 + $1.hits } }
    public var evictions: Int { tiers.reduce(0) { $0 + $1.evictions } }
    /// Entries found corrupt, truncated, foreign or unauthenticated, in any tier.
    public var rejectedEntries: Int { tiers.reduce(0) { $0 + $1.rejectedEntries } }
    /// Entries larger than a tier's whole capacity (counted per tier).
    public var oversizeRejected: Int { tiers.reduce(0) { $0 + $1.oversizeRejected } }
    public var writeErrors: Int { tiers.reduce(0) { $0 + $1.writeErrors } }

    // The two local tiers by name (tests and older callers).
    public var ramBytes: Int { self[tier: "ram"]?.bytes ?? 0 }
    public var ramEntries: Int { self[tier: "ram"]?.entries ?? 0 }
    public var ramCapacityBytes: Int { self[tier: "ram"]?.capacityBytes ?? 0 }
    public var ramHits: Int { self[tier: "ram"]?.hits ?? 0 }
    public var ramEvictions: Int { self[tier: "ram"]?.evictions ?? 0 }
    /// Disk bytes are whole files (128-byte header included).
    public var diskBytes: Int { self[tier: "disk"]?.bytes ?? 0 }
    public var diskEntries: Int { self[tier: "disk"]?.entries ?? 0 }
    public var diskCapacityBytes: Int { self[tier: "disk"]?.capacityBytes ?? 0 }
    public var diskHits: Int { self[tier: "disk"]?.hits ?? 0 }
    public var diskEvictions: Int { self[tier: "disk"]?.evictions ?? 0 }
    public var diskWriteErrors: Int { self[tier: "disk"]?.writeErrors ?? 0 }
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

/// An ordered list of tiers: RAM, then disk, then any lower tiers given at init (a shared remote
/// tier). Typical engine use (prefix reuse):
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
/// A tier that is not local (`KVTier.isLocal`, e.g. a remote server) is read only through
/// `prefetch(_:)`: one batch per request, before `matchPrefix`; what it found is held until
/// `clearPrefetched()` and handed out by `get` (then promoted into RAM), counted as that tier's hits.
///
/// `put` writes to RAM and, write-through, to every lower tier: every entry is on disk as soon as
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
        /// Reads from disk pass this link (`--disk-bandwidth`); nil = as fast as the disk is.
        public var diskThrottle: Throttle?

        public init(fingerprint: ModelFingerprint, layers: Int, kvDim: Int, encoding: KVEncoding = .default,
                    ramCapacityBytes: Int, diskDirectory: String? = nil, diskCapacityBytes: Int = 0,
                    chunkSize: Int = PrefixKeys.defaultChunkSize, fsyncWrites: Bool = false,
                    diskThrottle: Throttle? = nil) {
            self.fingerprint = fingerprint
            self.layers = layers
            self.kvDim = kvDim
            self.encoding = encoding
            self.ramCapacityBytes = ramCapacityBytes
            self.diskDirectory = diskDirectory
            self.diskCapacityBytes = diskCapacityBytes
            self.chunkSize = max(1, chunkSize)
            self.fsyncWrites = fsyncWrites
            self.diskThrottle = diskThrottle
        }
    }

    public let configuration: Configuration
    public let ram: RAMTier
    public let disk: DiskTier?
    /// Every tier, fastest first: RAM, disk (if configured), then the lower tiers given at init.
    public let tiers: [any KVTier]
    /// Parent of the first prefix chunk for this model.
    public let root: Digest128

    private let lock = NSLock()
    private var tierHits: [Int]
    private var misses = 0
    private var lookupNanos: UInt64 = 0, loadNanos: UInt64 = 0
    /// What `prefetch` found in tiers that are not local: entry and tier index.
    private var prefetched: [CacheKey: (value: EncodedKV, tier: Int)] = [:]
    /// What `probe` found in tiers that are not local, without bodies: tier index.
    private var probed: [CacheKey: Int] = [:]

    /// Opens the tiers; throws only if the disk directory cannot be created. `lowerTiers` come
    /// after RAM and disk, in order (e.g. a remote tier shared with other instances).
    public init(_ configuration: Configuration, lowerTiers: [any KVTier] = []) throws {
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
        var tiers: [any KVTier] = [ram]
        if let disk {
            if let t = configuration.diskThrottle, t.isActive { tiers.append(ThrottledTier(disk, throttle: t)) } else { tiers.append(disk) }
        }
        tiers += lowerTiers
        self.tiers = tiers
        tierHits = Array(repeating: 0, count: tiers.count)
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

    /// Stores an already encoded entry (any encoding) in every tier (write-through; a remote
    /// tier queues the write and returns at once).
    @discardableResult
    public func put(_ key: some CacheKeyConvertible, encoded: EncodedKV) -> Bool {
        guard encoded.layers == configuration.layers, encoded.kvDim == configuration.kvDim else { return false }
        let key = key.cacheKey
        var stored = false
        for tier in tiers where tier.put(key, encoded).isStored { stored = true }
        return stored
    }

    /// The entry from the fastest tier holding it (a lower tier's hit is promoted to RAM if it
    /// fits); nil on a miss.
    public func get(_ key: some CacheKeyConvertible) -> EncodedKV? {
        lookup(key)?.value
    }

    /// `get`, with the index in `tiers` of the tier that answered.
    public func lookup(_ key: some CacheKeyConvertible) -> (value: EncodedKV, tier: Int)? {
        let start = Self.now()
        let key = key.cacheKey
        var found: (value: EncodedKV, tier: Int)?
        for (i, tier) in tiers.enumerated() where tier.isLocal {
            if let v = tier.get(key) {
                found = (v, i)
                break
            }
        }
        if found == nil, let p = lock.held({ prefetched.removeValue(forKey: key) }) { found = p }
        if found == nil, let i = lock.held({ probed.removeValue(forKey: key) }), let v = tiers[i].get(key),
           v.layers == configuration.layers, v.kvDim == configuration.kvDim {
            found = (v, i)
        }
        if let f = found, f.tier > 0, f.value.byteCount <= ram.capacityBytes { ram.put(key, f.value) }
        let elapsed = Self.now() &- start
        lock.held {
            loadNanos &+= elapsed
            if let f = found { tierHits[f.tier] += 1 } else { misses += 1 }
        }
        return found
    }

    /// `lookup` for each of `keys` in order, each result handed to `body` (with its index in
    /// `keys`) as soon as it has arrived; `body` returns false to stop. A run of keys that a tier
    /// that is not local was found holding by `probe` is read with that tier's `stream`: its
    /// requests pipelined, so one entry's transfer overlaps the caller's work on the one before.
    /// Keys that stream did not hand over (the tier stopped, unreachable) are misses.
    public func stream(_ keys: [some CacheKeyConvertible], _ body: (Int, (value: EncodedKV, tier: Int)?) -> Bool) {
        let keys = keys.map(\.cacheKey)
        var i = 0
        while i < keys.count {
            guard let t = streamedTier(keys[i]) else {
                guard body(i, lookup(keys[i])) else { return }
                i += 1
                continue
            }
            var end = i + 1
            while end < keys.count, streamedTier(keys[end]) == t { end += 1 }
            // Counted as each entry arrives (the caller may stop listening early); the load time
            // excludes the caller's own work.
            var mark = Self.now(), next = i, go = true
            tiers[t].stream(Array(keys[i..<end])) { k, v in
                var found: (value: EncodedKV, tier: Int)?
                if let v, v.layers == configuration.layers, v.kvDim == configuration.kvDim { found = (v, t) }
                if let f = found, f.value.byteCount <= ram.capacityBytes { ram.put(k, f.value) }
                let arrived = Self.now()
                lock.held {
                    _ = probed.removeValue(forKey: k)
                    if found != nil { tierHits[t] += 1 } else { misses += 1 }
                    loadNanos &+= arrived &- mark
                }
                go = body(next, found)
                next += 1
                mark = Self.now()
                return go
            }
            guard go else { return }
            while next < end {
                lock.held { misses += 1 }
                guard body(next, nil) else { return }
                next += 1
            }
            i = end
        }
    }

    /// The tier (not local) that `probe` found holding `key`, when neither a local tier nor a
    /// prefetch holds it.
    private func streamedTier(_ key: CacheKey) -> Int? {
        if tiers.contains(where: { $0.isLocal && $0.contains(key) }) { return nil }
        return lock.held { prefetched[key] == nil ? probed[key] : nil }
    }

    /// Asks every tier that is not local for those of `keys` no local tier holds, in one batch
    /// per tier (a remote tier: one round trip), and, in the same round trip, which of `probing`
    /// it holds without their bodies. What they hold is kept for `contains`/`get` until
    /// `clearPrefetched()` or the next `prefetch`; a probed entry is read later by `get` (a round
    /// trip of its own: a segment is read only if the plan blends it) or `stream` (pipelined:
    /// Cake's I/O side loads chunk by chunk from the back). Returns the number of bodies found.
    @discardableResult
    public func prefetch(_ keys: [CacheKey], probing: [CacheKey] = []) -> Int {
        clearPrefetched()
        let remoteTiers = tiers.indices.filter { !tiers[$0].isLocal }
        guard !remoteTiers.isEmpty else { return 0 }
        let start = Self.now()
        var seen = Set<CacheKey>()
        var want = keys.filter { k in seen.insert(k).inserted && !tiers.contains { $0.isLocal && $0.contains(k) } }
        var ask = probing.filter { k in seen.insert(k).inserted && !tiers.contains { $0.isLocal && $0.contains(k) } }
        var found = 0
        for i in remoteTiers where !want.isEmpty || !ask.isEmpty {
            let (bodies, present) = tiers[i].fetch(want, probing: ask)
            let got = bodies.filter { $0.value.layers == configuration.layers && $0.value.kvDim == configuration.kvDim }
            lock.held {
                for (k, v) in got { prefetched[k] = (v, i) }
                for k in present where probed[k] == nil { probed[k] = i }
            }
            found += got.count
            want.removeAll { got[$0] != nil }
            ask.removeAll { present.contains($0) }
        }
        let elapsed = Self.now() &- start
        lock.held { lookupNanos &+= elapsed }
        return found
    }

    /// `prefetch([], probing: keys)`: which of `keys` the tiers that are not local hold, without
    /// bodies. Returns the number found.
    @discardableResult
    public func probe(_ keys: [CacheKey]) -> Int {
        prefetch([], probing: keys)
        return lock.held { probed.count }
    }

    /// Index in `tiers` of the fastest tier holding the entry (for a tier that is not local:
    /// found by `prefetch` or `probe`).
    public func tierIndex(of key: some CacheKeyConvertible) -> Int? {
        let key = key.cacheKey
        for (i, tier) in tiers.enumerated() where tier.isLocal && tier.contains(key) { return i }
        return lock.held { prefetched[key]?.tier ?? probed[key] }
    }

    /// Ends a request's prefetch: what `prefetch` found and `get` did not take is kept in RAM
    /// when it fits (it was transferred already, and asking again would cost another round trip),
    /// unless `keep` is false; then the list is dropped.
    public func clearPrefetched(keep: Bool = true) {
        let left = lock.held { () -> [CacheKey: (value: EncodedKV, tier: Int)] in
            let p = prefetched
            prefetched = [:]
            probed = [:]
            return p
        }
        guard keep else { return }
        for (key, e) in left where e.value.byteCount <= ram.capacityBytes && !ram.contains(key) { ram.put(key, e.value) }
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

    /// The fastest tier holding the entry (for a tier that is not local: found by `prefetch`).
    public func location(of key: some CacheKeyConvertible) -> StoreTier? {
        tierIndex(of: key).map { StoreTier(tiers[$0].name) }
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
            for tier in tiers where tier.isLocal {
                for c in tier.children(of: key.parent) where c.tokenCount < key.tokenCount {
                    counts.insert(c.tokenCount)
                    stored.insert(c.key.digest)
                }
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
    /// entries too (otherwise the next `get` finds them, as after a restart). Tiers that are not
    /// local (a server shared with other instances) are never wiped from here.
    public func clear(wipeDisk: Bool = false) {
        ram.removeAll()
        if wipeDisk {
            for tier in tiers.dropFirst() where tier.isLocal { tier.removeAll() }
        }
        clearPrefetched(keep: false)
        resetCounters()
    }

    public func resetCounters() {
        for tier in tiers { tier.resetCounters() }
        lock.held {
            tierHits = Array(repeating: 0, count: tiers.count)
            misses = 0
            lookupNanos = 0
            loadNanos = 0
        }
    }

    public var stats: StoreStats {
        var s = StoreStats()
        s.encoding = configuration.encoding
        s.bytesPerToken = configuration.encoding.bytesPerToken(layers: configuration.layers, kvDim: configuration.kvDim)
        s.tiers = tiers.map(\.tierStats)
        lock.held {
            for i in s.tiers.indices { s.tiers[i].hits = tierHits[i] }
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
