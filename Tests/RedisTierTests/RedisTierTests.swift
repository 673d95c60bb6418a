import Engine
import Foundation
import KVCache
import RedisTier
import TestSupport
import XCTest

/// The remote tier against a real redis-server.
final class RedisTierTests: XCTestCase {
    func testRoundTripInOneFetch() throws {
        let url = try RedisServer.sharedURL()
        let fp = Fixture.uniqueFingerprint()
        let writer = Fixture.tier(url, fingerprint: fp)
        defer { writer.close() }
        XCTAssertEqual(writer.state, .ok)
        for i in 0..<3 { XCTAssertTrue(writer.put(Fixture.key(i), Fixture.entry(i)).isStored) }
        XCTAssertTrue(writer.drain(timeout: 10))
        XCTAssertEqual(writer.tierStats.bytesWritten, 3 * (128 + Fixture.entry(0).byteCount))

        let reader = Fixture.tier(url, fingerprint: fp)
        defer { reader.close() }
        let got = reader.fetch((0..<4).map(Fixture.key))
        XCTAssertEqual(got.count, 3, "three stored, one never written")
        for i in 0..<3 { XCTAssertEqual(got[Fixture.key(i)], Fixture.entry(i), "entry \(i) intact") }
        XCTAssertNil(got[Fixture.key(3)])
        let s = reader.tierStats
        XCTAssertEqual(s.roundTrips, 1, "all four keys in one round trip")
        XCTAssertEqual(s.bytesRead, 3 * (128 + Fixture.entry(0).byteCount))
        XCTAssertEqual(s.rejectedEntries, 0)
        XCTAssertEqual(s.state, "ok")

        // Keys: namespaced, versioned, model- and encoding-keyed, no content.
        let k = String(decoding: reader.redisKey(Fixture.key(1)), as: UTF8.self)
        XCTAssertEqual(k, "kvduel:v1:\(fp.digest.hex):int8:segment:\(Fixture.key(1).digest.hex)")
    }

    /// A stream is one round trip; each reply is counted as it arrives, so a reader that stops
    /// early still sees what it read; a damaged value in the stream is rejected, counted and
    /// handed over as nil, and the stream goes on.
    func testStreamCountsEachReplyAndRejectsDamage() throws {
        let url = try RedisServer.sharedURL()
        let fp = Fixture.uniqueFingerprint()
        let tier = Fixture.tier(url, fingerprint: fp)
        defer { tier.close() }
        for i in 0..<5 { tier.put(Fixture.key(i), Fixture.entry(i)) }
        XCTAssertTrue(tier.drain(timeout: 10))
        let k2 = tier.redisKey(Fixture.key(2))
        guard case .string(var v2)? = rawCommand(url, [Array("GET".utf8), k2]) else { return XCTFail("value not on the server") }
        v2[200] ^= 0x40
        XCTAssertEqual(rawCommand(url, [Array("SET".utf8), k2, v2]), .status("OK"))
        let one = 128 + Fixture.entry(0).byteCount

        tier.resetCounters()
        var seen: [Int?] = []
        tier.stream((0..<6).map(Fixture.key)) { k, v in
            seen.append(v.map { _ in (0..<6).first { Fixture.key($0) == k }! })
            return true
        }
        XCTAssertEqual(seen, [0, 1, nil, 3, 4, nil], "in order; the damaged entry and the missing key are nil")
        var s = tier.tierStats
        XCTAssertEqual(s.roundTrips, 1)
        XCTAssertEqual(s.bytesRead, 5 * one, "every value read, the damaged one included")
        XCTAssertEqual(s.rejectedEntries, 1)
        XCTAssertEqual(tier.rejections[.checksumMismatch], 1)

        tier.resetCounters()
        var calls = 0
        tier.stream((0..<5).map(Fixture.key)) { _, _ in
            calls += 1
            // Counted before the caller sees the entry.
            XCTAssertEqual(tier.tierStats.bytesRead, calls * one)
            return calls < 2
        }
        XCTAssertEqual(calls, 2)
        s = tier.tierStats
        XCTAssertEqual(s.bytesRead, 2 * one, "replies drained after the stop are not counted as read for the caller")
        XCTAssertEqual(tier.fetch([Fixture.key(4)])[Fixture.key(4)], Fixture.entry(4), "the connection stays in step")
    }

