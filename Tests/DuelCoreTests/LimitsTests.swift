import DuelCore
import XCTest

/// Command-line limits (issue 10, item 5): nonsense is refused in one line, more than the machine
/// has is clamped with a note.
final class LimitsTests: XCTestCase {
    let gib = 1 << 30

    func testCacheMBWithinMemoryIsKept() throws {
        let c = try Limits.cacheBytes(megabytes: 512, physicalMemory: 24 * gib)
        XCTAssertEqual(c.value, 512 << 20)
        XCTAssertNil(c.note)
    }

    /// `--cache-mb=99999999999999` used to wrap to "store -5822864442258358272 B".
    func testAbsurdCacheMBIsClampedToPhysicalMemoryAndSaysSo() throws {
        for mb in [99_999_999_999_999, Int.max, (Int.max >> 20) + 1, 24 * 1024 + 1] {
            let c = try Limits.cacheBytes(megabytes: mb, physicalMemory: 24 * gib)
            XCTAssertEqual(c.value, 24 * gib, "\(mb)")
            XCTAssertEqual(c.note, "--cache-mb \(mb) is more than this machine's memory; using 24576 MiB")
        }
        XCTAssertEqual(try Limits.cacheBytes(megabytes: 24 * 1024, physicalMemory: 24 * gib).note, nil)
    }

    func testNonPositiveCacheMBIsRefused() {
        for mb in [0, -1, Int.min] {
            XCTAssertThrowsError(try Limits.cacheBytes(megabytes: mb, physicalMemory: 24 * gib)) { e in
                XCTAssertEqual("\(e)", "--cache-mb must be positive, got \(mb)")
            }
        }
    }

    /// `--threads 1000` ran at 0.7 tok/s on 2 cores.
    func testThreadsAboveTheCoresAreClamped() throws {
        let c = try Limits.threads(1000, cores: 2)
        XCTAssertEqual(c.value, 2)
        XCTAssertEqual(c.note, "--threads 1000 is more than the 2 cores; using 2")
        XCTAssertEqual(try Limits.threads(2, cores: 2), Limits.Checked(value: 2, note: nil))
        XCTAssertEqual(try Limits.threads(1, cores: 16).value, 1)
        XCTAssertThrowsError(try Limits.threads(0, cores: 2)) { XCTAssertEqual("\($0)", "--threads must be positive, got 0") }
        XCTAssertThrowsError(try Limits.threads(-3, cores: 2))
    }

    /// `--max-tokens=-1` was accepted and printed as -1 in the bench JSON.
    func testMaxTokensMustBePositive() throws {
        XCTAssertEqual(try Limits.maxTokens(1), 1)
        XCTAssertEqual(try Limits.maxTokens(128, contextLength: 8192), 128)
        for n in [0, -1, Int.min] {
            XCTAssertThrowsError(try Limits.maxTokens(n)) { XCTAssertEqual("\($0)", "--max-tokens must be at least 1, got \(n)") }
        }
        XCTAssertThrowsError(try Limits.maxTokens(9000, contextLength: 8192)) {
            XCTAssertEqual("\($0)", "--max-tokens 9000 is more than the model's context of 8192 tokens")
        }
    }
}
