import KVCache
import XCTest

final class KVBlockTests: XCTestCase {
    func testLayoutAndOffset() {
        // k[(layer * tokens + token) * kvDim + i] = 1000 * layer + 10 * token + i
        let layers = 2, tokens = 3, dim = 2
        var k: [Float] = []
        for l in 0..<layers { for t in 0..<tokens { for i in 0..<dim { k.append(Float(1000 * l + 10 * t + i)) } } }
        let b = KVBlock(layers: layers, tokenCount: tokens, kvDim: dim, positions: [5, 6, 7], k: k, v: k.map { -$0 })
        XCTAssertEqual(b.offset(layer: 1, token: 2), 10)
        XCTAssertEqual(b.k[b.offset(layer: 1, token: 2) + 1], 1021)
        XCTAssertEqual(b.floatsPerComponent, 12)
        XCTAssertTrue(b.isWellFormed)

        let s = b.slice(tokens: 1..<3)
        XCTAssertEqual(s.tokenCount, 2)
        XCTAssertEqual(s.positions, [6, 7])
        XCTAssertEqual(s.k, [10, 11, 20, 21, 1010, 1011, 1020, 1021])
        XCTAssertEqual(s.v, s.k.map { -$0 })
        XCTAssertEqual(b.slice(tokens: 0..<3), b)
    }

    func testSliceThenConcatenateRestoresTheBlock() {
        let b = Toy.block(tokens: 7, seed: 1, firstPosition: 40)
        let parts = [b.slice(tokens: 0..<3), b.slice(tokens: 3..<4), b.slice(tokens: 4..<7)]
        XCTAssertEqual(parts.map(\.tokenCount), [3, 1, 3])
        XCTAssertEqual(parts[1].positions, [43])
        XCTAssertEqual(KVBlock.concatenate(parts), b)
        XCTAssertEqual(KVBlock.concatenate([b]), b)
    }

    func testConcatenateRejectsMismatchedShapesAndEmpty() {
        let a = Toy.block(tokens: 2, seed: 1)
        let b = Toy.block(tokens: 2, seed: 2, kvDim: 4)
        let c = Toy.block(tokens: 2, seed: 3, layers: 3)
        XCTAssertNil(KVBlock.concatenate([a, b]))
        XCTAssertNil(KVBlock.concatenate([a, c]))
        XCTAssertNil(KVBlock.concatenate([]))
    }

    func testWellFormedness() {
        var b = Toy.block(tokens: 2, seed: 1)
        XCTAssertTrue(b.isWellFormed)
        b.k.removeLast()
        XCTAssertFalse(b.isWellFormed)
        var c = Toy.block(tokens: 2, seed: 1)
        c.positions.append(9)
        XCTAssertFalse(c.isWellFormed)
        var d = Toy.block(tokens: 2, seed: 1)
        d.layers = 0
        XCTAssertFalse(d.isWellFormed)
        let z = KVBlock.zeros(layers: 2, tokenCount: 3, kvDim: 4, firstPosition: 9)
        XCTAssertEqual(z.positions, [9, 10, 11])
        XCTAssertEqual(z.k.count, 24)
        XCTAssertTrue(z.k.allSatisfy { $0 == 0 })
    }
}
