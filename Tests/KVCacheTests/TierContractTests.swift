import Foundation
import KVCache
import TestSupport
import XCTest

/// The `KVTier` contract over every local tier (the remote tier runs it in RedisTierTests), and
/// the store over a list of tiers.
final class TierContractTests: XCTestCase {
    func testRAMTierContract() {
        checkTierContract(RAMTier(capacityBytes: 1 << 20))
    }

    func testDiskTierContract() throws {
        let dir = NSTemporaryDirectory() + "kvduel-tiercontract-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        checkTierContract(try DiskTier(directory: dir, fingerprint: Toy.fingerprint, capacityBytes: 1 << 20, shape: (2, 8)))
    }

    func testThrottledTierContract() {
        checkTierContract(ThrottledTier(RAMTier(capacityBytes: 1 << 20), throttle: Throttle(bytesPerSecond: 1e9)))
    }

    /// A throttled link pays one round trip for a whole stream (its requests are pipelined), and
    /// one per `get`.
    func testStreamOverAThrottledLinkPaysOneRoundTrip() {
        let far = FarTier()
        for i in 1...3 { _ = far.put(Toy.key(i), Toy.encoded(tokens: 2, seed: UInt64(i))) }
        let streamed = Throttle(bytesPerSecond: nil, latency: 0.03)
        var got = 0
        ThrottledTier(far, throttle: streamed).stream((1...3).map(Toy.key)) { _, v in got += v == nil ? 0 : 1; return true }
        XCTAssertEqual(got, 3)
        XCTAssertEqual(streamed.waitedSeconds, 0.03, accuracy: 0.02, "one round trip for the stream")
        let oneByOne = Throttle(bytesPerSecond: nil, latency: 0.03)
        let t = ThrottledTier(far, throttle: oneByOne)
        for i in 1...3 { _ = t.get(Toy.key(i)) }
        XCTAssertGreaterThan(oneByOne.waitedSeconds, 0.08, "three gets, three round trips")
    }

