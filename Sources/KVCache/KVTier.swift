// The one interface every storage tier implements. `TieredStore` holds an ordered list of them
// (RAM first, then disk, then any others such as a shared remote tier) and its statistics are an
// array of `TierStats`, one per tier, in that order: meters, request figures and the bench loop
// over it, so a new tier needs no change outside its own file.

/// Counters and sizes of one tier. Fields a tier has no use for stay 0 / nil.
public struct TierStats: Sendable, Hashable, Codable {
    /// "ram", "disk", "remote": what meters and JSON call the tier.
    public var name: String
    /// Stored bytes (disk: whole files, header included; remote: what this process wrote, when known).
    public var bytes = 0
    public var entries = 0
    public var capacityBytes = 0
    /// `TieredStore.get` calls answered by this tier.
    public var hits = 0
    public var evictions = 0
    /// Entries larger than the tier's whole capacity.
    public var oversizeRejected = 0
    /// Entries found corrupt, truncated, foreign (other model or encoding) or unauthenticated, never used.
    public var rejectedEntries = 0
    /// Writes that failed (I/O error, server error).
    public var writeErrors = 0
    /// Writes dropped before they were tried (a full queue, an unreachable server).
    public var droppedWrites = 0
    /// Entry bytes read from / written to the tier's medium (remote: over the network).
    public var bytesRead = 0
    public var bytesWritten = 0
    /// Network round trips (remote tiers).
    public var roundTrips = 0
    /// Time spent in this tier's reads on the request path, seconds.
    public var readSeconds = 0.0
    /// Connection state for tiers that have one ("ok", "unreachable", "retrying"); nil for local tiers.
    public var state: String?

    public init(name: String) {
        self.name = name
    }
}

/// A storage tier: a bounded map from `CacheKey` to `EncodedKV`. Thread-safe.
public protocol KVTier: AnyObject, Sendable {
    /// Stable short name ("ram", "disk", "remote").
    var name: String { get }
    /// Whether `contains` and `get` are answered in this process without waiting on a network.
    /// `TieredStore` reads a tier that is not local only through `fetch`, once per request, in
    /// one batch; its `get` is never called on the request path.
    var isLocal: Bool { get }
    /// Whether the entry is held. Local tiers: an index look-up, no I/O, no counters.
    func contains(_ key: some CacheKeyConvertible) -> Bool
    /// The entry, or nil when absent or rejected.
    func get(_ key: some CacheKeyConvertible) -> EncodedKV?
    /// Stores (or replaces) the entry.
    @discardableResult func put(_ key: some CacheKeyConvertible, _ value: EncodedKV) -> PutResult
    @discardableResult func remove(_ key: some CacheKeyConvertible) -> Bool
    /// Drops every entry this tier can reach. Counters are kept.
    func removeAll()
    func resetCounters()
    var tierStats: TierStats { get }
    /// Stored prefix chunks whose parent is `parent` (local tiers; a remote tier may answer []).
    func children(of parent: Digest128) -> [(key: CacheKey, tokenCount: Int)]
    /// The entries held among `keys`, in as few round trips as the tier allows (remote: one).
    func fetch(_ keys: [CacheKey]) -> [CacheKey: EncodedKV]
    /// Which of `keys` are held, without their bodies, in as few round trips as the tier allows.
    func present(_ keys: [CacheKey]) -> Set<CacheKey>
    /// `fetch(keys)` and `present(probing)` together, in as few round trips as the tier allows
    /// (remote: one pipelined round trip).
    func fetch(_ keys: [CacheKey], probing: [CacheKey]) -> (found: [CacheKey: EncodedKV], present: Set<CacheKey>)
    /// Reads `keys` in order and hands each entry (nil: absent or rejected) to `body` as soon as
    /// it has arrived; `body` returns false to stop. A remote tier keeps a few requests in flight
    /// (pipelined), so one entry's transfer overlaps the caller's work on the one before it.
    /// Keys after a stop, or after the tier became unreachable, are not handed over.
    func stream(_ keys: [CacheKey], _ body: (CacheKey, EncodedKV?) -> Bool)
}

