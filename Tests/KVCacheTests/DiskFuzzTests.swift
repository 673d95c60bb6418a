import Foundation
import KVCache
import XCTest

/// Fuzzing the disk entry parser and read path (DiskFormat.parse + DiskTier scan and get), the way
/// GGUFTests fuzzes the model loader: a fixed seed and a fixed budget, so CI runs the same cases
/// every time. Mutations aim at the header (sizes, counts, shape, key, fingerprint) and at the file
/// size (truncated, extended sparsely to whatever the header claims).
///
/// Every mutant must be refused or return exactly the original value; the two valid entries
/// beside it must always survive and read back intact; nothing may crash or allocate what the
/// header claims (a claimed body over the tier's capacity is refused on the header).
final class DiskFuzzTests: TempDirTestCase {
    var dir: String { tempRoot + "/kv" }
    static let seed: UInt64 = 0x6B76_6475_656C   // "kvduel"
    static let budget = 400

    func testMutatedEntriesAreRefusedAndTouchNothingElse() throws {
        let typed = SegmentKey(fingerprint: Toy.fingerprint, tokens: [5, 6, 7, 8])
        let value = Toy.encoded(tokens: 4, seed: 9)
        let others = [Toy.key(2), Toy.key(3)]
        let otherValue = Toy.encoded(tokens: 3, seed: 10)
        let capacity = 64 << 10
        func open() throws -> DiskTier {
            try DiskTier(directory: dir, fingerprint: Toy.fingerprint, capacityBytes: capacity, shape: (Toy.layers, Toy.kvDim))
        }
        let seedTier = try open()
        XCTAssertTrue(seedTier.put(typed, value).isStored)
        let path = seedTier.path(for: typed)
        let good = readBytes(path)
        let bytesPerToken = KVEncoding.int8.bytesPerToken(layers: Toy.layers, kvDim: Toy.kvDim)

        var rng = SplitMix(seed: Self.seed)
        func below(_ n: Int) -> Int { Int(rng.next() % UInt64(max(1, n))) }
        func putU32(_ b: inout [UInt8], _ v: UInt32, at o: Int) { for j in 0..<4 { b[o + j] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(j))) } }
        func putU64(_ b: inout [UInt8], _ v: UInt64, at o: Int) { for j in 0..<8 { b[o + j] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(j))) } }

        var accepted = 0, refused = 0
        for i in 0..<Self.budget {
            var b = good
            var sparseSize: Int?   // extend the file to this size, sparsely
            switch i % 6 {
            case 0:  // bit flips, mostly in the header
                for _ in 0..<(1 + below(3)) {
                    let pos = below(4) == 0 ? below(b.count) : below(128)
                    b[pos] ^= UInt8(1) << UInt8(below(8))
                }
            case 1:  // a declared token count, with the body length and file size to match
                let tokens = [0, 1, 3, 5, 20000, (1 << 20) - 1, 1 << 20, Int(UInt32.max)][below(8)]
                putU32(&b, UInt32(truncatingIfNeeded: tokens), at: 24)
                let body = tokens.multipliedReportingOverflow(by: bytesPerToken).partialValue
                putU64(&b, UInt64(truncatingIfNeeded: body), at: 80)
                if below(2) == 0, body >= 0, body < 1 << 34 { sparseSize = 128 + body }
            case 2:  // shape fields: layers, kvDim
                putU32(&b, UInt32(truncatingIfNeeded: rng.next() % 3 == 0 ? rng.next() : UInt64(below(20))), at: 20 + 8 * below(2))
            case 3:  // truncation, or trailing bytes
                if below(2) == 0 { b = Array(b.prefix(below(b.count))) } else { b += (0..<(1 + below(64))).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            case 4:  // body length alone, huge or off by a little
                let v: UInt64 = below(2) == 0 ? rng.next() : UInt64(good.count - 128 + below(9) - 4)
                putU64(&b, v, at: 80)
            default:  // random bytes over the key / parent / fingerprint / encoding fields
                let pos = [16, 17, 32, 48, 64, 88][below(6)]
                for j in pos..<min(b.count, pos + 1 + below(16)) { b[j] = UInt8(truncatingIfNeeded: rng.next()) }
            }
            // Two valid entries beside it, older than it.
            let writer = try open()
            for k in others where !writer.contains(k) { XCTAssertTrue(writer.put(k, otherValue).isStored) }
            for k in others { setMTime(writer.path(for: k), secondsSinceEpoch: 1_000_000 + i) }
            writeBytes(b, to: path)
            if let s = sparseSize { XCTAssertEqual(truncate(path, off_t(s)), 0) }

            let tier = try open()
            let got = tier.get(typed)
            if let got {
                XCTAssertEqual(got, value, "case \(i): accepted, so it must be the original")
                accepted += 1
            } else {
                refused += 1
                XCTAssertFalse(FileManager.default.fileExists(atPath: path), "case \(i): a refused entry is deleted")
            }
            for k in others { XCTAssertEqual(tier.get(k), otherValue, "case \(i): \(k) survives") }
            XCTAssertEqual(tier.stats.evictions, 0, "case \(i): nothing evicted to make room for it")
            XCTAssertLessThanOrEqual(tier.stats.bytes, capacity)
        }
        XCTAssertGreaterThan(refused, Self.budget * 3 / 4, "most mutations are refused (accepted \(accepted))")
    }
}
