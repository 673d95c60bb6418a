import Foundation
import KVCache
import XCTest

/// Every bad file must be rejected for the expected reason, counted, deleted, and never returned.
final class DiskCorruptionTests: TempDirTestCase {
    var dir: String { tempRoot + "/kv" }
    let key = Toy.key(1)
    let value = Toy.encoded(tokens: 3, seed: 42)

    func open(_ fingerprint: ModelFingerprint = Toy.fingerprint) throws -> DiskTier {
        try DiskTier(directory: dir, fingerprint: fingerprint, capacityBytes: 1 << 20, shape: (Toy.layers, Toy.kvDim))
    }

    /// Writes a valid entry for `key` and returns its path and bytes.
    func writeValid(_ fingerprint: ModelFingerprint = Toy.fingerprint) throws -> (path: String, bytes: [UInt8]) {
        let disk = try open(fingerprint)
        XCTAssertTrue(disk.put(key, value).isStored)
        let path = disk.path(for: key)
        return (path, readBytes(path))
    }

    /// Damages the valid file with `damage`, then checks a fresh open and a get both refuse it.
    /// `atOpen`: the header checks already catch it while scanning; otherwise only `get` can.
    func assertRejected(_ reason: DiskRejection, atOpen: Bool, file: StaticString = #filePath, line: UInt = #line,
                        _ damage: (_ path: String, _ bytes: [UInt8]) -> Void) throws {
        let (path, bytes) = try writeValid()
        damage(path, bytes)
        let disk = try open()
        XCTAssertEqual(disk.contains(key), !atOpen, "indexed after open", file: file, line: line)
        XCTAssertNil(disk.get(key), file: file, line: line)
        let s = disk.stats
        XCTAssertEqual(s.rejectedEntries, 1, file: file, line: line)
        XCTAssertEqual(s.rejections, [reason: 1], file: file, line: line)
        XCTAssertEqual(s.hits, 0, file: file, line: line)
        XCTAssertEqual(s.entries, 0, file: file, line: line)
        XCTAssertEqual(s.bytes, 0, file: file, line: line)
        XCTAssertFalse(disk.contains(key), file: file, line: line)
        XCTAssertEqual(files(in: dir), [], "the bad file is deleted", file: file, line: line)
        // The slot is usable again.
        XCTAssertTrue(disk.put(key, value).isStored, file: file, line: line)
        XCTAssertEqual(disk.get(key), value, file: file, line: line)
    }

    func testValidFileIsAccepted() throws {
        _ = try writeValid()
        let disk = try open()
        XCTAssertEqual(disk.get(key), value)
        XCTAssertEqual(disk.stats.rejectedEntries, 0)
    }

    func testFlippedPayloadByte() throws {
        try assertRejected(.checksumMismatch, atOpen: false) { path, bytes in
            var b = bytes
            b[b.count - 5] ^= 0x01
            writeBytes(b, to: path)
        }
    }

    func testFlippedPositionByte() throws {
        try assertRejected(.checksumMismatch, atOpen: false) { path, bytes in
            var b = bytes
            b[128] ^= 0x80
            writeBytes(b, to: path)
        }
    }

    func testFlippedReservedHeaderByte() throws {
        try assertRejected(.checksumMismatch, atOpen: false) { path, bytes in
            var b = bytes
            b[100] = 0xFF  // reserved, still covered by the checksum
            writeBytes(b, to: path)
        }
    }

    func testTruncatedFile() throws {
        try assertRejected(.truncated, atOpen: true) { path, bytes in
            writeBytes(Array(bytes.prefix(bytes.count - 7)), to: path)
        }
    }

    func testTruncatedInsideHeader() throws {
        try assertRejected(.truncated, atOpen: true) { path, bytes in
            writeBytes(Array(bytes.prefix(60)), to: path)
        }
    }

    func testZeroLengthFile() throws {
        try assertRejected(.truncated, atOpen: true) { path, _ in
            writeBytes([], to: path)
        }
    }

    func testTrailingBytes() throws {
        try assertRejected(.trailingBytes, atOpen: true) { path, bytes in
            writeBytes(bytes + [0], to: path)
        }
    }

