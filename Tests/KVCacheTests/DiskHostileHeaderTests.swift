import Foundation
import KVCache
import XCTest

/// Entries whose header declares a size the key or the tier cannot have (issue 10, item 3). The
/// header is all a tier may read before deciding: never a body, and never at the others' expense.
final class DiskHostileHeaderTests: TempDirTestCase {
    var dir: String { tempRoot + "/kv" }
    /// A typed key: it knows its entry holds 3 tokens.
    let typed = SegmentKey(fingerprint: Toy.fingerprint, tokens: [7, 8, 9])
    let value = Toy.encoded(tokens: 3, seed: 42)
    let others = [Toy.key(2), Toy.key(3)]
    var bytesPerToken: Int { KVEncoding.int8.bytesPerToken(layers: Toy.layers, kvDim: Toy.kvDim) }

    func open(capacity: Int) throws -> DiskTier {
        try DiskTier(directory: dir, fingerprint: Toy.fingerprint, capacityBytes: capacity, shape: (Toy.layers, Toy.kvDim))
    }

    /// Stores the typed entry and two valid others, then rewrites the typed entry's header to
    /// declare `tokens` tokens (body length to match) and extends the file, sparsely, to that
    /// size: every header check a scan can make passes, only the checksum (over the body) would not.
    func craft(tokens: Int) throws {
        let disk = try open(capacity: 1 << 20)
        XCTAssertTrue(disk.put(typed, value).isStored)
        for k in others { XCTAssertTrue(disk.put(k, value).isStored) }
        let path = disk.path(for: typed)
        var h = Array(readBytes(path).prefix(128))
        func put<T: FixedWidthInteger>(_ v: T, at o: Int) {
            withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { h[o + i] = b } }
        }
        let body = tokens * bytesPerToken
        put(UInt32(tokens), at: 24)
        put(UInt64(body), at: 80)
        writeBytes(h, to: path)
        XCTAssertEqual(truncate(path, off_t(128 + body)), 0)
        XCTAssertEqual(fileSize(path), 128 + body)
    }

    func assertOthersSurvive(_ disk: DiskTier, file: StaticString = #filePath, line: UInt = #line) {
        for k in others { XCTAssertEqual(disk.get(k), value, "\(k)", file: file, line: line) }
        XCTAssertEqual(disk.stats.entries, 2, file: file, line: line)
        XCTAssertEqual(files(in: dir).count, 2, file: file, line: line)
    }

    /// 20000 tokens with a matching (sparse) file: the scan cannot tell, but `get` with the key,
    /// which knows it names 3 tokens, refuses on the header. Before the fix the whole 20000-token
    /// body was read and only the checksum caught it (1.19 GB peak RSS with the real model's
    /// shape); `.wrongShape` rather than `.checksumMismatch` shows no body byte was read.
    func test20000TokenHeaderIsRefusedBeforeTheBodyIsRead() throws {
        try craft(tokens: 20000)
        let disk = try open(capacity: 1 << 30)
        XCTAssertTrue(disk.contains(typed), "the scan reads headers only and the file is consistent")
        XCTAssertNil(disk.get(typed))
        XCTAssertEqual(disk.stats.rejections, [.wrongShape: 1])
        XCTAssertFalse(disk.contains(typed))
        XCTAssertFalse(FileManager.default.fileExists(atPath: disk.path(for: typed)))
        assertOthersSurvive(disk)
    }

    /// 1,048,575 tokens (the largest the format allows) in a 1 MiB tier: before the fix the scan
    /// indexed it and then evicted every other entry (and itself) to get under the capacity.
    func testHugeHeaderAtOpenTouchesNoOtherEntry() throws {
        try craft(tokens: (1 << 20) - 1)
        let disk = try open(capacity: 1 << 20)
        XCTAssertFalse(disk.contains(typed))
        XCTAssertEqual(disk.stats.rejections, [.wrongShape: 1])
        XCTAssertEqual(disk.stats.evictions, 0)
        assertOthersSurvive(disk)
    }

    /// The same file under a key without a token count (a scan, a key from a file name) in a tier
    /// large enough for it: the header is consistent, so only the checksum can refuse it; the
    /// others are untouched either way.
    func testEntryLargerThanTheTierIsRejectedAloneEvenWhenTheOthersAreOlder() throws {
        try craft(tokens: 5000)   // 5000 × 52 B = 260 kB
        // The others are the least recently used: an LRU pass to fit the capacity would take them first.
        let paths = try open(capacity: 1 << 20)
        for k in others { setMTime(paths.path(for: k), secondsSinceEpoch: 1000) }
        let disk = try open(capacity: 100_000)
        XCTAssertEqual(disk.stats.rejections, [.wrongShape: 1])
        XCTAssertEqual(disk.stats.evictions, 0)
        assertOthersSurvive(disk)
    }

    /// A typed key refuses, on put too, a value of another length: the tier never writes what
    /// its own `get` would reject.
    func testPutUnderATypedKeyChecksTheTokenCount() throws {
        let disk = try open(capacity: 1 << 20)
        XCTAssertFalse(disk.put(typed, Toy.encoded(tokens: 4, seed: 1)).isStored)
        XCTAssertTrue(disk.put(typed, value).isStored)
        XCTAssertEqual(disk.get(typed), value)
    }
}

