import CKernels
import Llama
import TestSupport
import XCTest

/// The floor `bench engine` prints beside decode over a long cache: its counts, its arithmetic,
/// and the two measurements it rests on.
final class AttentionFloorTests: XCTestCase {
    /// SmolLM2-135M's shape: 30 layers, 9 query heads in 3 K/V groups of 3, head size 64.
    func smolConfig() throws -> LlamaConfig {
        LlamaConfig(layers: 30, dim: 576, heads: 9, kvHeads: 3, ffnDim: 1536, vocabSize: 49152)
    }

    func testCountsSlicesAndBytesOfOneDecodedToken() throws {
        let c = try smolConfig()
        // K and V rows of 3 heads in 30 layers, 64 lanes = 8 slices each, for 2000 keys.
        XCTAssertEqual(AttentionFloor.slices(config: c, keys: 2000), 2 * 30 * 3 * 8 * 2000)
        // f16: 2 bytes a lane; the live cache's own per-token size.
        XCTAssertEqual(AttentionFloor.bytes(config: c, keys: 2000), 2 * 30 * 3 * 64 * 2 * 2000)
        XCTAssertEqual(AttentionFloor.bytes(config: c, keys: 1), Double(c.kvBytesPerTokenF16))
    }

    func testTheFloorIsTheSlowerOfArithmeticAndReading() throws {
        let c = try smolConfig()
        let f = AttentionFloor(slicesPerSecond: 1e9, bytesPerSecond: 1e10, threads: 2)
        XCTAssertEqual(f.arithmeticSeconds(config: c, keys: 2000), 2.88e-3, accuracy: 1e-12)
        XCTAssertEqual(f.readSeconds(config: c, keys: 2000), 4.608e-3, accuracy: 1e-12)
        XCTAssertEqual(f.seconds(config: c, keys: 2000), 4.608e-3, accuracy: 1e-12)
        let fast = AttentionFloor(slicesPerSecond: 1e9, bytesPerSecond: 1e12, threads: 2)
        XCTAssertEqual(fast.seconds(config: c, keys: 2000), 2.88e-3, accuracy: 1e-12)
        // Short decode at 100 tok/s over 80 keys: 10 ms a token, of which the floor says 0.18 ms
        // is attention; at 2000 keys, 10 - 0.18432 + 4.608 ms.
        let bound = f.decodeBound(config: c, keys: 2000, shortRate: 100, shortKeys: 80)
        XCTAssertEqual(1 / bound, 10e-3 - 0.18432e-3 + 4.608e-3, accuracy: 1e-12)
    }

    /// The burst does what it says: for each round, 4 slices converted from f16, each multiplied
    /// into `g` accumulators by a query slice; its sum against the same arithmetic in Double.
    func testMixBurstDoesGFusedMultiplyAddsPerSlice() {
        var ring = [UInt16](repeating: 0, count: 16 * 8)
        let ringF = (0..<(16 * 8)).map { Float(0.001) * Float($0 % 61) }
        kv_f32_to_f16(ringF, &ring, ring.count)
        var back = [Float](repeating: 0, count: ring.count)
        kv_f16_to_f32(ring, &back, ring.count)
        let q = (0..<64).map { Float(0.01) * Float($0 % 7) }
        for g in 1...8 {
            let iters = 5
            var want = 0.0
            for k in 0..<iters {
                for r in 0..<4 {
                    let slice = (k * 4 + r) & 15
                    for b in 0..<g { for l in 0..<8 { want += Double(q[b * 8 + l]) * Double(back[slice * 8 + l]) } }
                }
            }
            let got = Double(kv_attend_mix_burst(iters, Int32(g)))
            XCTAssertEqual(got, want, accuracy: want * 1e-5, "g = \(g)")
        }
    }

    func testStreamSumWrapsAround() {
        let words: [UInt64] = [.max, 2, 1 << 63, 1 << 63, 12345]
        XCTAssertEqual(kv_stream_sum(words, words.count), words.reduce(0, &+))
        XCTAssertEqual(kv_stream_sum(words, 0), 0)
    }

    /// Both rates, measured on a context's threads, are positive (what they are is the bench's
    /// to report, not a test's to time).
    func testMeasuresBothRatesOnTheContextsThreads() throws {
        let (m, _) = try TinyModel.loaded()
        let ctx = LlamaContext(model: m, threads: 2)
        let f = AttentionFloor.measure(on: ctx, repeats: 1)
        XCTAssertEqual(f.threads, 2)
        XCTAssertGreaterThan(f.slicesPerSecond, 1e6)
        XCTAssertGreaterThan(f.bytesPerSecond, 1e8)
    }
}
