import Foundation
import GGUF
import Llama
import TestSupport
import XCTest

/// The model identity covers every byte of the file (issue 10, item 1) and is remembered by the
/// file's stamp in the cache directory.
final class ModelIdentityTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "kvduel-identity-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// A copy of the tiny model with one byte changed inside `blk.0.attn_norm.weight`, 100 bytes in:
    /// a byte the old sampled fingerprint (64 bytes at the start, middle and end) never read.
    static func changedCopy(of path: String, to copy: String) throws -> Int {
        let file = try GGUFFile(path: path)
        let t = try XCTUnwrap(file.tensor("blk.0.attn_norm.weight"))
        XCTAssertEqual(t.byteCount, 256)
        let offset = file.dataOffset + t.offset + 100
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[offset] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: copy))
        return offset
    }

    func testOneChangedWeightByteChangesTheFingerprint() throws {
        let original = try TinyModel.path(seed: 7)
        let copy = dir + "/changed.gguf"
        _ = try Self.changedCopy(of: original, to: copy)
        let a = try LlamaModel(path: original), b = try LlamaModel(path: copy)
        XCTAssertNotEqual(a.identity.fileSHA256, b.identity.fileSHA256)
        XCTAssertNotEqual(a.fingerprint, b.fingerprint)
        XCTAssertEqual(a.identity.kernelPath, ModelIdentity.kernelPath)
        XCTAssertTrue(a.identity.kernelPath.hasSuffix("/ckernels-v3"), a.identity.kernelPath)
        // The same bytes elsewhere give the same identity.
        let same = dir + "/same.gguf"
        try FileManager.default.copyItem(atPath: original, toPath: same)
        XCTAssertEqual(try LlamaModel(path: same).fingerprint, a.fingerprint)
    }

    /// SHA-256 of the file, checked against a digest computed independently (sha256sum).
    func testFileDigestIsTheFilesSHA256() throws {
        let path = dir + "/abc.bin"
        try Data("abc".utf8).write(to: URL(fileURLWithPath: path))
        let id = try ModelIdentity.of(path: path, memoDirectory: nil)
        XCTAssertEqual(id.fileSHA256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testDigestIsRememberedAndInvalidatedByAnyChange() throws {
        let path = dir + "/model.gguf"
        try FileManager.default.copyItem(atPath: try TinyModel.path(seed: 7), toPath: path)
        let memo = dir + "/cache"
        var seen: [Double] = []
        let first = try ModelIdentity.of(path: path, memoDirectory: memo) { seen.append($0) }
        XCTAssertFalse(first.memoised)
        XCTAssertEqual(seen.first, 0)
        XCTAssertEqual(seen.last, 1)
        let memoFile = memo + "/model-identity.json"
        var st = stat()
        XCTAssertEqual(stat(memoFile, &st), 0)
        XCTAssertEqual(Int(st.st_mode) & 0o777, 0o600)

        let second = try ModelIdentity.of(path: path, memoDirectory: memo)
        XCTAssertTrue(second.memoised)
        XCTAssertEqual(second.digest, first.digest)

        // Same size, one byte changed in place: mtime/ctime change, so it is hashed again.
        let h = FileHandle(forUpdatingAtPath: path)!
        h.seek(toFileOffset: 5000)
        let old = h.readData(ofLength: 1)[0]
        h.seek(toFileOffset: 5000)
        h.write(Data([old ^ 0xff]))
        h.closeFile()
        let third = try ModelIdentity.of(path: path, memoDirectory: memo)
        XCTAssertFalse(third.memoised)
        XCTAssertNotEqual(third.digest, first.digest)
        XCTAssertTrue(try ModelIdentity.of(path: path, memoDirectory: memo).memoised)
    }

    func testCorruptMemoIsIgnoredAndRewritten() throws {
        let path = try TinyModel.path(seed: 7)
        let memo = dir + "/cache"
        try FileManager.default.createDirectory(atPath: memo, withIntermediateDirectories: true)
        let memoFile = memo + "/model-identity.json"
        let truth = try ModelIdentity.of(path: path, memoDirectory: nil)
        for garbage in ["{not json", "", #"{"version":1,"entries":[{"stamp":42}]}"#] {
            try Data(garbage.utf8).write(to: URL(fileURLWithPath: memoFile))
            let id = try ModelIdentity.of(path: path, memoDirectory: memo)
            XCTAssertFalse(id.memoised, garbage)
            XCTAssertEqual(id.digest, truth.digest, garbage)
            XCTAssertTrue(try ModelIdentity.of(path: path, memoDirectory: memo).memoised, "rewritten after \(garbage)")
        }
        // A memo that lies about the digest is only trusted for the exact same stamp; a bad hex is dropped.
        let text = try String(contentsOfFile: memoFile, encoding: .utf8)
        try Data(text.replacingOccurrences(of: truth.fileSHA256, with: "zz").utf8).write(to: URL(fileURLWithPath: memoFile))
        let again = try ModelIdentity.of(path: path, memoDirectory: memo)
        XCTAssertFalse(again.memoised)
        XCTAssertEqual(again.digest, truth.digest)
    }
}
