import Foundation
import KVCache
import XCTest

final class DiskTierTests: TempDirTestCase {
    /// A one-token toy int8 entry is a 180-byte file (128-byte header + 52).
    let file1 = 180
    var dir: String { tempRoot + "/cache/kv" }

    func open(_ capacity: Int = 1 << 20, fingerprint: ModelFingerprint = Toy.fingerprint,
              shape: (layers: Int, kvDim: Int)? = (Toy.layers, Toy.kvDim)) throws -> DiskTier {
        try DiskTier(directory: dir, fingerprint: fingerprint, capacityBytes: capacity, shape: shape)
    }

    func one(_ seed: UInt64) -> EncodedKV { Toy.encoded(tokens: 1, seed: seed) }

    // MARK: round trip, permissions, temp files

    func testRoundTripAcrossRestart() throws {
        let keys = [Toy.key(1), Toy.key(2)]
        let chunk = PrefixKeys.chain(tokens: [1], fingerprint: Toy.fingerprint)[0].cacheKey   // a 1-token chunk: values[2] holds 1 token
        let values = [Toy.encoded(tokens: 3, seed: 1, encoding: .int8), Toy.encoded(tokens: 2, seed: 2, encoding: .f16),
                      Toy.encoded(tokens: 1, seed: 3, encoding: .f32)]
        do {
            let disk = try open()
            XCTAssertTrue(disk.put(keys[0], values[0]).isStored)
            XCTAssertTrue(disk.put(keys[1], values[1]).isStored)
            XCTAssertTrue(disk.put(chunk, values[2]).isStored)
            XCTAssertEqual(disk.get(keys[0]), values[0])
        }
        let disk = try open()  // a "restart": a new instance on the same directory
        let s = disk.stats
        XCTAssertEqual(s.entries, 3)
        XCTAssertEqual(s.bytes, 3 * 128 + values.map(\.byteCount).reduce(0, +))
        XCTAssertEqual(s.rejectedEntries, 0)
        XCTAssertTrue(disk.contains(keys[1]))
        XCTAssertEqual(disk.get(keys[0]), values[0])
        XCTAssertEqual(disk.get(keys[1]), values[1])
        XCTAssertEqual(disk.get(chunk), values[2])
        XCTAssertEqual(disk.get(keys[0])?.decode(), values[0].decode())
        // The parent survives the restart (it is in the header), so partial tails are found again.
        XCTAssertEqual(disk.children(of: PrefixKeys.root(Toy.fingerprint)).map(\.tokenCount), [1])
        XCTAssertNil(disk.get(Toy.key(99)))
        XCTAssertEqual(disk.stats.hits, 4)
        XCTAssertEqual(disk.stats.misses, 1)
    }

    func testPermissionsAndFileNames() throws {
        let disk = try open()
        disk.put(Toy.key(1), one(1))
        disk.put(PrefixKeys.chain(tokens: [5], fingerprint: Toy.fingerprint)[0], one(2))
        XCTAssertEqual(mode(of: dir), 0o700)
        XCTAssertEqual(mode(of: tempRoot + "/cache"), 0o700, "missing parents are created 0700 too")
        let names = files(in: dir)
        XCTAssertEqual(names.count, 2)
        XCTAssertEqual(names.filter { $0.hasPrefix("p-") }.count, 1)
        XCTAssertEqual(names.filter { $0.hasPrefix("s-") }.count, 1)
        XCTAssertTrue(names.contains("s-\(Toy.key(1).digest.hex).kv"))
        XCTAssertEqual(disk.path(for: Toy.key(1)), dir + "/s-\(Toy.key(1).digest.hex).kv")
        for n in names { XCTAssertEqual(mode(of: dir + "/" + n), 0o600, n) }
    }

    func testTrailingSlashInDirectoryIsAccepted() throws {
        let disk = try DiskTier(directory: dir + "/", fingerprint: Toy.fingerprint, capacityBytes: 1000)
        XCTAssertEqual(disk.directory, dir)
        disk.put(Toy.key(1), one(1))
        XCTAssertEqual(files(in: dir), ["s-\(Toy.key(1).digest.hex).kv"])
    }

    func testPermissionsHoldUnderAPermissiveUmask() throws {
        let old = umask(0)
        defer { umask(old) }
        let disk = try open()
        disk.put(Toy.key(1), one(1))
        XCTAssertEqual(mode(of: dir), 0o700)
        XCTAssertEqual(mode(of: disk.path(for: Toy.key(1))), 0o600)
    }

    func testWritesLeaveNoTempFiles() throws {
        let disk = try open()
        for i in 0..<20 { disk.put(Toy.key(i % 7), one(UInt64(i))) }
        let names = files(in: dir)
        XCTAssertEqual(names.count, 7)
        XCTAssertTrue(names.allSatisfy { $0.hasSuffix(".kv") && !$0.hasPrefix(".") }, "\(names)")
        XCTAssertEqual(disk.stats.bytes, 7 * file1)
        XCTAssertEqual(names.map { fileSize(dir + "/" + $0) }.reduce(0, +), 7 * file1)
    }

