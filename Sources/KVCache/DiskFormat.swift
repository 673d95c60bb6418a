// On-disk entry format, version 1. One file per entry, named `<p|s>-<32 hex digest>.kv`
// (p = prefix chunk, s = segment). All integers little-endian.
//
//   offset size  field
//        0    8  magic "KVDUELKV"
//        8    4  format version (1)
//       12    4  header size (128)
//       16    1  key kind (1 prefix chunk, 2 segment)
//       17    1  encoding (1 int8, 2 f16, 3 f32, 5 int4; 4, an earlier int4 layout, is rejected)
//       18    2  reserved, 0
//       20    4  layers
//       24    4  tokenCount
//       28    4  kvDim
//       32   16  key digest (hi, lo)
//       48   16  parent digest (prefix chunks; 0 for segments)
//       64   16  model fingerprint digest (hi, lo)
//       80    8  body length = tokenCount * encoding.bytesPerToken(layers, kvDim)
//       88    8  checksum = XXH64(body, seed: XXH64(header bytes 0..<128 with this field zeroed, seed 0))
//       96   32  reserved, 0
//      128       body: `EncodedKV.body` (positions, then payload; see Encoding.swift)
//
// A file is used only if every check passes: size ≥ 128, magic, version, header size, known kind and
// encoding, key equal to the file name's, fingerprint equal to the store's, plausible shape equal to
// the store's, token count equal to the key's (when the key knows it), body length equal to the
// shape's, file size equal to 128 + body length, checksum. Sizes are checked on the header alone,
// before any body byte is read.
// Anything else is rejected (counted under a `DiskRejection` reason) and deleted.

/// Why a disk entry was rejected.
public enum DiskRejection: String, Error, Sendable, CaseIterable, CustomStringConvertible {
    case notRegularFile       // symlink, directory, …
    case unreadable           // open/read failed other than "gone"
    case truncated            // shorter than its header says (or than a header)
    case trailingBytes        // longer than its header says
    case badMagic
    case unsupportedVersion
    case badHeader            // header size, kind, encoding or body length inconsistent
    case wrongKey             // header key differs from the file name's
    case foreignModel         // written for another model fingerprint
    case wrongShape           // layers / kvDim differ from the store's, token count from the key's, or implausible
    case checksumMismatch

    public var description: String { rawValue }
}

enum DiskFormat {
    static let magic: [UInt8] = Array("KVDUELKV".utf8)
    static let version: UInt32 = 1
    static let headerSize = 128
    static let fileSuffix = ".kv"
    static let tempPrefix = ".kvtmp-"

    struct Header: Equatable {
        var key: CacheKey
        var fingerprint: Digest128
        var encoding: KVEncoding
        var layers: Int
        var tokenCount: Int
        var kvDim: Int
        var bodyLength: Int
        var checksum: UInt64
    }

    static func fileName(for key: CacheKey) -> String {
        "\(key.kind.letter)-\(key.digest.hex)\(fileSuffix)"
    }

    /// Kind and digest named by an entry file name; nil for any other name.
    static func parseFileName(_ name: String) -> (kind: CacheKey.Kind, digest: Digest128)? {
        guard name.hasSuffix(fileSuffix), name.utf8.count == 2 + 32 + fileSuffix.utf8.count else { return nil }
        let kind: CacheKey.Kind
        if name.hasPrefix("p-") { kind = .prefixChunk } else if name.hasPrefix("s-") { kind = .segment } else { return nil }
        let hex = name.dropFirst(2).dropLast(fileSuffix.count)
        guard let d = Digest128(hex: hex) else { return nil }
        return (kind, d)
    }

    /// The 128 header bytes for an entry, checksum filled in.
    static func header(key: CacheKey, fingerprint: ModelFingerprint, value: EncodedKV) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: headerSize)
        func put<T: FixedWidthInteger>(_ v: T, at o: Int) {
            withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { h[o + i] = b } }
        }
        for (i, b) in magic.enumerated() { h[i] = b }
        put(version, at: 8)
        put(UInt32(headerSize), at: 12)
        h[16] = key.kind.rawValue
        h[17] = value.encoding.rawValue
        put(UInt32(value.layers), at: 20)
        put(UInt32(value.tokenCount), at: 24)
        put(UInt32(value.kvDim), at: 28)
        put(key.digest.hi, at: 32)
        put(key.digest.lo, at: 40)
        put(key.parent.hi, at: 48)
        put(key.parent.lo, at: 56)
        put(fingerprint.digest.hi, at: 64)
        put(fingerprint.digest.lo, at: 72)
        put(UInt64(value.byteCount), at: 80)
        put(checksum(header: h, body: value.body), at: 88)
        return h
    }

    /// Checksum of an entry; the header's checksum field (bytes 88..<96) is treated as zero.
    static func checksum(header: [UInt8], body: [UInt8]) -> UInt64 {
        var h = header
        for i in 88..<96 { h[i] = 0 }
        let seed = XXH64.hash(h)
        return XXH64.hash(body, seed: seed)
    }

    /// Parses and checks a header against what the store expects. `fileSize` is the whole file's
    /// (from `fstat`, never from the header); `expectedKey.tokenCount`, when set, must equal the
    /// declared token count; `maxFileSize` bounds the whole file (the tier's capacity).
    static func parse(_ h: [UInt8], fileSize: Int, expectedKey: CacheKey, fingerprint: ModelFingerprint,
                      shape: (layers: Int, kvDim: Int)?, maxFileSize: Int = .max) -> Result<Header, DiskRejection> {
        guard h.count >= headerSize, fileSize >= headerSize else { return .failure(.truncated) }
        func u32(_ o: Int) -> UInt32 {
            h.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        }
        func u64(_ o: Int) -> UInt64 {
            h.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        }
        guard Array(h[0..<8]) == magic else { return .failure(.badMagic) }
        guard u32(8) == version else { return .failure(.unsupportedVersion) }
        guard u32(12) == UInt32(headerSize),
              let kind = CacheKey.Kind(rawValue: h[16]),
              let encoding = KVEncoding(rawValue: h[17]) else { return .failure(.badHeader) }
        let digest = Digest128(hi: u64(32), lo: u64(40))
        let parent = Digest128(hi: u64(48), lo: u64(56))
        guard kind == expectedKey.kind, digest == expectedKey.digest else { return .failure(.wrongKey) }
        guard Digest128(hi: u64(64), lo: u64(72)) == fingerprint.digest else { return .failure(.foreignModel) }
        let layers = Int(u32(20)), tokenCount = Int(u32(24)), kvDim = Int(u32(28))
        if let expected = expectedKey.tokenCount, expected != tokenCount { return .failure(.wrongShape) }
        guard let bodyLength = encoding.bodyBytes(layers: layers, tokenCount: tokenCount, kvDim: kvDim)
        else { return .failure(.wrongShape) }
        if let shape, shape.layers != layers || shape.kvDim != kvDim { return .failure(.wrongShape) }
        guard u64(80) == UInt64(bodyLength) else { return .failure(.badHeader) }
        // An entry larger than the whole tier can never have been stored by it.
        if headerSize + bodyLength > maxFileSize { return .failure(.wrongShape) }
        if fileSize < headerSize + bodyLength { return .failure(.truncated) }
        if fileSize > headerSize + bodyLength { return .failure(.trailingBytes) }
        return .success(Header(key: CacheKey(kind: kind, digest: digest, parent: parent),
                               fingerprint: fingerprint.digest, encoding: encoding, layers: layers,
                               tokenCount: tokenCount, kvDim: kvDim, bodyLength: bodyLength, checksum: u64(88)))
    }
}
