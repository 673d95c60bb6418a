// Stable hashing for cache keys and file checksums.
//
// Swift's `Hasher` is randomly seeded per process, so it cannot name anything that outlives the
// process. Everything here is deterministic across runs, processes and machines (little-endian
// byte order is used for every multi-byte value fed to the hash).
//
// - `XXH64` is xxHash64 (Yann Collet), checked bit-for-bit against libxxhash in the tests.
// - `Digest128` is two XXH64 passes over the same bytes with two fixed, unrelated seeds. Each pass
//   starts from a different seed-derived state, so a collision in one does not imply one in the
//   other: for non-adversarial inputs the chance of a 128-bit collision is about 2^-128 per pair.

/// xxHash64. `hash(_:seed:)` matches `XXH64()` of the reference C library.
public enum XXH64 {
    @usableFromInline static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    @usableFromInline static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    @usableFromInline static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    @usableFromInline static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    @usableFromInline static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inline(__always) static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 {
        (x &<< r) | (x &>> (64 &- r))
    }

    @inline(__always) static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }

    @inline(__always) static func mergeRound(_ acc: UInt64, _ val: UInt64) -> UInt64 {
        (acc ^ round(0, val)) &* p1 &+ p4
    }

    /// Hashes `count` bytes at `base`.
    public static func hash(_ base: UnsafeRawPointer?, count: Int, seed: UInt64 = 0) -> UInt64 {
        var h: UInt64
        var i = 0
        let n = count
        guard let p = base, n > 0 else {
            return avalanche(seed &+ p5)
        }
        @inline(__always) func r64(_ o: Int) -> UInt64 { UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        @inline(__always) func r32(_ o: Int) -> UInt32 { UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }

        if n >= 32 {
            var v1 = seed &+ p1 &+ p2
            var v2 = seed &+ p2
            var v3 = seed
            var v4 = seed &- p1
            let limit = n - 32
            while i <= limit {
                v1 = round(v1, r64(i))
                v2 = round(v2, r64(i + 8))
                v3 = round(v3, r64(i + 16))
                v4 = round(v4, r64(i + 24))
                i += 32
            }
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = mergeRound(h, v1)
            h = mergeRound(h, v2)
            h = mergeRound(h, v3)
            h = mergeRound(h, v4)
        } else {
            h = seed &+ p5
        }
        h = h &+ UInt64(n)
        while i + 8 <= n {
            h ^= round(0, r64(i))
            h = rotl(h, 27) &* p1 &+ p4
            i += 8
        }
        if i + 4 <= n {
            h ^= UInt64(r32(i)) &* p1
            h = rotl(h, 23) &* p2 &+ p3
            i += 4
        }
        while i < n {
            h ^= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) &* p5
            h = rotl(h, 11) &* p1
            i += 1
        }
        return avalanche(h)
    }

    public static func hash(_ buffer: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        hash(buffer.baseAddress, count: buffer.count, seed: seed)
    }

    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }

    @inline(__always) static func avalanche(_ x: UInt64) -> UInt64 {
        var h = x
        h ^= h >> 33
        h = h &* p2
        h ^= h >> 29
        h = h &* p3
        h ^= h >> 32
        return h
    }
}

/// A 128-bit stable digest. Prints as 32 lowercase hex digits (`hex`), or 12 for logs (`shortHex`).
public struct Digest128: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var hi: UInt64
    public var lo: UInt64

    public init(hi: UInt64, lo: UInt64) {
        self.hi = hi
        self.lo = lo
    }

    public static let zero = Digest128(hi: 0, lo: 0)

    /// Seeds of the two XXH64 passes ("kvduel-A", "kvduel-B" as ASCII).
    static let seedHi: UInt64 = 0x6B76_6475_656C_2D41
    static let seedLo: UInt64 = 0x6B76_6475_656C_2D42

    /// Digest of raw bytes.
    public static func of(_ buffer: UnsafeRawBufferPointer) -> Digest128 {
        Digest128(hi: XXH64.hash(buffer, seed: seedHi), lo: XXH64.hash(buffer, seed: seedLo))
    }

    public static func of(_ bytes: [UInt8]) -> Digest128 {
        bytes.withUnsafeBytes { of($0) }
    }

    /// 32 hex digits, `hi` first.
    public var hex: String { Self.hex16(hi) + Self.hex16(lo) }
    /// First 12 hex digits: enough to tell entries apart in logs and the UI.
    public var shortHex: String { String(hex.prefix(12)) }
    public var description: String { shortHex }

    /// Parses the 32-digit form produced by `hex`.
    public init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 32 else { return nil }
        var words: [UInt64] = [0, 0]
        for (i, c) in utf8.enumerated() {
            let v: UInt64
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt64(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = UInt64(c - UInt8(ascii: "a") + 10)
            default: return nil
            }
            words[i / 16] = words[i / 16] << 4 | v
        }
        self.init(hi: words[0], lo: words[1])
    }

    public static func < (a: Digest128, b: Digest128) -> Bool {
        (a.hi, a.lo) < (b.hi, b.lo)
    }

    static func hex16(_ v: UInt64) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 {
            out[i] = digits[Int((v >> UInt64(60 - 4 * i)) & 0xF)]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Builds an unambiguous byte string from typed fields, then digests it with `Digest128`.
/// Every field is written with a type tag (and strings/byte runs with their length), so
/// `["ab", "c"]` and `["a", "bc"]` never produce the same bytes.
public struct StableHasher: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(domain: String) {
        bytes.reserveCapacity(128)
        combine(domain)
    }

    public mutating func combine(_ s: String) {
        bytes.append(0x01)
        let utf8 = Array(s.utf8)
        appendLE(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    public mutating func combine(_ v: Int64) {
        bytes.append(0x02)
        appendLE(UInt64(bitPattern: v))
    }

    public mutating func combine(_ v: Int) { combine(Int64(v)) }

    public mutating func combine(_ v: UInt64) {
        bytes.append(0x03)
        appendLE(v)
    }

    public mutating func combine(_ d: Digest128) {
        bytes.append(0x04)
        appendLE(d.hi)
        appendLE(d.lo)
    }

    public mutating func combine(bytes raw: some Collection<UInt8>) {
        bytes.append(0x05)
        appendLE(UInt64(raw.count))
        bytes.append(contentsOf: raw)
    }

    /// Token ids, as count then little-endian Int32s.
    public mutating func combine(tokens: some Collection<Int32>) {
        bytes.append(0x06)
        appendLE(UInt64(tokens.count))
        bytes.reserveCapacity(bytes.count + 4 * tokens.count)
        for t in tokens {
            let u = UInt32(bitPattern: t)
            bytes.append(UInt8(truncatingIfNeeded: u))
            bytes.append(UInt8(truncatingIfNeeded: u >> 8))
            bytes.append(UInt8(truncatingIfNeeded: u >> 16))
            bytes.append(UInt8(truncatingIfNeeded: u >> 24))
        }
    }

    public func finalize() -> Digest128 { Digest128.of(bytes) }

    private mutating func appendLE(_ v: UInt64) {
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(8 * i))) }
    }
}
