import Foundation
import KVCache
import XCTest

/// Two threads hammering the same store: no crash, and accounting that adds up afterwards.
final class ConcurrencyTests: TempDirTestCase {
    /// Runs `body(thread)` on two threads at once and waits for both.
    func onTwoThreads(_ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for t in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                body(t)
                group.leave()
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 120), .success, "threads did not finish")
    }

    final class Counter: @unchecked Sendable {
        let lock = NSLock()
        var gets = 0
        var hits = 0
        func add(gets g: Int, hits h: Int) {
            lock.lock()
            gets += g
            hits += h
            lock.unlock()
        }
    }

    func testRAMTierUnderTwoThreads() {
        let ram = RAMTier(capacityBytes: 10 * 52)
        let values = (0..<3).map { Toy.encoded(tokens: $0 + 1, seed: UInt64($0)) }  // 52, 104, 156 bytes
        let counter = Counter()
        onTwoThreads { t in
            var rng = SplitMix(seed: UInt64(t))
            var gets = 0, hits = 0
            for _ in 0..<4000 {
                let id = Int(rng.next() % 24)
                if rng.next() % 2 == 0 {
                    ram.put(Toy.key(id), values[id % 3])
                } else {
                    gets += 1
                    if let v = ram.get(Toy.key(id)) {
                        hits += 1
                        XCTAssertEqual(v.tokenCount, id % 3 + 1, "value belongs to its key")
                    }
                }
                _ = ram.stats  // a UI thread reading stats meanwhile
            }
            counter.add(gets: gets, hits: hits)
        }
        let s = ram.stats
        XCTAssertEqual(s.hits, counter.hits)
        XCTAssertEqual(s.misses, counter.gets - counter.hits)
        let keys = ram.keysOldestFirst
        XCTAssertEqual(s.entries, keys.count)
        XCTAssertEqual(s.bytes, keys.map { ram.get($0)!.byteCount }.reduce(0, +))
        XCTAssertLessThanOrEqual(s.bytes, 10 * 52)
        XCTAssertGreaterThan(s.evictions, 0)
    }

    func testTieredStoreWithDiskUnderTwoThreads() throws {
        let dir = tempRoot + "/kv"
        let store = try TieredStore(.init(fingerprint: Toy.fingerprint, layers: 2, kvDim: 8,
                                          ramCapacityBytes: 6 * 52, diskDirectory: dir, diskCapacityBytes: 12 * 180))
        let counter = Counter()
        onTwoThreads { t in
            var rng = SplitMix(seed: 100 + UInt64(t))
            var gets = 0, hits = 0
            for _ in 0..<600 {
                let id = Int(rng.next() % 20)
                switch rng.next() % 4 {
                case 0:
                    store.put(Toy.key(id), block: Toy.block(tokens: 1, seed: UInt64(id)))
                case 1:
                    _ = store.contains(Toy.key(id))
                    _ = store.stats
                default:
                    gets += 1
                    if let b = store.getBlock(Toy.key(id)) {
                        hits += 1
                        XCTAssertEqual(b, EncodedKV(Toy.block(tokens: 1, seed: UInt64(id)), encoding: .int8).decode())
                    }
                }
            }
            counter.add(gets: gets, hits: hits)
        }
        let s = store.stats
        XCTAssertEqual(s.hits, counter.hits)
        XCTAssertEqual(s.misses, counter.gets - counter.hits)
        XCTAssertEqual(s.rejectedEntries, 0)
        XCTAssertEqual(s.diskWriteErrors, 0)
        XCTAssertLessThanOrEqual(s.ramBytes, 6 * 52)
        XCTAssertLessThanOrEqual(s.diskBytes, 12 * 180)
        XCTAssertEqual(s.ramBytes, s.ramEntries * 52)
        // The disk index agrees with the directory: same files, same bytes, no temp files left.
        let names = files(in: dir)
        XCTAssertEqual(names.count, s.diskEntries)
        XCTAssertEqual(Set(names), Set(store.disk!.keysOldestFirst.map { ($0.kind == .segment ? "s-" : "p-") + $0.digest.hex + ".kv" }))
        XCTAssertEqual(names.map { fileSize(dir + "/" + $0) }.reduce(0, +), s.diskBytes)
        // And a restart sees exactly that.
        let reopened = try DiskTier(directory: dir, fingerprint: Toy.fingerprint, capacityBytes: 12 * 180)
        XCTAssertEqual(reopened.stats.entries, s.diskEntries)
        XCTAssertEqual(reopened.stats.bytes, s.diskBytes)
        XCTAssertEqual(reopened.stats.rejectedEntries, 0)
    }
}