    func testCorruptAndTruncatedValuesAreRejectedAndCounted() throws {
        let url = try RedisServer.sharedURL()
        let fp = Fixture.uniqueFingerprint()
        let tier = Fixture.tier(url, fingerprint: fp)
        defer { tier.close() }
        for i in 0..<3 { tier.put(Fixture.key(i), Fixture.entry(i)) }
        XCTAssertTrue(tier.drain(timeout: 10))
        // Flip one body byte of entry 0 and cut entry 1 short, through the server.
        let k0 = tier.redisKey(Fixture.key(0)), k1 = tier.redisKey(Fixture.key(1))
        guard case .string(var v0)? = rawCommand(url, [Array("GET".utf8), k0]),
              case .string(let v1)? = rawCommand(url, [Array("GET".utf8), k1]) else { return XCTFail("values not on the server") }
        v0[200] ^= 0x40
        XCTAssertEqual(rawCommand(url, [Array("SET".utf8), k0, v0]), .status("OK"))
        XCTAssertEqual(rawCommand(url, [Array("SET".utf8), k1, Array(v1.prefix(v1.count - 5))]), .status("OK"))

        let got = tier.fetch((0..<3).map(Fixture.key))
        XCTAssertNil(got[Fixture.key(0)], "corrupt value never used")
        XCTAssertNil(got[Fixture.key(1)], "truncated value never used")
        XCTAssertEqual(got[Fixture.key(2)], Fixture.entry(2), "the others are unaffected")
        XCTAssertEqual(tier.tierStats.rejectedEntries, 2)
        XCTAssertEqual(tier.rejections[.checksumMismatch], 1)
        XCTAssertEqual(tier.rejections[.truncated], 1)
    }

    func testSecretRejectsWrongAndMissingMAC() throws {
        let url = try RedisServer.sharedURL()
        let fp = Fixture.uniqueFingerprint()
        let alice = Fixture.tier(url, fingerprint: fp, secret: "alice's secret")
        let plain = Fixture.tier(url, fingerprint: fp)
        let eve = Fixture.tier(url, fingerprint: fp, secret: "eve's guess")
        defer { alice.close(); plain.close(); eve.close() }
        alice.put(Fixture.key(0), Fixture.entry(0))
        plain.put(Fixture.key(1), Fixture.entry(1))   // a writer without the secret
        XCTAssertTrue(alice.drain(timeout: 10) && plain.drain(timeout: 10))

        let a = alice.fetch([Fixture.key(0), Fixture.key(1)])
        XCTAssertEqual(a[Fixture.key(0)], Fixture.entry(0), "own MAC verifies")
        XCTAssertNil(a[Fixture.key(1)], "an entry without a MAC is rejected")
        XCTAssertEqual(alice.rejections[.missingMAC], 1)

        let e = eve.fetch([Fixture.key(0)])
        XCTAssertNil(e[Fixture.key(0)], "wrong secret: rejected")
        XCTAssertEqual(eve.rejections[.badMAC], 1)

        // A MAC'd value moved to another key does not verify there (the MAC covers the key).
        guard case .string(let v)? = rawCommand(url, [Array("GET".utf8), alice.redisKey(Fixture.key(0))]) else { return XCTFail() }
        XCTAssertEqual(rawCommand(url, [Array("SET".utf8), alice.redisKey(Fixture.key(5)), v]), .status("OK"))
        XCTAssertNil(alice.fetch([Fixture.key(5)])[Fixture.key(5)])
        XCTAssertEqual(alice.tierStats.rejectedEntries, 2)
    }

    func testOtherModelAndOtherEncodingAreRejected() throws {
        let url = try RedisServer.sharedURL()
        let fpA = Fixture.uniqueFingerprint(), fpB = Fixture.uniqueFingerprint()
        let a = Fixture.tier(url, fingerprint: fpA)
        let b = Fixture.tier(url, fingerprint: fpB)
        let a16 = Fixture.tier(url, fingerprint: fpA, encoding: .f16)
        defer { a.close(); b.close(); a16.close() }
        a.put(Fixture.key(0), Fixture.entry(0))
        a16.put(Fixture.key(1), Fixture.entry(1, encoding: .f16))
        XCTAssertTrue(a.drain(timeout: 10) && a16.drain(timeout: 10))

        // Model B never asks for model A's keys...
        XCTAssertTrue(b.fetch([Fixture.key(0)]).isEmpty)
        XCTAssertEqual(b.tierStats.rejectedEntries, 0)
        // ...and A's value planted under B's key is rejected as foreign.
        guard case .string(let v)? = rawCommand(url, [Array("GET".utf8), a.redisKey(Fixture.key(0))]) else { return XCTFail() }
        XCTAssertEqual(rawCommand(url, [Array("SET".utf8), b.redisKey(Fixture.key(0)), v]), .status("OK"))
        XCTAssertNil(b.fetch([Fixture.key(0)])[Fixture.key(0)])
        XCTAssertEqual(b.rejections[.foreignModel], 1)

        // An f16 entry planted under the int8 key: rejected, not decoded as int8.
        guard case .string(let w)? = rawCommand(url, [Array("GET".utf8), a16.redisKey(Fixture.key(1))]) else { return XCTFail() }
        XCTAssertEqual(rawCommand(url, [Array("SET".utf8), a.redisKey(Fixture.key(1)), w]), .status("OK"))
        XCTAssertNil(a.fetch([Fixture.key(1)])[Fixture.key(1)])
        XCTAssertEqual(a.rejections[.wrongEncoding], 1)
    }

