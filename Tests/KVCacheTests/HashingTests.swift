import KVCache
import XCTest

final class HashingTests: XCTestCase {
    /// Input i of length n: byte j = (j * 131 + 7) & 0xff.
    static func pattern(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 * 131 + 7) } }

    /// Expected values computed with the reference C library (libxxhash 0.8.1, `XXH64()`).
    static let vectors: [(Int, UInt64, UInt64)] = [
        (0, 0x0, 0xEF46_DB37_51D8_E999), (1, 0x0, 0xA96C_7F0C_E858_BBB7), (3, 0x0, 0xBED4_3740_EE63_32BB),
        (4, 0x0, 0xFA21_2AE4_4B3B_B23D), (7, 0x0, 0x2744_460D_D675_D2C0), (8, 0x0, 0x994B_676B_71CE_94DD),
        (9, 0x0, 0x572B_84C1_8B98_3AF8), (15, 0x0, 0x09E6_451E_D2FF_8B1D), (16, 0x0, 0x94AD_0095_E72B_24D5),
        (31, 0x0, 0x6711_D55E_306B_5D8F), (32, 0x0, 0x07F7_B8E3_BC5D_6E25), (33, 0x0, 0x09F8_5EEB_4E1C_BE9F),
        (63, 0x0, 0xB7C9_968C_066C_B6A5), (64, 0x0, 0x50D4_159A_0411_632E), (100, 0x0, 0x9DDA_DA11_D3DC_2D8F),
        (255, 0x0, 0x15A6_DB05_D4E8_3DF4), (1000, 0x0, 0x0BF0_BDBC_C82E_B373),
        (0, 0x9E37_79B9_7F4A_7C15, 0xC434_9FC9_3C01_0000), (1, 0x9E37_79B9_7F4A_7C15, 0x5858_8242_2A61_65E7),
        (3, 0x9E37_79B9_7F4A_7C15, 0x45FA_1406_538F_A168), (4, 0x9E37_79B9_7F4A_7C15, 0xA651_07F2_2943_365A),
        (7, 0x9E37_79B9_7F4A_7C15, 0xC9B6_37E2_C459_9DE2), (8, 0x9E37_79B9_7F4A_7C15, 0xCE59_2D5F_53E1_92EC),
        (9, 0x9E37_79B9_7F4A_7C15, 0x5495_AA79_6DE8_AB73), (15, 0x9E37_79B9_7F4A_7C15, 0x47A8_57D1_F90C_35E1),
        (16, 0x9E37_79B9_7F4A_7C15, 0x3F8F_EA7C_86A0_4013), (31, 0x9E37_79B9_7F4A_7C15, 0x24C4_E99A_B040_4B5E),
        (32, 0x9E37_79B9_7F4A_7C15, 0x046E_99BB_DA1A_814B), (33, 0x9E37_79B9_7F4A_7C15, 0xD7FE_2BFE_E6E4_CDED),
        (63, 0x9E37_79B9_7F4A_7C15, 0xBD45_7F9E_A471_80C8), (64, 0x9E37_79B9_7F4A_7C15, 0xA768_F350_A8E4_FCF6),
        (100, 0x9E37_79B9_7F4A_7C15, 0x3554_6BD9_A477_9AE4), (255, 0x9E37_79B9_7F4A_7C15, 0xF91C_B247_D93D_FE82),
        (1000, 0x9E37_79B9_7F4A_7C15, 0x3ECB_5D7B_5E7C_64CF),
    ]

    func testXXH64MatchesReferenceLibrary() {
        for (n, seed, expected) in Self.vectors {
            XCTAssertEqual(XXH64.hash(Self.pattern(n), seed: seed), expected, "length \(n) seed \(seed)")
        }
        XCTAssertEqual(XXH64.hash(Array("abc".utf8)), 0x44BC_2CF5_AD77_0999)
    }

    func testXXH64IgnoresAlignment() {
        // The same bytes at an odd offset inside a larger buffer hash the same.
        let data = Self.pattern(101)
        let shifted = [0xAA] + data
        let h = shifted.withUnsafeBytes { XXH64.hash(UnsafeRawBufferPointer(rebasing: $0[1...]), seed: 5) }
        XCTAssertEqual(h, XXH64.hash(data, seed: 5))
    }

    func testDigest128IsStableAcrossRuns() {
        // Pinned definition (two XXH64 passes, fixed seeds): changing it silently orphans every cache on disk.
        let d = Digest128.of(Array("kvduel".utf8))
        XCTAssertEqual(d.hi, XXH64.hash(Array("kvduel".utf8), seed: 0x6B76_6475_656C_2D41))
        XCTAssertEqual(d.lo, XXH64.hash(Array("kvduel".utf8), seed: 0x6B76_6475_656C_2D42))
        XCTAssertNotEqual(d.hi, d.lo)
        XCTAssertEqual(d, Digest128.of(Array("kvduel".utf8)))
        XCTAssertNotEqual(d, Digest128.of(Array("kvduel!".utf8)))
    }

    func testHexRoundTripAndShortForm() {
        let d = Digest128(hi: 0x0123_4567_89AB_CDEF, lo: 0xFEDC_BA98_7654_3210)
        XCTAssertEqual(d.hex, "0123456789abcdeffedcba9876543210")
        XCTAssertEqual(d.shortHex, "0123456789ab")
        XCTAssertEqual("\(d)", "0123456789ab")
        XCTAssertEqual(Digest128(hex: d.hex), d)
        XCTAssertNil(Digest128(hex: "0123"))
        XCTAssertNil(Digest128(hex: "0123456789abcdeffedcba987654321g"))
        XCTAssertNil(Digest128(hex: "0123456789ABCDEFFEDCBA9876543210"), "only the lowercase form is produced")
    }

    func testStableHasherFieldsAreUnambiguous() {
        func digest(_ parts: [String]) -> Digest128 {
            var h = StableHasher(domain: "t")
            for p in parts { h.combine(p) }
            return h.finalize()
        }
        XCTAssertNotEqual(digest(["ab", "c"]), digest(["a", "bc"]))
        XCTAssertNotEqual(digest(["abc"]), digest(["ab", "c"]))
        XCTAssertEqual(digest(["ab", "c"]), digest(["ab", "c"]))

        var a = StableHasher(domain: "t"), b = StableHasher(domain: "t")
        a.combine(Int64(1))
        b.combine(UInt64(1))
        XCTAssertNotEqual(a.finalize(), b.finalize(), "typed fields")
        var c = StableHasher(domain: "u")
        c.combine(Int64(1))
        XCTAssertNotEqual(a.finalize(), c.finalize(), "domain")
    }
}
