import Foundation
import KVCache
import XCTest

/// Deterministic pseudo-random numbers (SplitMix64), so every run sees the same data.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func float(in r: ClosedRange<Float>) -> Float { Float.random(in: r, using: &self) }
}

enum Toy {
    static let layers = 2
    static let kvDim = 8
    static let fingerprint = ModelFingerprint(components: ["toy", "layers=2", "kvDim=8"])
    static let otherFingerprint = ModelFingerprint(components: ["toy", "layers=2", "kvDim=8", "other-weights"])

    /// A block with values in ±`range` and positions `firstPosition...`.
    static func block(tokens: Int, seed: UInt64, layers: Int = layers, kvDim: Int = kvDim,
                      firstPosition: Int32 = 0, range: Float = 3) -> KVBlock {
        var rng = SplitMix(seed: seed)
        let n = layers * tokens * kvDim
        let k = (0..<n).map { _ in rng.float(in: -range...range) }
        let v = (0..<n).map { _ in rng.float(in: -range...range) }
        return KVBlock(layers: layers, tokenCount: tokens, kvDim: kvDim,
                       positions: (0..<tokens).map { firstPosition + Int32($0) }, k: k, v: v)
    }

    static func encoded(tokens: Int, seed: UInt64, encoding: KVEncoding = .int8) -> EncodedKV {
        EncodedKV(block(tokens: tokens, seed: seed), encoding: encoding)
    }

    /// A segment key named by a small integer, for readable LRU tests.
    /// It carries no token count, so it may name an entry of any length.
    static func key(_ id: Int) -> CacheKey {
        CacheKey(kind: .segment, digest: SegmentKey(fingerprint: fingerprint, tokens: [Int32(id)]).digest)
    }
}

/// A fresh directory under the system temp dir, removed by `tearDown` of `TempDirTestCase`.
class TempDirTestCase: XCTestCase {
    var tempRoot: String!

    override func setUpWithError() throws {
        let template = NSTemporaryDirectory() + "kvcache-tests-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard let p = mkdtemp(&bytes) else { throw XCTSkip("mkdtemp failed") }
        tempRoot = String(cString: p)
    }

    override func tearDownWithError() throws {
        if let tempRoot { try? FileManager.default.removeItem(atPath: tempRoot) }
    }

    func files(in dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    func mode(of path: String) -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else { return -1 }
        return Int(st.st_mode) & 0o777
    }

    func fileSize(_ path: String) -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else { return -1 }
        return Int(st.st_size)
    }

    func setMTime(_ path: String, secondsSinceEpoch: Int) {
        var times = [timespec(tv_sec: secondsSinceEpoch, tv_nsec: 0), timespec(tv_sec: secondsSinceEpoch, tv_nsec: 0)]
        XCTAssertEqual(utimensat(AT_FDCWD, path, &times, 0), 0, "utimensat \(path)")
    }

    func readBytes(_ path: String) -> [UInt8] {
        (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? []
    }

    func writeBytes(_ bytes: [UInt8], to path: String) {
        XCTAssertNoThrow(try Data(bytes).write(to: URL(fileURLWithPath: path)))
    }
}
