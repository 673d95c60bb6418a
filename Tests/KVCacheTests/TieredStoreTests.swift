import Foundation
import KVCache
import XCTest

final class TieredStoreTests: TempDirTestCase {
    var dir: String { tempRoot + "/kv" }

    func makeStore(ram: Int = 1 << 20, disk: Int? = 1 << 20, chunkSize: Int = 4,
                   encoding: KVEncoding = .int8) throws -> TieredStore {
        try TieredStore(.init(fingerprint: Toy.fingerprint, layers: Toy.layers, kvDim: Toy.kvDim, encoding: encoding,
                              ramCapacityBytes: ram, diskDirectory: disk == nil ? nil : dir,
                              diskCapacityBytes: disk ?? 0, chunkSize: chunkSize))
    }

    func testPutWritesThroughToBothTiers() throws {
        let store = try makeStore()
        let b = Toy.block(tokens: 2, seed: 1)
        XCTAssertTrue(store.put(Toy.key(1), block: b))
        XCTAssertTrue(store.ram.contains(Toy.key(1)))
        XCTAssertTrue(store.disk!.contains(Toy.key(1)))
        XCTAssertEqual(store.location(of: Toy.key(1)), .ram)
        let s = store.stats
        XCTAssertEqual(s.ramBytes, 104)
        XCTAssertEqual(s.diskBytes, 128 + 104)
        XCTAssertEqual(s.ramEntries, 1)
        XCTAssertEqual(s.diskEntries, 1)
        XCTAssertEqual(s.bytesPerToken, 52)
        XCTAssertEqual(s.encoding, .int8)
        XCTAssertEqual(store.get(Toy.key(1)), EncodedKV(b, encoding: .int8))
        XCTAssertEqual(store.getBlock(Toy.key(1)), EncodedKV(b, encoding: .int8).decode())
        XCTAssertEqual(store.stats.ramHits, 2)
    }

    func testDiskHitIsPromotedToRAM() throws {
        // RAM fits one one-token entry; disk fits everything.
        let store = try makeStore(ram: 52)
        let (a, b) = (Toy.key(1), Toy.key(2))
        store.put(a, block: Toy.block(tokens: 1, seed: 1))
        store.put(b, block: Toy.block(tokens: 1, seed: 2))
        XCTAssertEqual(store.location(of: a), .disk)
        XCTAssertEqual(store.location(of: b), .ram)
        XCTAssertEqual(store.stats.ramEvictions, 1)

        XCTAssertEqual(store.get(a), EncodedKV(Toy.block(tokens: 1, seed: 1), encoding: .int8))
        XCTAssertEqual(store.location(of: a), .ram)
        XCTAssertEqual(store.location(of: b), .disk, "promotion evicted b from RAM; it stays on disk")
        XCTAssertEqual(store.get(a), EncodedKV(Toy.block(tokens: 1, seed: 1), encoding: .int8))
        XCTAssertNil(store.get(Toy.key(3)))
        let s = store.stats
        XCTAssertEqual(s.diskHits, 1)
        XCTAssertEqual(s.ramHits, 1)
        XCTAssertEqual(s.hits, 2)
        XCTAssertEqual(s.misses, 1)
        XCTAssertEqual(s.ramEvictions, 2)
        XCTAssertEqual(s.diskEvictions, 0)
        XCTAssertEqual(s.evictions, 2)
        XCTAssertGreaterThan(s.loadSeconds, 0)
    }

