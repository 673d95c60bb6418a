import KVCache
import XCTest

final class KeyTests: XCTestCase {
    let fp = Toy.fingerprint
    let tokens: [Int32] = Array(100..<110)  // 10 tokens: chunks of 4 → [0,4) [4,8) [8,10)

    func testChainShapeAndParents() {
        let chain = PrefixKeys.chain(tokens: tokens, fingerprint: fp, chunkSize: 4)
        XCTAssertEqual(chain.map(\.tokenRange), [0..<4, 4..<8, 8..<10])
        XCTAssertEqual(chain.map(\.index), [0, 1, 2])
        XCTAssertEqual(chain[0].parent, PrefixKeys.root(fp))
        XCTAssertEqual(chain[1].parent, chain[0].digest)
        XCTAssertEqual(chain[2].parent, chain[1].digest)
        XCTAssertEqual(chain[1].digest, PrefixKeys.chunkDigest(parent: chain[0].digest, tokens: tokens[4..<8]))
        XCTAssertEqual(Set(chain.map(\.digest)).count, 3)
        XCTAssertEqual(chain[1].cacheKey, CacheKey(kind: .prefixChunk, digest: chain[1].digest))
        XCTAssertEqual(chain[1].cacheKey.parent, chain[0].digest)
    }

    func testSameTokensSameKeys() {
        let a = PrefixKeys.chain(tokens: tokens, fingerprint: fp, chunkSize: 4)
        let b = PrefixKeys.chain(tokens: Array(tokens), fingerprint: ModelFingerprint(components: ["toy", "layers=2", "kvDim=8"]),
                                 chunkSize: 4)
        XCTAssertEqual(a, b)
    }

    func testChangingATokenInChunk2ChangesChunk2OnwardOnly() {
        var changed = tokens
        changed[5] = 999  // inside the second chunk [4, 8)
        let a = PrefixKeys.chain(tokens: tokens, fingerprint: fp, chunkSize: 4)
        let b = PrefixKeys.chain(tokens: changed, fingerprint: fp, chunkSize: 4)
        XCTAssertEqual(a[0].digest, b[0].digest)
        XCTAssertNotEqual(a[1].digest, b[1].digest)
        XCTAssertNotEqual(a[2].digest, b[2].digest, "chunk 3 has the same tokens but a different parent")
    }

    func testOtherFingerprintChangesEveryKey() {
        let a = PrefixKeys.chain(tokens: tokens, fingerprint: fp, chunkSize: 4)
        let b = PrefixKeys.chain(tokens: tokens, fingerprint: Toy.otherFingerprint, chunkSize: 4)
        XCTAssertEqual(a.count, b.count)
        for (x, y) in zip(a, b) { XCTAssertNotEqual(x.digest, y.digest) }
        XCTAssertNotEqual(SegmentKey(fingerprint: fp, tokens: tokens), SegmentKey(fingerprint: Toy.otherFingerprint, tokens: tokens))
    }

    func testPartialTailChunk() {
        let chain = PrefixKeys.chain(tokens: tokens, fingerprint: fp, chunkSize: 4)
        let tail = chain[2]
        XCTAssertEqual(tail.tokenCount, 2)
        XCTAssertEqual(tail.digest, PrefixKeys.chunkDigest(parent: chain[1].digest, tokens: [108, 109]))
        // The same prefix grown by two tokens fills that chunk: a different key for the longer chunk.
        let longer = PrefixKeys.chain(tokens: tokens + [110, 111], fingerprint: fp, chunkSize: 4)
        XCTAssertEqual(longer.count, 3)
        XCTAssertEqual(Array(longer[0..<2]), Array(chain[0..<2]))
        XCTAssertEqual(longer[2].tokenCount, 4)
        XCTAssertNotEqual(longer[2].digest, tail.digest)
        XCTAssertEqual(longer[2].parent, tail.parent)
    }

    func testShortPromptUnderOneChunkGetsAKey() {
        let chain = PrefixKeys.chain(tokens: [1, 2, 3], fingerprint: fp)  // default chunk size 256
        XCTAssertEqual(PrefixKeys.defaultChunkSize, 256)
        XCTAssertEqual(chain.count, 1)
        XCTAssertEqual(chain[0].tokenRange, 0..<3)
        XCTAssertEqual(chain[0].digest, PrefixKeys.chunkDigest(parent: PrefixKeys.root(fp), tokens: [1, 2, 3]))
        XCTAssertEqual(PrefixKeys.chain(tokens: [], fingerprint: fp).count, 0)
    }

    func testChunkCountsForExactMultiplesAndDegenerateChunkSize() {
        XCTAssertEqual(PrefixKeys.chain(tokens: Array(0..<8), fingerprint: fp, chunkSize: 4).map(\.tokenCount), [4, 4])
        XCTAssertEqual(PrefixKeys.chain(tokens: Array(0..<3), fingerprint: fp, chunkSize: 0).map(\.tokenCount), [1, 1, 1])
        XCTAssertEqual(PrefixKeys.chain(tokens: Array(0..<600), fingerprint: fp).map(\.tokenCount), [256, 256, 88])
    }

