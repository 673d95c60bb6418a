import XCTest

final class DuelCorePlaceholderTests: XCTestCase {
    func testModuleLoads() { XCTAssertTrue(true) }
}