    func testWarmStartAfterRestart() throws {
        let blocks = (0..<3).map { Toy.block(tokens: 2, seed: UInt64($0), firstPosition: Int32(10 * $0)) }
        do {
            let store = try makeStore()
            for (i, b) in blocks.enumerated() { store.put(Toy.key(i), block: b) }
        }
        let store = try makeStore()
        XCTAssertEqual(store.stats.ramEntries, 0)
        XCTAssertEqual(store.stats.diskEntries, 3)
        for (i, b) in blocks.enumerated() {
            XCTAssertTrue(store.contains(Toy.key(i)))
            XCTAssertEqual(store.getBlock(Toy.key(i)), EncodedKV(b, encoding: .int8).decode())
            XCTAssertEqual(store.getBlock(Toy.key(i))?.positions, b.positions)
        }
        XCTAssertEqual(store.stats.diskHits, 3)
        XCTAssertEqual(store.stats.ramHits, 3)
        XCTAssertEqual(store.stats.ramEntries, 3)
    }

    func testContainsIsFreeOfSideEffects() throws {
        let store = try makeStore(ram: 104)
        let (a, b, c) = (Toy.key(1), Toy.key(2), Toy.key(3))
        store.put(a, block: Toy.block(tokens: 1, seed: 1))
        store.put(b, block: Toy.block(tokens: 1, seed: 2))
        XCTAssertTrue(store.contains(a))
        XCTAssertFalse(store.contains(c))
        store.put(c, block: Toy.block(tokens: 1, seed: 3))
        XCTAssertEqual(store.location(of: a), .disk, "contains did not refresh a")
        let s = store.stats
        XCTAssertEqual(s.hits + s.misses, 0)
        XCTAssertEqual(s.lookupSeconds, 0)
        XCTAssertEqual(s.loadSeconds, 0)
    }

    func testClearIsColdForRAMAndOptionallyDisk() throws {
        let store = try makeStore()
        store.put(Toy.key(1), block: Toy.block(tokens: 1, seed: 1))
        _ = store.get(Toy.key(1))
        store.clear()
        var s = store.stats
        XCTAssertEqual(s.ramEntries, 0)
        XCTAssertEqual(s.ramBytes, 0)
        XCTAssertEqual(s.diskEntries, 1)
        XCTAssertEqual(s.hits, 0, "counters reset")
        XCTAssertEqual(store.location(of: Toy.key(1)), .disk)
        XCTAssertNotNil(store.get(Toy.key(1)))
        XCTAssertEqual(store.stats.diskHits, 1)

        store.clear(wipeDisk: true)
        s = store.stats
        XCTAssertEqual(s.diskEntries, 0)
        XCTAssertEqual(s.diskBytes, 0)
        XCTAssertFalse(store.contains(Toy.key(1)))
        XCTAssertNil(store.get(Toy.key(1)))
        XCTAssertEqual(files(in: dir), [])
        XCTAssertEqual(try makeStore().stats.diskEntries, 0)
    }

