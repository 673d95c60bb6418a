import Foundation

/// A link you can dial: a token bucket of bytes per second plus a fixed latency per round trip,
/// applied in the client, as LMCache's mock connector does. With it, the point where loading
/// stored KV and recomputing it cost the same can be shown on any machine.
///
/// Callers that share a throttle share its bandwidth (one link), in the order they arrive.
public final class Throttle: @unchecked Sendable {
    /// Bytes per second; nil = unlimited.
    public let bytesPerSecond: Double?
    /// Seconds added to every round trip.
    public let latency: Double
    /// The bucket holds at most this many bytes' worth of credit (a short burst), so an idle link
    /// does not save up enough to hide a later transfer.
    public let burstBytes: Double

    private let lock = NSLock()
    /// Time (monotonic seconds) at which the link is free again.
    private var busyUntil = 0.0
    private var waited = 0.0

    public init(bytesPerSecond: Double?, latency: Double = 0, burstBytes: Double = 65536) {
        self.bytesPerSecond = bytesPerSecond.flatMap { $0 > 0 ? $0 : nil }
        self.latency = max(0, latency)
        self.burstBytes = max(0, burstBytes)
    }

    /// Whether this throttle slows anything down.
    public var isActive: Bool { bytesPerSecond != nil || latency > 0 }

    /// Total seconds callers were held back.
    public var waitedSeconds: Double { lock.lock(); defer { lock.unlock() }; return waited }

    /// The wait one transfer of `bytes` over `roundTrips` round trips costs, given the link is
    /// free at `now` and was busy until `busyUntil` (a pure function: the tests use it).
    public static func finish(now: Double, busyUntil: Double, bytes: Int, roundTrips: Int,
                              bytesPerSecond: Double?, latency: Double, burstBytes: Double) -> Double {
        let transfer = bytesPerSecond.map { Double(bytes) / $0 } ?? 0
        let credit = bytesPerSecond.map { burstBytes / $0 } ?? 0
        // The link starts this transfer when it is free; idle time earns at most `credit`.
        let start = max(now - credit, busyUntil)
        return max(now, start + transfer) + Double(roundTrips) * latency
    }

    /// Blocks until a transfer of `bytes` in `roundTrips` round trips would have completed on the
    /// link (the real transfer already happened, faster). Returns the seconds slept.
    @discardableResult
    public func pass(bytes: Int, roundTrips: Int = 1) -> Double {
        guard isActive else { return 0 }
        let now = Self.now()
        lock.lock()
        let end = Self.finish(now: now, busyUntil: busyUntil, bytes: bytes, roundTrips: roundTrips,
                              bytesPerSecond: bytesPerSecond, latency: latency, burstBytes: burstBytes)
        busyUntil = end - Double(roundTrips) * latency
        let wait = end - now
        waited += wait
        lock.unlock()
        if wait > 0 { Thread.sleep(forTimeInterval: wait) }
        return wait
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}

/// A tier behind a throttled link: reads pay the throttle (bytes and round trips); writes,
/// look-ups in a local index and maintenance pass through. Everything else is the tier's own.
public final class ThrottledTier: KVTier, @unchecked Sendable {
    public let base: any KVTier
    public let throttle: Throttle

    public init(_ base: any KVTier, throttle: Throttle) {
        self.base = base
        self.throttle = throttle
    }

    public var name: String { base.name }
    public var isLocal: Bool { base.isLocal }
    public func contains(_ key: some CacheKeyConvertible) -> Bool {
        let found = base.contains(key)
        // A tier that is not local answers `contains` over the network.
        if !base.isLocal { throttle.pass(bytes: 0) }
        return found
    }
    public func get(_ key: some CacheKeyConvertible) -> EncodedKV? {
        let v = base.get(key)
        throttle.pass(bytes: v?.byteCount ?? 0, roundTrips: base.isLocal ? 0 : 1)
        return v
    }
    @discardableResult public func put(_ key: some CacheKeyConvertible, _ value: EncodedKV) -> PutResult { base.put(key, value) }
    @discardableResult public func remove(_ key: some CacheKeyConvertible) -> Bool { base.remove(key) }
    public func removeAll() { base.removeAll() }
    public func resetCounters() { base.resetCounters() }
    public var tierStats: TierStats { base.tierStats }
    public func children(of parent: Digest128) -> [(key: CacheKey, tokenCount: Int)] { base.children(of: parent) }
    public func fetch(_ keys: [CacheKey]) -> [CacheKey: EncodedKV] {
        let got = base.fetch(keys)
        throttle.pass(bytes: got.values.reduce(0) { $0 + $1.byteCount }, roundTrips: base.isLocal ? 0 : 1)
        return got
    }
    public func fetch(_ keys: [CacheKey], probing: [CacheKey]) -> (found: [CacheKey: EncodedKV], present: Set<CacheKey>) {
        let got = base.fetch(keys, probing: probing)
        throttle.pass(bytes: got.found.values.reduce(0) { $0 + $1.byteCount }, roundTrips: base.isLocal ? 0 : 1)
        return got
    }
    /// Each entry pays its bytes as it arrives; the stream pays one round trip (its requests are
    /// pipelined, so the link's latency is paid once, before the first entry).
    public func stream(_ keys: [CacheKey], _ body: (CacheKey, EncodedKV?) -> Bool) {
        var first = true
        base.stream(keys) { k, v in
            throttle.pass(bytes: v?.byteCount ?? 0, roundTrips: base.isLocal || !first ? 0 : 1)
            first = false
            return body(k, v)
        }
    }
    public func present(_ keys: [CacheKey]) -> Set<CacheKey> {
        let got = base.present(keys)
        if !base.isLocal { throttle.pass(bytes: 0) }
        return got
    }
}
