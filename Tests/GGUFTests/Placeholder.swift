import XCTest

final class GGUFPlaceholderTests: XCTestCase {
    func testModuleLoads() { XCTAssertTrue(true) }
}
