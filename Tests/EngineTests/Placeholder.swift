import XCTest

final class EnginePlaceholderTests: XCTestCase {
    func testModuleLoads() { XCTAssertTrue(true) }
}
