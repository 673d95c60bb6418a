import Foundation
import KVCache
import RedisTier
import XCTest

/// Two processes hammer one server at once: nothing is lost or mixed up.
///
/// `testTwoProcessesAtOnce` runs this test binary twice more, at the same time, each running only
/// `testWorkerProcess` with KVDUEL_REDIS_WORKER set. Each worker writes its own entries and a set
/// both write (same keys, same values), then reads everything both wrote and checks every byte.
final class TwoProcessTests: XCTestCase {
    static let perWorker = 150
    static let shared = 50

    /// Entry `i` of worker `w` (w = 0: the keys both workers write).
    static func key(_ w: Int, _ i: Int) -> CacheKey {
        CacheKey(kind: .segment, digest: Digest128(hi: UInt64(0xabc0 + w), lo: UInt64(i)))
    }

    static func value(_ w: Int, _ i: Int) -> EncodedKV { Fixture.entry(w * 1000 + i, tokens: 1 + i % 7) }

    func testWorkerProcess() throws {
        let env = ProcessInfo.processInfo.environment
        guard let w = env["KVDUEL_REDIS_WORKER"].flatMap(Int.init), let fpText = env["KVDUEL_REDIS_WORKER_FP"],
              let urlText = env["KVDUEL_REDIS_WORKER_URL"] else {
            throw XCTSkip("runs only as a child of testTwoProcessesAtOnce")
        }
        let url = try RedisURL(parsing: urlText, environment: [:])
        let tier = Fixture.tier(url, fingerprint: ModelFingerprint(components: [fpText]), secret: "load")
        defer { tier.close() }
        XCTAssertEqual(tier.state, .ok)
        // Interleave own and shared writes, reading the other worker's keys as we go.
        let other = w == 1 ? 2 : 1
        for i in 0..<Self.perWorker {
            while !tier.put(Self.key(w, i), Self.value(w, i)).isStored { usleep(1000) }
            if i < Self.shared {
                while !tier.put(Self.key(0, i), Self.value(0, i)).isStored { usleep(1000) }
            }
            for (k, v) in tier.fetch((0..<10).map { Self.key(other, (i + $0) % Self.perWorker) }) {
                XCTAssertEqual(v, Self.value(other, Int(k.digest.lo)), "worker \(w) read \(k) mixed up")
            }
        }
        XCTAssertTrue(tier.drain(timeout: 30))
        XCTAssertEqual(tier.tierStats.droppedWrites, 0)
        XCTAssertEqual(tier.tierStats.writeErrors, 0)
        XCTAssertEqual(tier.tierStats.rejectedEntries, 0)
    }

    func testTwoProcessesAtOnce() throws {
        let url = try RedisServer.sharedURL()
        let fp = UUID().uuidString
        let exe = ProcessInfo.processInfo.arguments[0]
        guard FileManager.default.isExecutableFile(atPath: exe), exe.hasSuffix(".xctest") else {
            throw XCTSkip("needs the Linux test executable to spawn (arguments[0] = \(exe))")
        }
        let children = (1...2).map { w -> Process in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = ["RedisTierTests.TwoProcessTests/testWorkerProcess"]
            var env = ProcessInfo.processInfo.environment
            env["KVDUEL_REDIS_WORKER"] = "\(w)"
            env["KVDUEL_REDIS_WORKER_FP"] = fp
            env["KVDUEL_REDIS_WORKER_URL"] = "redis://\(url.host):\(url.port)" + (url.db != 0 ? "/\(url.db)" : "")
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            return p
        }
        for p in children { try p.run() }
        for p in children { p.waitUntilExit() }
        for (i, p) in children.enumerated() { XCTAssertEqual(p.terminationStatus, 0, "worker \(i + 1) failed") }

        // Everything both wrote is there, byte for byte.
        let tier = Fixture.tier(url, fingerprint: ModelFingerprint(components: [fp]), secret: "load")
        defer { tier.close() }
        var keys: [CacheKey] = [], want: [CacheKey: EncodedKV] = [:]
        for w in 1...2 { for i in 0..<Self.perWorker { keys.append(Self.key(w, i)); want[Self.key(w, i)] = Self.value(w, i) } }
        for i in 0..<Self.shared { keys.append(Self.key(0, i)); want[Self.key(0, i)] = Self.value(0, i) }
        let got = tier.fetch(keys)
        XCTAssertEqual(got.count, keys.count, "nothing lost")
        for k in keys { XCTAssertEqual(got[k], want[k], "\(k)") }
        XCTAssertEqual(tier.tierStats.rejectedEntries, 0)
        tier.removeAll()
        XCTAssertTrue(tier.fetch(keys).isEmpty, "removeAll cleared this namespace")
    }
}