    func testChunkSizeIsPartOfTheChain() {
        let a = PrefixKeys.chain(tokens: tokens, fingerprint: fp, chunkSize: 4)
        let b = PrefixKeys.chain(tokens: tokens, fingerprint: fp, chunkSize: 5)
        XCTAssertNotEqual(a[0].digest, b[0].digest)
    }

    func testSegmentKeyIndependentOfPosition() {
        let doc: [Int32] = [7, 8, 9, 10]
        let promptA: [Int32] = [1, 2] + doc + [3]
        let promptB: [Int32] = [5, 5, 5, 5, 5] + doc
        let a = SegmentKey(fingerprint: fp, tokens: promptA[2..<6])
        let b = SegmentKey(fingerprint: fp, tokens: promptB[5..<9])
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.tokenCount, 4)
        XCTAssertNotEqual(a, SegmentKey(fingerprint: fp, tokens: [7, 8, 9, 11]))
        XCTAssertNotEqual(a, SegmentKey(fingerprint: fp, tokens: [7, 8, 9]))
    }

    func testSegmentContextChangesKey() {
        let doc: [Int32] = [7, 8, 9]
        let sys1 = SegmentKey.context(tokens: [1, 2, 3])
        let sys2 = SegmentKey.context(tokens: [1, 2, 4])
        let plain = SegmentKey(fingerprint: fp, tokens: doc)
        let in1 = SegmentKey(fingerprint: fp, tokens: doc, context: sys1)
        XCTAssertNotEqual(plain, in1)
        XCTAssertNotEqual(in1, SegmentKey(fingerprint: fp, tokens: doc, context: sys2))
        XCTAssertEqual(in1, SegmentKey(fingerprint: fp, tokens: doc, context: SegmentKey.context(tokens: [1, 2, 3])))
        XCTAssertNotEqual(plain.cacheKey, in1.cacheKey)
        // A zero context is still a context, not "none".
        XCTAssertNotEqual(plain, SegmentKey(fingerprint: fp, tokens: doc, context: .zero))
    }

    func testSegmentAndPrefixKeysNeverCollide() {
        let chain = PrefixKeys.chain(tokens: [1, 2, 3], fingerprint: fp)
        let seg = SegmentKey(fingerprint: fp, tokens: [1, 2, 3])
        XCTAssertNotEqual(chain[0].digest, seg.digest)
        XCTAssertNotEqual(chain[0].cacheKey, CacheKey(kind: .segment, digest: chain[0].digest), "kind is part of identity")
    }

    func testFingerprintConstruction() {
        let a = ModelFingerprint(components: ["llama", "30"])
        XCTAssertEqual(a, ModelFingerprint(components: ["llama", "30"]))
        XCTAssertNotEqual(a, ModelFingerprint(components: ["llama3", "0"]))
        XCTAssertNotEqual(a, ModelFingerprint(components: ["llama", "30", ""]))
        let b = ModelFingerprint { h in
            h.combine("llama")
            h.combine(30)
            h.combine(bytes: [1, 2, 3])
        }
        let c = ModelFingerprint { h in
            h.combine("llama")
            h.combine(30)
            h.combine(bytes: [1, 2, 4])
        }
        XCTAssertNotEqual(b, c)
        XCTAssertEqual("\(a)".count, 12)
    }

    func testKeysPrintAsShortHex() {
        let chain = PrefixKeys.chain(tokens: tokens, fingerprint: fp, chunkSize: 4)
        XCTAssertEqual("\(chain[2].cacheKey)", "p:" + chain[2].digest.hex.prefix(12))
        XCTAssertEqual("\(chain[2])", "p:\(chain[2].digest.shortHex)[8..<10]")
        let seg = SegmentKey(fingerprint: fp, tokens: [1])
        XCTAssertEqual("\(seg.cacheKey)", "s:" + seg.digest.hex.prefix(12))
    }

    /// Pins the key derivation: changing it silently orphans every cache on disk.
    func testKeyDerivationIsPinned() {
        let fingerprint = ModelFingerprint(components: ["pinned"])
        let chain = PrefixKeys.chain(tokens: [1, 2, 3, 4, 5], fingerprint: fingerprint, chunkSize: 4)
        let seg = SegmentKey(fingerprint: fingerprint, tokens: [1, 2, 3])
        XCTAssertEqual(fingerprint.digest.hex, "ce15aa6733d2c13f58cd3f662a270c36")
        XCTAssertEqual(chain.map(\.digest.hex), ["2dd5f003535d38dfb85993e941bead72", "0d43fc7dd05232b14365d587287196a0"])
        XCTAssertEqual(seg.digest.hex, "25efcd1749fb7dec6e84368318e22113")
    }
}
