import KVCache
import XCTest

/// What every `KVTier` promises, checked the same way for RAM, disk and remote tiers.
/// `settle` waits until the tier's writes are visible (a remote tier writes asynchronously).
/// The tier must start empty for the keys used here and hold at least 64 KiB.
public func checkTierContract(_ tier: any KVTier, settle: () -> Void = {},
                              file: StaticString = #filePath, line: UInt = #line) {
    func key(_ i: UInt64, _ kind: CacheKey.Kind = .segment) -> CacheKey {
        CacheKey(kind: kind, digest: Digest128(hi: 0xC0417AC7, lo: i), parent: kind == .prefixChunk ? Digest128(hi: 1, lo: 2) : .zero)
    }
    func entry(_ seed: Int, tokens: Int = 3) -> EncodedKV {
        let n = 2 * tokens * 8
        return EncodedKV(KVBlock(layers: 2, tokenCount: tokens, kvDim: 8, positions: (0..<Int32(tokens)).map { $0 + 5 },
                                 k: (0..<n).map { Float(($0 + seed) % 23) / 7 - 1.5 },
                                 v: (0..<n).map { Float(($0 * 3 + seed) % 19) / 5 - 2 }), encoding: .int8)
    }
    let name = tier.name
    XCTAssertFalse(name.isEmpty, file: file, line: line)
    XCTAssertNil(tier.get(key(1)), "\(name): empty tier misses", file: file, line: line)
    XCTAssertFalse(tier.contains(key(1)), "\(name): contains on an empty tier", file: file, line: line)

    XCTAssertTrue(tier.put(key(1), entry(1)).isStored, "\(name): put", file: file, line: line)
    XCTAssertTrue(tier.put(key(2, .prefixChunk), entry(2, tokens: 5)).isStored, "\(name): put", file: file, line: line)
    settle()
    XCTAssertTrue(tier.contains(key(1)), "\(name): contains after put", file: file, line: line)
    XCTAssertEqual(tier.get(key(1)), entry(1), "\(name): get returns what was put", file: file, line: line)
    XCTAssertEqual(tier.get(key(2, .prefixChunk)), entry(2, tokens: 5), "\(name): prefix chunk", file: file, line: line)
    let batch = tier.fetch([key(1), key(2, .prefixChunk), key(3)])
    XCTAssertEqual(batch.count, 2, "\(name): fetch finds exactly the stored keys", file: file, line: line)
    XCTAssertEqual(batch[key(1)], entry(1), file: file, line: line)

    // Stream: entries in the order asked, nil for a key not held; a stop ends it, and the tier
    // stays in step (a remote tier drains the replies still in flight).
    var streamed: [(CacheKey, EncodedKV?)] = []
    tier.stream([key(2, .prefixChunk), key(3), key(1)]) { k, v in streamed.append((k, v)); return true }
    XCTAssertEqual(streamed.map(\.0), [key(2, .prefixChunk), key(3), key(1)], "\(name): stream keeps the order", file: file, line: line)
    XCTAssertEqual(streamed.first?.1, entry(2, tokens: 5), "\(name): stream returns what was put", file: file, line: line)
    XCTAssertNil(streamed.dropFirst().first?.1 ?? nil, "\(name): stream misses a key not held", file: file, line: line)
    XCTAssertEqual(streamed.last?.1, entry(1), file: file, line: line)
    var calls = 0
    tier.stream([key(1), key(2, .prefixChunk), key(1), key(2, .prefixChunk)]) { _, _ in calls += 1; return false }
    XCTAssertEqual(calls, 1, "\(name): returning false stops the stream", file: file, line: line)
    XCTAssertEqual(tier.get(key(2, .prefixChunk)), entry(2, tokens: 5), "\(name): reads after a stopped stream stay in step", file: file, line: line)

    // Replace.
    XCTAssertTrue(tier.put(key(1), entry(9)).isStored, "\(name): replace", file: file, line: line)
    settle()
    XCTAssertEqual(tier.get(key(1)), entry(9), "\(name): get after replace", file: file, line: line)

    // Remove.
    XCTAssertTrue(tier.remove(key(1)), "\(name): remove an entry held", file: file, line: line)
    XCTAssertFalse(tier.remove(key(1)), "\(name): remove again", file: file, line: line)
    XCTAssertNil(tier.get(key(1)), "\(name): gone after remove", file: file, line: line)
    XCTAssertEqual(tier.get(key(2, .prefixChunk)), entry(2, tokens: 5), "\(name): others kept", file: file, line: line)

    let s = tier.tierStats
    XCTAssertEqual(s.name, name, file: file, line: line)
    XCTAssertEqual(s.rejectedEntries, 0, "\(name): nothing rejected", file: file, line: line)
    XCTAssertEqual(s.writeErrors, 0, "\(name): no write errors", file: file, line: line)
    tier.resetCounters()
    XCTAssertEqual(tier.tierStats.hits, 0, "\(name): counters reset", file: file, line: line)
}
