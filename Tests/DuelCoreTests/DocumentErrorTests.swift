import DuelCore
import Foundation
import XCTest

/// `--doc` errors name the file (issue 10, item 7).
final class DocumentErrorTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "kvduel-doc-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func testMissingFileIsNamed() {
        let path = dir + "/nope.txt"
        XCTAssertThrowsError(try Document.load(path: path)) { XCTAssertEqual("\($0)", "\(path): no such file") }
    }

    func testBinaryFileIsNamed() throws {
        let path = dir + "/blob.txt"
        try Data([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x00, 0xff, 0xfe]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Document.load(path: path)) { XCTAssertEqual("\($0)", "\(path) is not UTF-8 text (a binary file?)") }
        // Valid UTF-8 with a NUL byte is binary too.
        try Data("abc\0def".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Document.load(path: path)) { XCTAssertTrue("\($0)".hasPrefix(path)) }
    }

    func testDirectoryIsNamed() {
        XCTAssertThrowsError(try Document.load(path: dir)) { XCTAssertTrue("\($0)".hasPrefix("\(dir) is a directory")) }
    }

    func testTextStillLoads() throws {
        let path = dir + "/note.md"
        try "# Title\nbody é".write(toFile: path, atomically: true, encoding: .utf8)
        let d = try Document.load(path: path)
        XCTAssertEqual(d.title, "Title")
        XCTAssertEqual(d.text, "body é")
    }
}