    func testUnreachableAtStartThenRecovers() throws {
        // A port nothing listens on: start a private server there later.
        let server = try RedisServer.start()
        let url = server.url
        server.kill()
        let tier = Fixture.tier(url, fingerprint: Fixture.uniqueFingerprint())
        defer { tier.close(timeout: 0) }
        XCTAssertEqual(tier.state, .unreachable)
        XCTAssertTrue(tier.fetch([Fixture.key(0)]).isEmpty, "reads answer nothing while unreachable")
        XCTAssertFalse(tier.put(Fixture.key(0), Fixture.entry(0)).isStored, "writes are dropped, not queued")
        XCTAssertEqual(tier.tierStats.droppedWrites, 1)
        XCTAssertEqual(tier.tierStats.state, "unreachable")

        // The server comes up on that port: the tier reconnects by itself (backoff ≤ 8 s).
        let bin = try XCTUnwrap(RedisServer.binary)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["--port", "\(url.port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", NSTemporaryDirectory()]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        XCTAssertTrue(eventually(20) { tier.state == .ok }, "reconnected; last error \(tier.lastError ?? "-")")
        XCTAssertTrue(tier.put(Fixture.key(0), Fixture.entry(0)).isStored)
        XCTAssertTrue(tier.drain(timeout: 10))
        XCTAssertEqual(tier.fetch([Fixture.key(0)])[Fixture.key(0)], Fixture.entry(0))
    }

    func testServerKilledWhileConnected() throws {
        let server = try RedisServer.start()
        let tier = Fixture.tier(server.url, fingerprint: Fixture.uniqueFingerprint())
        defer { tier.close(timeout: 0) }
        tier.put(Fixture.key(0), Fixture.entry(0))
        XCTAssertTrue(tier.drain(timeout: 10))
        XCTAssertEqual(tier.fetch([Fixture.key(0)]).count, 1)
        server.kill()
        XCTAssertTrue(tier.fetch([Fixture.key(0)]).isEmpty, "a dead server answers nothing")
        XCTAssertNotEqual(tier.state, .ok)
        XCTAssertTrue(eventually(10) { tier.tierStats.state == "unreachable" }, "reported after a failed reconnect")
        XCTAssertFalse(tier.put(Fixture.key(1), Fixture.entry(1)).isStored)
        XCTAssertGreaterThanOrEqual(tier.tierStats.droppedWrites, 1)
    }

    func testAuthFromURL() throws {
        let server = try RedisServer.start()
        defer { server.kill() }
        XCTAssertEqual(rawCommand(server.url, ["CONFIG", "SET", "requirepass", "pa55"]), .status("OK"))
        let fp = Fixture.uniqueFingerprint()
        let noAuth = Fixture.tier(server.url, fingerprint: fp)
        defer { noAuth.close(timeout: 0) }
        XCTAssertNotEqual(noAuth.state, .ok, "no password: refused")
        var u = server.url
        u.password = "pa55"
        let withAuth = Fixture.tier(u, fingerprint: fp)
        defer { withAuth.close() }
        XCTAssertEqual(withAuth.state, .ok, withAuth.lastError ?? "")
        withAuth.put(Fixture.key(0), Fixture.entry(0))
        XCTAssertTrue(withAuth.drain(timeout: 10))
        XCTAssertEqual(withAuth.fetch([Fixture.key(0)])[Fixture.key(0)], Fixture.entry(0))
    }

    func testFullQueueDropsAndCounts() throws {
        let url = try RedisServer.sharedURL()
        let tier = RedisTier(.init(url: url, fingerprint: Fixture.uniqueFingerprint(), encoding: .int8, shape: (2, 8),
                                   maxQueuedWrites: 4, maxQueuedBytes: 1 << 20))
        defer { tier.close() }
        var stored = 0
        for i in 0..<200 where tier.put(Fixture.key(i), Fixture.entry(i)).isStored { stored += 1 }
        XCTAssertTrue(tier.drain(timeout: 10))
        let s = tier.tierStats
        XCTAssertEqual(stored + s.droppedWrites, 200, "every write either queued or counted as dropped")
        XCTAssertEqual(s.entries, stored, "every queued write reached the server")
    }
}

final class RedisTierContractTests: XCTestCase {
    func testRemoteTierContract() throws {
        let url = try RedisServer.sharedURL()
        let tier = Fixture.tier(url, fingerprint: Fixture.uniqueFingerprint())
        defer { tier.close() }
        checkTierContract(tier, settle: { XCTAssertTrue(tier.drain(timeout: 10)) })
    }
}
