import XCTest

final class KVCachePlaceholderTests: XCTestCase {
    func testModuleLoads() { XCTAssertTrue(true) }
}