    func testRAMOnlyStore() throws {
        let store = try makeStore(disk: nil)
        XCTAssertNil(store.disk)
        store.put(Toy.key(1), block: Toy.block(tokens: 1, seed: 1))
        XCTAssertEqual(store.location(of: Toy.key(1)), .ram)
        XCTAssertEqual(store.stats.diskBytes, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir))
    }

    func testRejectedPuts() throws {
        let store = try makeStore(ram: 100, disk: 300)
        XCTAssertFalse(store.put(Toy.key(1), block: Toy.block(tokens: 1, seed: 1, kvDim: 4)), "other kvDim")
        XCTAssertFalse(store.put(Toy.key(1), block: Toy.block(tokens: 1, seed: 1, layers: 3)), "other layers")
        var broken = Toy.block(tokens: 2, seed: 1)
        broken.k.removeLast()
        XCTAssertFalse(store.put(Toy.key(1), block: broken), "malformed")
        // 3 tokens: 156 bytes > 100 (RAM), file 284 ≤ 300 (disk): stored on disk only.
        XCTAssertTrue(store.put(Toy.key(2), block: Toy.block(tokens: 3, seed: 2)))
        XCTAssertEqual(store.location(of: Toy.key(2)), .disk)
        // 4 tokens: too large for both.
        XCTAssertFalse(store.put(Toy.key(3), block: Toy.block(tokens: 4, seed: 3)))
        let s = store.stats
        XCTAssertEqual(s.oversizeRejected, 3, "RAM twice, disk once")
        XCTAssertEqual(s.ramEntries, 0)
        XCTAssertEqual(s.diskEntries, 1)
        // A disk hit too large for RAM is still returned (and not counted as a rejected promotion).
        XCTAssertNotNil(store.get(Toy.key(2)))
        XCTAssertEqual(store.stats.diskHits, 1)
        XCTAssertEqual(store.stats.oversizeRejected, 3)
    }

    func testStoresTheConfiguredEncoding() throws {
        for enc in KVEncoding.allCases {
            let store = try TieredStore(.init(fingerprint: Toy.fingerprint, layers: 2, kvDim: 8, encoding: enc,
                                              ramCapacityBytes: 1 << 20))
            let b = Toy.block(tokens: 2, seed: 5)
            store.put(Toy.key(1), block: b)
            XCTAssertEqual(store.get(Toy.key(1))?.encoding, enc)
            XCTAssertEqual(store.stats.ramBytes, 2 * enc.bytesPerToken(layers: 2, kvDim: 8))
            XCTAssertEqual(store.stats.bytesPerToken, enc.bytesPerToken(layers: 2, kvDim: 8))
        }
    }

    /// Load time of one 256-token chunk at the real model's shape (30 layers, kvDim 192, int8):
    /// `get` from disk (page cache: read + checksum), `get` from RAM, and the decode of every layer
    /// into a preallocated f32 cache. Best of 5; printed, not asserted.
    func testLoadTimeReport() throws {
        #if DEBUG
        let (build, tokens) = ("debug", 16)  // only checks the code path; numbers are meaningless
        #else
        let (build, tokens) = ("release", 256)
        #endif
        let layers = 30, dim = 192
        let store = try TieredStore(.init(fingerprint: Toy.fingerprint, layers: layers, kvDim: dim,
                                          ramCapacityBytes: 64 << 20, diskDirectory: dir, diskCapacityBytes: 64 << 20))
        let b = Toy.block(tokens: tokens, seed: 1, layers: layers, kvDim: dim)
        let key = store.prefixKeys(for: (0..<Int32(tokens)).map { $0 })[0]
        XCTAssertTrue(store.put(key, block: b))
        let n = tokens * dim
        var cache = [Float](repeating: 0, count: 2 * layers * n)
        var best = (disk: Double.infinity, ram: Double.infinity, decode: Double.infinity)
        for _ in 0..<5 {
            store.ram.removeAll()
            let t0 = DispatchTime.now().uptimeNanoseconds
            let fromDisk = store.get(key)
            let t1 = DispatchTime.now().uptimeNanoseconds
            let fromRAM = store.get(key)
            let t2 = DispatchTime.now().uptimeNanoseconds
            cache.withUnsafeMutableBufferPointer { p in
                for l in 0..<layers {
                    fromRAM?.decode(.k, layer: l, into: p.baseAddress! + l * n)
                    fromRAM?.decode(.v, layer: l, into: p.baseAddress! + (layers + l) * n)
                }
            }
            let t3 = DispatchTime.now().uptimeNanoseconds
            XCTAssertNotNil(fromDisk)
            XCTAssertEqual(fromDisk, fromRAM)
            best = (min(best.disk, Double(t1 - t0)), min(best.ram, Double(t2 - t1)), min(best.decode, Double(t3 - t2)))
        }
        let ref = EncodedKV(b, encoding: .int8).decode()
        XCTAssertEqual(Array(cache[0..<(layers * n)]), ref.k)
        XCTAssertEqual(Array(cache[(layers * n)...]), ref.v)
        XCTAssertEqual(store.stats.diskHits, 5)
        XCTAssertEqual(store.stats.ramHits, 5)
        print(String(format: "[kvcache %@] %d-token int8 chunk (%d B): get from disk %.2f ms, from RAM %.3f ms, decode into cache %.2f ms",
                     build, tokens, store.stats.ramBytes, best.disk / 1e6, best.ram / 1e6, best.decode / 1e6))
    }

    // MARK: prefix matching

    let prompt: [Int32] = Array(100..<110)  // chunk size 4: [0,4) [4,8) [8,10)

    func storeChain(_ store: TieredStore, _ tokens: [Int32]) {
        for key in store.prefixKeys(for: tokens) {
            XCTAssertTrue(store.put(key, block: Toy.block(tokens: key.tokenCount, seed: UInt64(key.index),
                                                          firstPosition: Int32(key.tokenRange.lowerBound))))
        }
    }

    func testMatchPrefixExactAndMiss() throws {
        let store = try makeStore()
        XCTAssertEqual(store.matchPrefix(tokens: prompt).tokenCount, 0)
        storeChain(store, prompt)
        let m = store.matchPrefix(tokens: prompt)
        XCTAssertEqual(m.tokenCount, 10)
        XCTAssertEqual(m.keys, m.chain)
        XCTAssertEqual(m.keys.map(\.tokenRange), [0..<4, 4..<8, 8..<10])

        var other = prompt
        other[0] = 1
        XCTAssertEqual(store.matchPrefix(tokens: other).tokenCount, 0)
        var late = prompt
        late[6] = 1
        let lm = store.matchPrefix(tokens: late)
        XCTAssertEqual(lm.tokenCount, 4)
        XCTAssertEqual(lm.keys, [lm.chain[0]])
        XCTAssertGreaterThan(store.stats.lookupSeconds, 0)
        XCTAssertEqual(store.stats.hits + store.stats.misses, 0, "matching loads nothing")
    }

    func testMatchPrefixFindsAStoredPartialTail() throws {
        let store = try makeStore()
        storeChain(store, prompt)  // tail chunk [8,10) stored with 2 tokens
        // A longer prompt: its third chunk [8,12) is not stored, but its first 2 tokens are.
        let longer = prompt + [110, 111, 112]
        let m = store.matchPrefix(tokens: longer)
        XCTAssertEqual(m.chain.map(\.tokenRange), [0..<4, 4..<8, 8..<12, 12..<13])
        XCTAssertEqual(m.tokenCount, 10)
        guard m.keys.count == 3 else { return XCTFail("matched \(m.keys)") }
        XCTAssertEqual(m.keys[2].tokenRange, 8..<10)
        XCTAssertEqual(m.keys[2].cacheKey, store.prefixKeys(for: prompt)[2].cacheKey)
        XCTAssertEqual(store.getBlock(m.keys[2])?.positions, [8, 9])

        // The longest stored partial wins; a partial whose tokens differ does not match.
        storeChain(store, Array(longer[0..<11]))  // adds a 3-token tail [8,11)
        XCTAssertEqual(store.matchPrefix(tokens: longer).tokenCount, 11)
        var diverging = longer
        diverging[9] = 0  // inside both stored tails
        XCTAssertEqual(store.matchPrefix(tokens: diverging).tokenCount, 8)
    }

    func testMatchPrefixFindsPartialTailsAfterRestart() throws {
        do { storeChain(try makeStore(), prompt) }
        let store = try makeStore()
        XCTAssertEqual(store.matchPrefix(tokens: prompt + [1, 2]).tokenCount, 10)
    }

    func testPrefixKeysOfStoreMatchFreeFunction() throws {
        let store = try makeStore(chunkSize: 3)
        XCTAssertEqual(store.prefixKeys(for: prompt), PrefixKeys.chain(tokens: prompt, fingerprint: Toy.fingerprint, chunkSize: 3))
        XCTAssertEqual(store.root, PrefixKeys.root(Toy.fingerprint))
        XCTAssertEqual(store.segmentKey(for: [1, 2]), SegmentKey(fingerprint: Toy.fingerprint, tokens: [1, 2]))
    }
}