    func testGarbageFile() throws {
        try assertRejected(.badMagic, atOpen: true) { path, bytes in
            var rng = SplitMix(seed: 7)
            writeBytes((0..<bytes.count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, to: path)
        }
    }

    func testOtherFormatVersion() throws {
        try assertRejected(.unsupportedVersion, atOpen: true) { path, bytes in
            var b = bytes
            b[8] = 2
            writeBytes(b, to: path)
        }
    }

    func testUnknownEncodingByte() throws {
        try assertRejected(.badHeader, atOpen: true) { path, bytes in
            var b = bytes
            b[17] = 9
            writeBytes(b, to: path)
        }
    }

    /// Encoding byte 4 was the per-token int4 layout; an entry written with it (same size as
    /// today's int4) is rejected on its header, never decoded with the new layout.
    func testRetiredInt4EncodingByte() throws {
        try assertRejected(.badHeader, atOpen: true) { path, bytes in
            var b = bytes
            b[17] = 4
            writeBytes(b, to: path)
        }
    }

    func testShapeFieldChanged() throws {
        try assertRejected(.wrongShape, atOpen: true) { path, bytes in
            var b = bytes
            b[28] = 16  // kvDim 8 → 16
            writeBytes(b, to: path)
        }
    }

    func testEntryUnderAnotherKeysName() throws {
        try assertRejected(.wrongKey, atOpen: true) { path, bytes in
            // The valid file of key 2, renamed to key 1's name.
            let other = try! open()
            other.put(Toy.key(2), value)
            unlink(path)
            rename(other.path(for: Toy.key(2)), path)
        }
    }

    func testSymlinkInsteadOfFile() throws {
        let target = tempRoot + "/target"
        try assertRejected(.notRegularFile, atOpen: true) { path, bytes in
            writeBytes(bytes, to: target)
            unlink(path)
            symlink(target, path)
        }
        XCTAssertEqual(readBytes(target).count, 128 + value.byteCount, "the link's target is left alone")
    }

    func testEntryOfAnotherModelIsRejectedAndDeleted() throws {
        let (path, _) = try writeValid(Toy.otherFingerprint)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        let disk = try open(Toy.fingerprint)
        XCTAssertFalse(disk.contains(key))
        XCTAssertNil(disk.get(key))
        XCTAssertEqual(disk.stats.rejections, [.foreignModel: 1])
        XCTAssertEqual(files(in: dir), [])
    }

    func testDamageAfterOpenIsCaughtByGet() throws {
        let disk = try open()
        disk.put(key, value)
        disk.put(Toy.key(2), value)
        var b = readBytes(disk.path(for: key))
        b[200] ^= 0x10
        writeBytes(b, to: disk.path(for: key))
        writeBytes(Array(readBytes(disk.path(for: Toy.key(2))).prefix(150)), to: disk.path(for: Toy.key(2)))
        XCTAssertTrue(disk.contains(key))
        XCTAssertNil(disk.get(key))
        XCTAssertNil(disk.get(Toy.key(2)))
        XCTAssertEqual(disk.stats.rejections, [.checksumMismatch: 1, .truncated: 1])
        XCTAssertEqual(disk.stats.rejectedEntries, 2)
        XCTAssertEqual(disk.stats.entries, 0)
        XCTAssertEqual(disk.stats.bytes, 0)
        XCTAssertEqual(files(in: dir), [])
    }

    /// Random damage: single bit flips anywhere, random truncations, random overwrites.
    /// Every variant must be refused without a crash, never returned as data.
    func testRandomDamageIsAlwaysRejected() throws {
        let (path, original) = try writeValid()
        var rng = SplitMix(seed: 99)
        for trial in 0..<300 {
            var b = original
            switch trial % 3 {
            case 0:
                let i = Int(rng.next() % UInt64(b.count))
                b[i] ^= UInt8(1) << UInt8(rng.next() % 8)
            case 1:
                b = Array(b.prefix(Int(rng.next() % UInt64(b.count))))
            default:
                let i = Int(rng.next() % UInt64(b.count))
                let n = 1 + Int(rng.next() % 16)
                for j in i..<min(b.count, i + n) { b[j] = UInt8(truncatingIfNeeded: rng.next()) }
                if b == original { continue }
            }
            writeBytes(b, to: path)
            let disk = try open()
            XCTAssertNil(disk.get(key), "trial \(trial)")
            XCTAssertEqual(disk.stats.rejectedEntries, 1, "trial \(trial)")
            XCTAssertEqual(files(in: dir), [], "trial \(trial)")
        }
    }
}
