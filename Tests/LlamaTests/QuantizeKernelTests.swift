import CKernels
import XCTest

/// `kv_quantize_rows` (vectorised) against a plain Swift statement of the rule: per block of 32,
/// d = max|x| / 127, code = round-half-away-from-zero(x · (1/d)), scale and scaled code sum
/// rounded to f16. Exact equality: every code and every scale.
final class QuantizeKernelTests: XCTestCase {
    struct Quantised: Equatable { var codes: [Int8]; var scales: [Float]; var sums: [Float] }

    func kernel(_ x: [Float], rows: Int, k: Int) -> Quantised {
        var q = Quantised(codes: .init(repeating: 0, count: rows * k), scales: .init(repeating: 0, count: rows * k / 32),
                          sums: .init(repeating: 0, count: rows * k / 32))
        kv_quantize_rows(x, k, Int32(rows), Int32(k), &q.codes, &q.scales, &q.sums, nil, nil, nil)
        return q
    }

    func reference(_ x: [Float], rows: Int, k: Int) -> Quantised {
        var q = Quantised(codes: [], scales: [], sums: [])
        for b in 0..<(rows * k / 32) {
            let block = x[(b * 32)..<((b + 1) * 32)]
            let amax = block.map { abs($0) }.max()!
            let d = amax / 127, id: Float = d > 0 ? 1 / d : 0
            let codes = block.map { Int8(($0 * id).rounded(.toNearestOrAwayFromZero)) }
            q.codes += codes
            q.scales.append(Float(Float16(d)))
            q.sums.append(Float(Float16(d * Float(codes.reduce(0) { $0 + Int($1) }))))
        }
        return q
    }

    func check(_ x: [Float], rows: Int, k: Int, _ label: String) {
        let got = kernel(x, rows: rows, k: k), want = reference(x, rows: rows, k: k)
        XCTAssertEqual(got.codes.count, want.codes.count, label)
        if let i = got.codes.indices.first(where: { got.codes[$0] != want.codes[$0] }) {
            XCTFail("\(label): first code mismatch at \(i): x = \(x[i]), kernel \(got.codes[i]), reference \(want.codes[i])")
        }
        XCTAssertEqual(got.scales, want.scales, label)
        XCTAssertEqual(got.sums, want.sums, label)
    }

    func testHalvesRoundAwayFromZero() {
        // max|x| = 127 gives d = 1, so these are the scaled values themselves.
        var block: [Float] = [127, -126.5, 2.5, -2.5, 0.5, -0.5, 3.5, -3.5, 0.49999997, -0.49999997, 1.5, -1.5,
                              0, -0.0, 126.5, 1.4999999, 64.5, -64.5]
        block += [Float](repeating: 7.25, count: 32 - block.count)
        let got = kernel(block, rows: 1, k: 32)
        XCTAssertEqual(Array(got.codes.prefix(18)), [127, -127, 3, -3, 1, -1, 4, -4, 0, 0, 2, -2, 0, 0, 127, 1, 65, -65])
        check(block, rows: 1, k: 32, "halves")
    }

    func testRandomRowsMatchTheRule() {
        var rng = SystemRandomNumberGenerator()
        let rows = 5, k = 576
        var x = (0..<(rows * k)).map { _ in Float.random(in: -3...3, using: &rng) }
        for i in stride(from: 0, to: x.count, by: 97) { x[i] *= 40 }           // outliers, as real activations have
        for i in 64..<96 { x[i] = 0 }                                             // an all-zero block: d = 0, codes 0
        check(x, rows: rows, k: k, "random")
    }
}