/// Two instances sharing a directory, and loose directory permissions (issue 10, item 7).
final class DiskSharingTests: TempDirTestCase {
    var dir: String { tempRoot + "/kv" }

    func open() throws -> DiskTier {
        try DiskTier(directory: dir, fingerprint: Toy.fingerprint, capacityBytes: 1 << 20, shape: (Toy.layers, Toy.kvDim))
    }

    /// One instance's Ctrl-R (removeAll) deletes the shared files; the other forgets them on its
    /// next request instead of showing stale sizes.
    func testEntriesDeletedByAnotherInstanceAreDropped() throws {
        let a = try open()
        for i in 1...3 { XCTAssertTrue(a.put(Toy.key(i), Toy.encoded(tokens: 3, seed: UInt64(i))).isStored) }
        let b = try open()
        XCTAssertEqual(b.stats.entries, 3)
        b.removeAll()
        XCTAssertEqual(a.stats.entries, 3, "stale until it looks")
        XCTAssertEqual(a.dropVanishedEntries(), 3)
        XCTAssertEqual(a.stats.entries, 0)
        XCTAssertEqual(a.stats.bytes, 0)
        XCTAssertEqual(a.dropVanishedEntries(), 0)
        XCTAssertTrue(a.put(Toy.key(1), Toy.encoded(tokens: 3, seed: 1)).isStored)
        XCTAssertEqual(a.dropVanishedEntries(), 0, "present files stay")
    }

    func testLooseDirectoryIsTightened() throws {
        for loose in [0o777, 0o755, 0o644] {
            XCTAssertEqual(mkdir(dir, 0o700), 0)
            XCTAssertEqual(chmod(dir, mode_t(loose)), 0)
            let note = DiskTier.tightenPermissions(of: dir)
            XCTAssertEqual(note, "tightened \(dir) from \(String(loose, radix: 8)) to 700 (KV entries are private)")
            XCTAssertEqual(mode(of: dir), 0o700)
            XCTAssertNil(DiskTier.tightenPermissions(of: dir), "already private")
            chmod(dir, mode_t(loose))
            _ = try open()   // opening tightens it too
            XCTAssertEqual(mode(of: dir), 0o700, "\(String(loose, radix: 8))")
            try FileManager.default.removeItem(atPath: dir)
        }
    }

    /// A shared sticky directory such as /tmp is never changed, only reported.
    func testStickyDirectoryIsOnlyReported() throws {
        XCTAssertEqual(mkdir(dir, 0o700), 0)
        XCTAssertEqual(chmod(dir, mode_t(0o1777)), 0)
        let note = DiskTier.tightenPermissions(of: dir)
        XCTAssertTrue(note?.hasPrefix("warning: \(dir) is open to other users (mode 1777)") ?? false, note ?? "nil")
        XCTAssertEqual(mode(of: dir), 0o777, "unchanged (mode(of:) masks the sticky bit)")
    }
}
