import KVCache
import XCTest

final class RAMTierTests: XCTestCase {
    /// One toy token in int8 is 52 bytes; 160 bytes fit three one-token entries, not four.
    let entry = 52
    func one(_ seed: UInt64) -> EncodedKV { Toy.encoded(tokens: 1, seed: seed) }

    func testLRUEvictsLeastRecentlyUsed() {
        let ram = RAMTier(capacityBytes: 160)
        let (a, b, c, d, e) = (Toy.key(1), Toy.key(2), Toy.key(3), Toy.key(4), Toy.key(5))
        XCTAssertEqual(ram.put(a, one(1)), .stored(evicted: []))
        XCTAssertEqual(ram.put(b, one(2)), .stored(evicted: []))
        XCTAssertEqual(ram.put(c, one(3)), .stored(evicted: []))
        XCTAssertEqual(ram.stats.bytes, 3 * entry)
        XCTAssertEqual(ram.keysOldestFirst, [a, b, c])

        XCTAssertEqual(ram.get(a), one(1))
        XCTAssertEqual(ram.keysOldestFirst, [b, c, a])

        XCTAssertEqual(ram.put(d, one(4)), .stored(evicted: [b]))
        XCTAssertEqual(ram.keysOldestFirst, [c, a, d])
        XCTAssertFalse(ram.contains(b))
        XCTAssertNil(ram.get(b))

        XCTAssertEqual(ram.put(e, one(5)), .stored(evicted: [c]))
        XCTAssertEqual(ram.keysOldestFirst, [a, d, e])

        let s = ram.stats
        XCTAssertEqual(s.bytes, 3 * entry)
        XCTAssertEqual(s.entries, 3)
        XCTAssertEqual(s.evictions, 2)
        XCTAssertEqual(s.hits, 1)
        XCTAssertEqual(s.misses, 1)
        XCTAssertEqual(s.capacityBytes, 160)
    }

    func testContainsDoesNotTouch() {
        let ram = RAMTier(capacityBytes: 160)
        let (a, b, c, d) = (Toy.key(1), Toy.key(2), Toy.key(3), Toy.key(4))
        for (i, k) in [a, b, c].enumerated() { ram.put(k, one(UInt64(i))) }
        XCTAssertTrue(ram.contains(a))
        XCTAssertEqual(ram.put(d, one(9)), .stored(evicted: [a]), "contains must not count as a use")
        XCTAssertEqual(ram.stats.hits + ram.stats.misses, 0)
    }

    func testOneEvictionCanFreeSeveralEntries() {
        let ram = RAMTier(capacityBytes: 160)
        let (a, b, c, d) = (Toy.key(1), Toy.key(2), Toy.key(3), Toy.key(4))
        for (i, k) in [a, b, c].enumerated() { ram.put(k, one(UInt64(i))) }
        // Two tokens (104 bytes) need two one-token entries out: 156 - 52 - 52 + 104 = 156.
        XCTAssertEqual(ram.put(d, Toy.encoded(tokens: 2, seed: 7)), .stored(evicted: [a, b]))
        XCTAssertEqual(ram.stats.bytes, entry + 2 * entry)
        XCTAssertEqual(ram.keysOldestFirst, [c, d])
        XCTAssertEqual(ram.stats.evictions, 2)
    }

    func testByteAccountingThroughOverwritesAndRemovals() {
        let ram = RAMTier(capacityBytes: 1000)
        let (a, b) = (Toy.key(1), Toy.key(2))
        ram.put(a, Toy.encoded(tokens: 3, seed: 1))                  // 156
        ram.put(b, Toy.encoded(tokens: 1, seed: 2, encoding: .f32))   // 132
        XCTAssertEqual(ram.stats.bytes, 156 + 132)
        ram.put(a, Toy.encoded(tokens: 1, seed: 3))                  // overwrite: 156 → 52
        XCTAssertEqual(ram.stats.bytes, 52 + 132)
        XCTAssertEqual(ram.stats.entries, 2)
        XCTAssertEqual(ram.get(a), Toy.encoded(tokens: 1, seed: 3), "overwrite replaces the value")
        XCTAssertEqual(ram.keysOldestFirst, [b, a])
        XCTAssertTrue(ram.remove(b))
        XCTAssertFalse(ram.remove(b))
        XCTAssertEqual(ram.stats.bytes, 52)
        ram.removeAll()
        XCTAssertEqual(ram.stats.bytes, 0)
        XCTAssertEqual(ram.stats.entries, 0)
        XCTAssertEqual(ram.keysOldestFirst, [])
        XCTAssertEqual(ram.stats.evictions, 0, "removals and overwrites are not evictions")
    }

    func testOversizeEntryRejectedAndNothingEvicted() {
        let ram = RAMTier(capacityBytes: 160)
        let a = Toy.key(1)
        ram.put(a, one(1))
        XCTAssertEqual(ram.put(Toy.key(2), Toy.encoded(tokens: 4, seed: 2)), .rejectedOversize)  // 208 > 160
        XCTAssertFalse(ram.contains(Toy.key(2)))
        XCTAssertEqual(ram.keysOldestFirst, [a])
        XCTAssertEqual(ram.stats.bytes, entry)
        XCTAssertEqual(ram.stats.oversizeRejected, 1)
        XCTAssertEqual(ram.stats.evictions, 0)
        // Exactly the capacity fits (and pushes everything else out).
        let exact = RAMTier(capacityBytes: 208)
        exact.put(a, one(1))
        XCTAssertEqual(exact.put(Toy.key(2), Toy.encoded(tokens: 4, seed: 2)), .stored(evicted: [a]))
        XCTAssertEqual(exact.stats.bytes, 208)
        // Zero capacity stores nothing.
        XCTAssertEqual(RAMTier(capacityBytes: 0).put(a, one(1)), .rejectedOversize)
    }

    func testReinsertingAfterEvictionWorks() {
        let ram = RAMTier(capacityBytes: 2 * 52)
        for round in 0..<5 {
            for id in 0..<4 { ram.put(Toy.key(id), one(UInt64(id))) }
            XCTAssertEqual(ram.keysOldestFirst, [Toy.key(2), Toy.key(3)], "round \(round)")
        }
        XCTAssertEqual(ram.stats.evictions, 2 + 4 * 4)
        XCTAssertEqual(ram.stats.bytes, 104)
    }
}
