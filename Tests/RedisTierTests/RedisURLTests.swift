import XCTest
import RedisTier

final class RedisURLTests: XCTestCase {
    func testParsesAndMasks() throws {
        let u = try RedisURL(parsing: "redis://alice:s3cret@example.org:6391/2", environment: [:])
        XCTAssertEqual(u.host, "example.org")
        XCTAssertEqual(u.port, 6391)
        XCTAssertEqual(u.user, "alice")
        XCTAssertEqual(u.password, "s3cret")
        XCTAssertEqual(u.db, 2)
        XCTAssertEqual(u.description, "redis://alice:***@example.org:6391/2")
        XCTAssertFalse(u.description.contains("s3cret"))
    }

    func testPasswordFromEnvironmentAndDefaults() throws {
        let u = try RedisURL(parsing: "redis://127.0.0.1", environment: ["KVDUEL_REMOTE_PASSWORD": "pw"])
        XCTAssertEqual(u.port, 6379)
        XCTAssertEqual(u.db, 0)
        XCTAssertNil(u.user)
        XCTAssertEqual(u.password, "pw")
        XCTAssertEqual(u.description, "redis://:***@127.0.0.1:6379")
        let v = try RedisURL(parsing: "redis://:urlpw@h:1", environment: ["KVDUEL_REMOTE_PASSWORD": "envpw"])
        XCTAssertEqual(v.password, "urlpw", "the URL's password wins")
    }

    func testRejectsBadURLsWithoutEchoingThePassword() {
        for bad in ["http://h:1", "redis://", "redis://h:1/x", "redis://h:99999", "redis://u:topsecret@h:1/db?x=1"] {
            XCTAssertThrowsError(try RedisURL(parsing: bad, environment: [:]), bad) { e in
                XCTAssertFalse("\(e)".contains("topsecret"), "\(e)")
                XCTAssertTrue("\(e)".contains("redis://"), "\(e)")
            }
        }
    }
}