extension KVTier {
    public func fetch(_ keys: [CacheKey]) -> [CacheKey: EncodedKV] {
        var out: [CacheKey: EncodedKV] = [:]
        for k in keys { if let v = get(k) { out[k] = v } }
        return out
    }
    public func present(_ keys: [CacheKey]) -> Set<CacheKey> { Set(keys.filter { contains($0) }) }
    public func fetch(_ keys: [CacheKey], probing: [CacheKey]) -> (found: [CacheKey: EncodedKV], present: Set<CacheKey>) {
        (keys.isEmpty ? [:] : fetch(keys), probing.isEmpty ? [] : present(probing))
    }
    /// One `get` per key, in order (a local tier has nothing to overlap).
    public func stream(_ keys: [CacheKey], _ body: (CacheKey, EncodedKV?) -> Bool) {
        for k in keys where !body(k, get(k)) { return }
    }
}

extension TierStats {
    /// The fields every local tier has.
    init(name: String, bytes: Int, entries: Int, capacityBytes: Int, hits: Int, evictions: Int, oversizeRejected: Int) {
        self.init(name: name)
        self.bytes = bytes
        self.entries = entries
        self.capacityBytes = capacityBytes
        self.hits = hits
        self.evictions = evictions
        self.oversizeRejected = oversizeRejected
    }
}

extension RAMTier: KVTier {
    public var name: String { "ram" }
    public var isLocal: Bool { true }
    public var tierStats: TierStats {
        let s = stats
        return TierStats(name: name, bytes: s.bytes, entries: s.entries, capacityBytes: s.capacityBytes,
                         hits: s.hits, evictions: s.evictions, oversizeRejected: s.oversizeRejected)
    }
}

extension DiskTier: KVTier {
    public var name: String { "disk" }
    public var isLocal: Bool { true }
    public var tierStats: TierStats {
        let s = stats
        var t = TierStats(name: name, bytes: s.bytes, entries: s.entries, capacityBytes: s.capacityBytes,
                          hits: s.hits, evictions: s.evictions, oversizeRejected: s.oversizeRejected)
        t.rejectedEntries = s.rejectedEntries
        t.writeErrors = s.writeErrors
        return t
    }
}

/// The disk tier's checksummed, versioned entry format (DiskFormat.swift) as bytes, for tiers
/// that keep entries elsewhere (a remote server). Same checks as a disk file.
public enum EntryCodec {
    /// Header (128 bytes) followed by the body.
    public static func encode(key: CacheKey, fingerprint: ModelFingerprint, value: EncodedKV) -> [UInt8] {
        DiskFormat.header(key: key, fingerprint: fingerprint, value: value) + value.body
    }

    /// The entry in `bytes` if every check passes: format, key, model, shape (when given), size, checksum.
    public static func decode(_ bytes: [UInt8], key: CacheKey, fingerprint: ModelFingerprint,
                              shape: (layers: Int, kvDim: Int)?) -> Result<EncodedKV, DiskRejection> {
        guard bytes.count >= DiskFormat.headerSize else { return .failure(.truncated) }
        let header = Array(bytes[0..<DiskFormat.headerSize])
        switch DiskFormat.parse(header, fileSize: bytes.count, expectedKey: key, fingerprint: fingerprint, shape: shape) {
        case let .failure(r):
            return .failure(r)
        case let .success(h):
            let body = Array(bytes[DiskFormat.headerSize...])
            guard body.count == h.bodyLength else { return .failure(.truncated) }
            guard DiskFormat.checksum(header: header, body: body) == h.checksum else { return .failure(.checksumMismatch) }
            guard let v = EncodedKV(encoding: h.encoding, layers: h.layers, tokenCount: h.tokenCount,
                                    kvDim: h.kvDim, body: body) else { return .failure(.badHeader) }
            return .success(v)
        }
    }

    /// Bytes of the header in front of the body.
    public static let headerSize = DiskFormat.headerSize
}
