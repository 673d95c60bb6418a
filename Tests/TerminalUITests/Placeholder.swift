import XCTest

final class TerminalUIPlaceholderTests: XCTestCase {
    func testModuleLoads() { XCTAssertTrue(true) }
}
