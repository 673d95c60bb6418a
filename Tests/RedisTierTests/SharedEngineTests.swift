import Engine
import Foundation
import KVCache
import RedisTier
import XCTest

/// Engines sharing KV through a real redis-server (the tiny model; the real model in the bench).
final class SharedEngineTests: XCTestCase {
    static let system = PromptSegment(role: .system, tokens: Fixture.tokens(40, seed: 1))
    static let document = PromptSegment(role: .document(id: "d"), tokens: Fixture.tokens(300, seed: 2))
    static let suffix: [Int32] = [2, 12]

    func request(question seed: UInt64) -> EngineRequest {
        EngineRequest(segments: [Self.system, Self.document,
                                 PromptSegment(role: .question, tokens: Fixture.tokens(12, seed: seed))],
                      maxTokens: 8, turnSuffix: Self.suffix)
    }

    func testSecondEngineReusesFirstEnginesKV() throws {
        let url = try RedisServer.sharedURL()
        let (model, tok) = try Fixture.tinyModel()
        // Clean namespace for this model on the shared server.
        let cleaner = Fixture.engineTier(url, model: model)
        cleaner.removeAll()
        cleaner.close()

        let baseline = BaselineEngine(model: model, tokenizer: tok, threads: 1)
        let req = request(question: 3)
        let want = try baseline.generate(req, cancel: nil) { _ in }

        let tierA = Fixture.engineTier(url, model: model)
        let first = try ReuseEngine(model: model, tokenizer: tok, threads: 1, options: Fixture.options([tierA]))
        let a = try first.generate(req, cancel: nil) { _ in }
        XCTAssertEqual(a.tokens, want.tokens)
        XCTAssertEqual(a.stats[tier: "remote"]?.hitTokens, 0, "the server starts empty")
        XCTAssertTrue(tierA.drain(timeout: 20))
        XCTAssertGreaterThan(tierA.tierStats.entries, 0, "the first engine wrote its chunks and segments")
        tierA.close()

        // A second engine: empty RAM, no disk, its own connection; only the server is shared.
        let tierB = Fixture.engineTier(url, model: model)
        defer { tierB.close() }
        let second = try ReuseEngine(model: model, tokenizer: tok, threads: 1, options: Fixture.options([tierB]))
        let b = try second.generate(req, cancel: nil) { _ in }
        let remote = try XCTUnwrap(b.stats[tier: "remote"])
        XCTAssertEqual(b.stats.reusedExact, req.promptTokens.count - 1, "exact reuse of all but the last token")
        XCTAssertEqual(remote.hitTokens, req.promptTokens.count - 1, "all of it from the remote tier")
        XCTAssertEqual(b.stats.tiers.reduce(0) { $0 + $1.hitTokens }, b.stats.reusedTokens, "tiers add up to the reuse")
        XCTAssertEqual(remote.roundTrips, 1, "one pipelined round trip for the whole chain and segments")
        XCTAssertGreaterThan(remote.bytesRead, 0)
        XCTAssertEqual(b.tokens, want.tokens, "identical greedy tokens on exact reuse")
        XCTAssertEqual(remote.rejectedEntries, 0)

        // Promoted into RAM: asking again is answered locally, no remote read.
        second.forgetLiveContext()
        let c = try second.generate(req, cancel: nil) { _ in }
        XCTAssertEqual(c.stats[tier: "ram"]?.hitTokens, req.promptTokens.count - 1)
        XCTAssertEqual(c.stats[tier: "remote"]?.hitTokens, 0)
        // The chain is local now; the reusable segments were only asked about (not read, as the
        // chain covered them), so they are asked about again: one round trip, no bodies.
        XCTAssertEqual(c.stats[tier: "remote"]?.roundTrips, 1, "one question about the segments")
        XCTAssertEqual(c.stats[tier: "remote"]?.bytesRead, 0, "nothing read: the chain is local")
        XCTAssertEqual(c.tokens, want.tokens)
    }

