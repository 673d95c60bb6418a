import CKernels
import XCTest

/// `kv_attend` computes each query head by the same arithmetic whether it runs alone (the one-head
/// kernel), in a pair, or as the odd one out of a group: decode and prefill group heads
/// differently, and exact prefix reuse needs bitwise equal results.
final class AttentionKernelTests: XCTestCase {
    func testAQueryHeadGetsTheSameBitsAloneOrInAnyGroup() {
        let n = 77, dh = 64, ld = 192          // 77 keys: chunk and tile tails both occur
        var rng = SystemRandomNumberGenerator()
        // K and V as the cache holds them: f16.
        func f16(_ x: [Float]) -> [UInt16] {
            var out = [UInt16](repeating: 0, count: x.count)
            kv_f32_to_f16(x, &out, x.count)
            return out
        }
        let K = f16((0..<(n * ld)).map { _ in Float.random(in: -1...1, using: &rng) })
        let V = f16((0..<(n * ld)).map { _ in Float.random(in: -1...1, using: &rng) })
        let slotPos = (0..<Int32(n)).map { $0 }
        let heads = 5
        let q = (0..<(heads * dh)).map { _ in Float.random(in: -1...1, using: &rng) }
        let qpos: [Int32] = [76, 40, 76, 3, 60]
        let counts: [Int32] = [77, 41, 77, 4, 61]

        func attend(_ which: [Int]) -> [[Float]] {
            var out = [[Float]](repeating: [Float](repeating: .nan, count: dh), count: which.count)
            var scores = [Float](repeating: 0, count: which.count * n)
            K.withUnsafeBufferPointer { kb in V.withUnsafeBufferPointer { vb in q.withUnsafeBufferPointer { qb in
                slotPos.withUnsafeBufferPointer { sp in
                    let outs = UnsafeMutablePointer<Float>.allocate(capacity: which.count * dh)
                    defer { outs.deallocate() }
                    let qs: [UnsafePointer<Float>?] = which.map { qb.baseAddress! + $0 * dh }
                    let os: [UnsafeMutablePointer<Float>?] = which.indices.map { outs + $0 * dh }
                    kv_attend(Int32(which.count), qs, which.map { qpos[$0] }, which.map { counts[$0] },
                              kb.baseAddress!, vb.baseAddress!, ld, sp.baseAddress!, 0.125, Int32(dh),
                              &scores, n, os)
                    for i in which.indices { out[i] = Array(UnsafeBufferPointer(start: outs + i * dh, count: dh)) }
                }
            } } }
            return out
        }

        let alone = (0..<heads).map { attend([$0])[0] }
        for group in [[0, 1, 2, 3, 4], [4, 3, 2], [1, 0], [2, 4, 0, 3]] {
            let got = attend(group)
            for (i, h) in group.enumerated() {
                let first = (0..<dh).first { got[i][$0].bitPattern != alone[h][$0].bitPattern }
                XCTAssertNil(first, "head \(h) in group \(group): output \(first ?? -1) is \(first.map { got[i][$0] } ?? 0), alone \(first.map { alone[h][$0] } ?? 0)")
            }
        }
        // And the result is attention: a softmax-weighted mean of values, each output within the values' range.
        for h in 0..<heads { XCTAssertTrue(alone[h].allSatisfy { $0.isFinite && abs($0) <= 1 }, "head \(h)") }
    }
}