    func testStaleTempFilesRemovedOnOpenFreshOnesAndOtherFilesKept() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        writeBytes([1, 2, 3], to: dir + "/.kvtmp-1-1-1")
        writeBytes([1, 2, 3], to: dir + "/.kvtmp-2-2-2")
        writeBytes([1, 2, 3], to: dir + "/README.txt")
        setMTime(dir + "/.kvtmp-1-1-1", secondsSinceEpoch: Int(Date().timeIntervalSince1970) - 3600)
        let disk = try open()
        XCTAssertEqual(files(in: dir), [".kvtmp-2-2-2", "README.txt"])
        XCTAssertEqual(disk.stats.staleTempFilesRemoved, 1)
        XCTAssertEqual(disk.stats.entries, 0)
        XCTAssertEqual(disk.stats.rejectedEntries, 0)
    }

    func testDirectoryPathThatIsAFileThrows() throws {
        writeBytes([1], to: tempRoot + "/plain")
        XCTAssertThrowsError(try DiskTier(directory: tempRoot + "/plain", fingerprint: Toy.fingerprint, capacityBytes: 100))
        XCTAssertThrowsError(try DiskTier(directory: tempRoot + "/plain/kv", fingerprint: Toy.fingerprint, capacityBytes: 100))
    }

    // MARK: budget and recency

    func testBudgetEvictionOnDisk() throws {
        let disk = try open(3 * file1 + 10)
        let (a, b, c, d) = (Toy.key(1), Toy.key(2), Toy.key(3), Toy.key(4))
        disk.put(a, one(1))
        disk.put(b, one(2))
        disk.put(c, one(3))
        XCTAssertNotNil(disk.get(a))
        XCTAssertEqual(disk.put(d, one(4)), .stored(evicted: [b]))
        XCTAssertEqual(disk.keysOldestFirst, [c, a, d])
        XCTAssertFalse(FileManager.default.fileExists(atPath: disk.path(for: b)))
        XCTAssertEqual(files(in: dir).count, 3)
        XCTAssertEqual(disk.stats.bytes, 3 * file1)
        XCTAssertEqual(disk.stats.evictions, 1)
        // Oversize: 9 tokens is a 128 + 468 = 596-byte file, over the 550-byte budget.
        XCTAssertEqual(disk.put(Toy.key(5), Toy.encoded(tokens: 9, seed: 5)), .rejectedOversize)
        XCTAssertEqual(disk.stats.oversizeRejected, 1)
        XCTAssertEqual(files(in: dir).count, 3)
        XCTAssertEqual(disk.stats.bytes, 3 * file1)
    }

    func testOverwriteReplacesFileAndAccounting() throws {
        let disk = try open()
        let a = Toy.key(1)
        disk.put(a, Toy.encoded(tokens: 3, seed: 1))
        XCTAssertEqual(disk.stats.bytes, 128 + 156)
        disk.put(a, one(2))
        XCTAssertEqual(disk.stats.bytes, file1)
        XCTAssertEqual(disk.stats.entries, 1)
        XCTAssertEqual(fileSize(disk.path(for: a)), file1)
        XCTAssertEqual(disk.get(a), one(2))
        XCTAssertTrue(disk.remove(a))
        XCTAssertEqual(files(in: dir), [])
        XCTAssertEqual(disk.stats.bytes, 0)
    }

    func testRecencyAfterRestartFollowsMTimeAndAccess() throws {
        let (a, b, c) = (Toy.key(1), Toy.key(2), Toy.key(3))
        let past = Int(Date().timeIntervalSince1970) - 1000
        do {
            let disk = try open()
            disk.put(a, one(1))
            disk.put(b, one(2))
            disk.put(c, one(3))
            // Pin write times: c oldest, then a, then b.
            setMTime(disk.path(for: c), secondsSinceEpoch: past)
            setMTime(disk.path(for: a), secondsSinceEpoch: past + 10)
            setMTime(disk.path(for: b), secondsSinceEpoch: past + 20)
        }
        do {
            let disk = try open()
            XCTAssertEqual(disk.keysOldestFirst, [c, a, b])
            XCTAssertNotNil(disk.get(c))  // an access moves c to the newest, on disk too (mtime)
            XCTAssertEqual(disk.keysOldestFirst, [a, b, c])
        }
        let disk = try open()
        XCTAssertEqual(disk.keysOldestFirst, [a, b, c])
        // Reopening with a smaller budget evicts the oldest first.
        let small = try open(2 * file1)
        XCTAssertEqual(small.keysOldestFirst, [b, c])
        XCTAssertEqual(small.stats.evictions, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: small.path(for: a)))
    }

    func testRemoveAllWipesEntryFilesOnly() throws {
        let disk = try open()
        disk.put(Toy.key(1), one(1))
        disk.put(Toy.key(2), one(2))
        writeBytes([1], to: dir + "/notes.txt")
        disk.removeAll()
        XCTAssertEqual(files(in: dir), ["notes.txt"])
        XCTAssertEqual(disk.stats.bytes, 0)
        XCTAssertEqual(disk.stats.entries, 0)
        XCTAssertNil(disk.get(Toy.key(1)))
        XCTAssertEqual(try open().stats.entries, 0)
    }

    func testFileDeletedBehindOurBackIsAPlainMiss() throws {
        let disk = try open()
        disk.put(Toy.key(1), one(1))
        unlink(disk.path(for: Toy.key(1)))
        XCTAssertNil(disk.get(Toy.key(1)))
        XCTAssertFalse(disk.contains(Toy.key(1)))
        XCTAssertEqual(disk.stats.rejectedEntries, 0)
        XCTAssertEqual(disk.stats.bytes, 0)
        XCTAssertEqual(disk.stats.misses, 1)
    }

    func testShapeMismatchedPutIsRefused() throws {
        let disk = try open()
        let wide = EncodedKV(Toy.block(tokens: 1, seed: 1, kvDim: 16), encoding: .int8)
        XCTAssertEqual(disk.put(Toy.key(1), wide), .rejectedShape)
        XCTAssertEqual(files(in: dir), [])
    }
}
