import Foundation
import Llama
import XCTest

/// kvduel's final logits against a reference's (llama.cpp's): top-1, top-10 overlap, KL.
struct ReferenceComparison {
    let top1: Int, refTop1: Int
    let overlap: Int
    let kl: Double
    let maxAbs: Float
    let refTop: [Int], top: [Int]

    init(_ got: [Float], _ ref: [Float]) {
        let topOf = { (x: [Float]) in Array(x.indices.sorted { x[$0] > x[$1] }.prefix(10)) }
        refTop = topOf(ref); top = topOf(got)
        top1 = top[0]; refTop1 = refTop[0]
        overlap = Set(refTop).intersection(top).count
        kl = Divergence.kl(ref, got)
        maxAbs = zip(got, ref).map { abs($0 - $1) }.max() ?? .infinity
    }

    /// The project's tolerances: top-1 equal, top-10 overlap ≥ 8, KL(reference ‖ kvduel) ≤ 0.01.
    var withinTolerance: Bool { top1 == refTop1 && overlap >= 8 && kl <= 0.01 }
    var summary: String {
        "top1 \(top1) (ref \(refTop1)), top-10 overlap \(overlap)/10, KL \(String(format: "%.5f", kl)), max |Δlogit| \(maxAbs)"
    }
}

/// Asserts the tolerances, printing the figures and, on failure, the first mismatches.
@discardableResult
func assertMatchesReference(_ got: [Float], _ ref: [Float], _ label: String,
                            file: StaticString = #filePath, line: UInt = #line) -> ReferenceComparison {
    XCTAssertEqual(got.count, ref.count, file: file, line: line)
    let c = ReferenceComparison(got, ref)
    print("golden \(label): \(c.summary)")
    XCTAssertEqual(c.top1, c.refTop1, "\(label): top-1 differs; ours \(c.top.prefix(5)) vs reference \(c.refTop.prefix(5))", file: file, line: line)
    XCTAssertGreaterThanOrEqual(c.overlap, 8, "\(label): top-10 ours \(c.top) vs reference \(c.refTop)", file: file, line: line)
    XCTAssertLessThanOrEqual(c.kl, 0.01, "\(label): KL(ref || kvduel) = \(c.kl)", file: file, line: line)
    return c
}
