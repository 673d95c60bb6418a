import XCTest

final class TokenizerPlaceholderTests: XCTestCase {
    func testModuleLoads() { XCTAssertTrue(true) }
}