    /// `TieredStore.stream` answers each key from the fastest tier that holds it, in order; runs of
    /// keys a tier that is not local holds (found by `probe`) are one `stream` of that tier; hits
    /// are counted per tier and promoted into RAM; a stop ends it.
    func testStoreStreamsRunsOfRemoteKeysInOrder() throws {
        let far = FarTier()
        let store = try TieredStore(.init(fingerprint: Toy.fingerprint, layers: 2, kvDim: 8, ramCapacityBytes: 1 << 20),
                                    lowerTiers: [far])
        for i in 1...5 { store.put(Toy.key(i), encoded: Toy.encoded(tokens: 3, seed: UInt64(i))) }
        store.ram.removeAll()
        store.ram.put(Toy.key(3), Toy.encoded(tokens: 3, seed: 3))
        store.resetCounters()
        XCTAssertEqual(store.probe((1...6).map(Toy.key)), 4, "keys 1, 2, 4, 5 are far; 3 is local; 6 is nowhere")
        var seen: [(Int, Int?)] = []
        store.stream([1, 2, 3, 4, 5, 6].map(Toy.key)) { i, got in
            seen.append((i, got?.tier))
            if let got { XCTAssertEqual(got.value, Toy.encoded(tokens: 3, seed: UInt64(i + 1))) }
            return true
        }
        XCTAssertEqual(seen.map(\.0), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(seen.map(\.1), [1, 1, 0, 1, 1, nil])
        XCTAssertEqual(far.streams, 2, "keys 1–2 and 4–5: one stream each")
        XCTAssertEqual(far.gets, 0)
        let s = store.stats
        XCTAssertEqual(s[tier: "far"]?.hits, 4)
        XCTAssertEqual(s[tier: "ram"]?.hits, 1)
        XCTAssertEqual(s.misses, 1)
        XCTAssertEqual(store.location(of: Toy.key(4)), .ram, "a streamed hit is promoted into RAM")

        store.ram.removeAll()
        store.probe([1, 2].map(Toy.key))
        var calls = 0
        store.stream([1, 2].map(Toy.key)) { _, _ in calls += 1; return false }
        XCTAssertEqual(calls, 1, "a stop ends the stream")
        XCTAssertTrue(store.ram.contains(Toy.key(1)))
        XCTAssertFalse(store.ram.contains(Toy.key(2)), "key 2 was not read: not in RAM")
    }

    /// A non-local tier is read only through `prefetch`, in one batch; its hits are its own,
    /// promoted into RAM; `clearPrefetched` drops what was not taken.
    func testStoreReadsNonLocalTierOnlyThroughPrefetch() throws {
        let far = FarTier()
        let store = try TieredStore(.init(fingerprint: Toy.fingerprint, layers: 2, kvDim: 8, ramCapacityBytes: 1 << 20),
                                    lowerTiers: [far])
        XCTAssertEqual(store.tiers.map(\.name), ["ram", "far"])
        store.put(Toy.key(1), encoded: Toy.encoded(tokens: 4, seed: 1))
        XCTAssertEqual(far.puts, 1, "write-through to the lower tier")
        store.ram.removeAll()
        XCTAssertFalse(store.contains(Toy.key(1)), "not local, not prefetched: unknown")
        XCTAssertNil(store.get(Toy.key(1)))
        XCTAssertEqual(far.gets, 0, "get never asks a non-local tier")

        XCTAssertEqual(store.prefetch([Toy.key(1), Toy.key(2)]), 1)
        XCTAssertEqual(far.fetches, 1, "one batch")
        XCTAssertEqual(store.location(of: Toy.key(1)), StoreTier("far"))
        let hit = try XCTUnwrap(store.lookup(Toy.key(1)))
        XCTAssertEqual(hit.tier, 1)
        XCTAssertEqual(hit.value, Toy.encoded(tokens: 4, seed: 1))
        XCTAssertEqual(store.location(of: Toy.key(1)), .ram, "promoted into RAM")
        let s = store.stats
        XCTAssertEqual(s[tier: "far"]?.hits, 1)
        XCTAssertEqual(s[tier: "ram"]?.hits, 0)
        XCTAssertEqual(s.misses, 1)

        store.ram.removeAll()
        store.prefetch([Toy.key(1)])
        store.clearPrefetched(keep: false)
        XCTAssertFalse(store.contains(Toy.key(1)), "dropped")
        store.prefetch([Toy.key(1)])
        store.clearPrefetched()
        XCTAssertEqual(store.location(of: Toy.key(1)), .ram, "fetched but not taken: kept in RAM")
        store.ram.removeAll()
        // Keys held locally are not asked for.
        store.put(Toy.key(3), encoded: Toy.encoded(tokens: 2, seed: 3))
        store.prefetch([Toy.key(3)])
        XCTAssertEqual(far.fetches, 3, "the last prefetch had nothing to ask")
        XCTAssertEqual(far.fetched, 4, "keys 1 and 2, then key 1 twice; never key 3")
    }
}

/// A stand-in for a remote tier: a dictionary that says it is not local and counts calls.
final class FarTier: KVTier, @unchecked Sendable {
    private let lock = NSLock()
    private var map: [CacheKey: EncodedKV] = [:]
    private(set) var puts = 0, gets = 0, fetches = 0, fetched = 0, streams = 0
    var name: String { "far" }
    var isLocal: Bool { false }
    func contains(_ key: some CacheKeyConvertible) -> Bool { lock.lock(); defer { lock.unlock() }; return map[key.cacheKey] != nil }
    func get(_ key: some CacheKeyConvertible) -> EncodedKV? { lock.lock(); defer { lock.unlock() }; gets += 1; return map[key.cacheKey] }
    func put(_ key: some CacheKeyConvertible, _ value: EncodedKV) -> PutResult {
        lock.lock(); defer { lock.unlock() }; puts += 1; map[key.cacheKey] = value; return .stored(evicted: [])
    }
    func remove(_ key: some CacheKeyConvertible) -> Bool { lock.lock(); defer { lock.unlock() }; return map.removeValue(forKey: key.cacheKey) != nil }
    func removeAll() { lock.lock(); map = [:]; lock.unlock() }
    func resetCounters() {}
    var tierStats: TierStats { TierStats(name: name) }
    func children(of parent: Digest128) -> [(key: CacheKey, tokenCount: Int)] { [] }
    func stream(_ keys: [CacheKey], _ body: (CacheKey, EncodedKV?) -> Bool) {
        lock.lock()
        streams += 1
        let values = keys.map { map[$0] }
        lock.unlock()
        for (k, v) in zip(keys, values) where !body(k, v) { return }
    }
    func fetch(_ keys: [CacheKey]) -> [CacheKey: EncodedKV] {
        lock.lock(); defer { lock.unlock() }
        fetches += 1
        fetched += keys.count
        var out: [CacheKey: EncodedKV] = [:]
        for k in keys { if let v = map[k] { out[k] = v } }
        return out
    }
}
