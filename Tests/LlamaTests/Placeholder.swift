import XCTest

final class LlamaPlaceholderTests: XCTestCase {
    func testModuleLoads() { XCTAssertTrue(true) }
}