    func testServerKilledMidRequestTurnCompletesLocally() throws {
        let server = try RedisServer.start()
        let (model, tok) = try Fixture.tinyModel()
        let baseline = BaselineEngine(model: model, tokenizer: tok, threads: 1)
        let req = request(question: 4)
        let want = try baseline.generate(req, cancel: nil) { _ in }

        let tierA = Fixture.engineTier(server.url, model: model)
        _ = try ReuseEngine(model: model, tokenizer: tok, threads: 1, options: Fixture.options([tierA]))
            .generate(req, cancel: nil) { _ in }
        XCTAssertTrue(tierA.drain(timeout: 20))
        tierA.close(timeout: 0)

        let tierB = Fixture.engineTier(server.url, model: model)
        defer { tierB.close(timeout: 0) }
        XCTAssertEqual(tierB.state, .ok)
        let second = try ReuseEngine(model: model, tokenizer: tok, threads: 1, options: Fixture.options([tierB]))
        // Killed once the request has started, before its remote read.
        let b = try second.generate(req, cancel: nil) { e in
            if case .started = e { server.kill() }
        }
        XCTAssertEqual(b.tokens, want.tokens, "the turn completes from the local tiers, same answer")
        XCTAssertEqual(b.stats[tier: "remote"]?.hitTokens, 0)
        XCTAssertEqual(b.stats.computedFresh, req.promptTokens.count)
        XCTAssertNotEqual(tierB.state, .ok)

        // The next turn (server still down) works too, answering from RAM.
        let c = try second.generate(request(question: 5), cancel: nil) { _ in }
        XCTAssertGreaterThan(c.stats[tier: "ram"]?.hitTokens ?? 0, 0)
        XCTAssertFalse(c.tokens.isEmpty)
    }

    func testValueCorruptedThroughServerIsNotUsed() throws {
        let server = try RedisServer.start()
        defer { server.kill() }
        let (model, tok) = try Fixture.tinyModel()
        let baseline = BaselineEngine(model: model, tokenizer: tok, threads: 1)
        let req = request(question: 6)
        let want = try baseline.generate(req, cancel: nil) { _ in }
        let tierA = Fixture.engineTier(server.url, model: model)
        _ = try ReuseEngine(model: model, tokenizer: tok, threads: 1, options: Fixture.options([tierA]))
            .generate(req, cancel: nil) { _ in }
        XCTAssertTrue(tierA.drain(timeout: 20))
        tierA.close()

        // Flip a byte deep in every value on the server.
        guard case .array(let keys)? = rawCommand(server.url, ["KEYS", "kvduel:v1:*"]) else { return XCTFail() }
        XCTAssertFalse(keys.isEmpty)
        for case .string(let k) in keys {
            guard case .string(var v)? = rawCommand(server.url, [Array("GET".utf8), k]) else { return XCTFail() }
            v[v.count / 2] ^= 0x01
            XCTAssertEqual(rawCommand(server.url, [Array("SET".utf8), k, v]), .status("OK"))
        }
        let tierB = Fixture.engineTier(server.url, model: model)
        defer { tierB.close() }
        let b = try ReuseEngine(model: model, tokenizer: tok, threads: 1, options: Fixture.options([tierB]))
            .generate(req, cancel: nil) { _ in }
        XCTAssertEqual(b.stats[tier: "remote"]?.hitTokens, 0, "no corrupted KV used")
        XCTAssertGreaterThan(b.stats[tier: "remote"]?.rejectedEntries ?? 0, 0, "and the rejections are counted")
        XCTAssertEqual(b.tokens, want.tokens)
    }

    func testWrongSecretAndOtherModelGetNoHits() throws {
        let server = try RedisServer.start()
        defer { server.kill() }
        let (model, tok) = try Fixture.tinyModel()
        let (other, otherTok) = try Fixture.tinyModel(seed: 11)
        let req = request(question: 7)
        let tierA = Fixture.engineTier(server.url, model: model, secret: "right")
        _ = try ReuseEngine(model: model, tokenizer: tok, threads: 1, options: Fixture.options([tierA]))
            .generate(req, cancel: nil) { _ in }
        XCTAssertTrue(tierA.drain(timeout: 20))
        tierA.close()

        let wrong = Fixture.engineTier(server.url, model: model, secret: "wrong")
        defer { wrong.close() }
        let b = try ReuseEngine(model: model, tokenizer: tok, threads: 1, options: Fixture.options([wrong]))
            .generate(req, cancel: nil) { _ in }
        XCTAssertEqual(b.stats[tier: "remote"]?.hitTokens, 0)
        XCTAssertGreaterThan(wrong.rejections[.badMAC] ?? 0, 0)

        let otherTier = Fixture.engineTier(server.url, model: other, secret: "right")
        defer { otherTier.close() }
        let c = try ReuseEngine(model: other, tokenizer: otherTok, threads: 1, options: Fixture.options([otherTier]))
            .generate(req, cancel: nil) { _ in }
        XCTAssertEqual(c.stats[tier: "remote"]?.hitTokens, 0, "another model's KV is never found")
        XCTAssertEqual(c.stats.reusedTokens, 0)
    }
}
