import Foundation
import GGUF
import Tokenizer
import XCTest

/// Finds the default model the way the app does: `$KVDUEL_MODEL`, else
/// `${KVDUEL_CACHE_DIR:-~/.cache/kvduel}/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
enum TestModel {
    static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    static var path: String {
        let env = ProcessInfo.processInfo.environment
        if let p = env["KVDUEL_MODEL"], !p.isEmpty { return p }
        var cache = env["KVDUEL_CACHE_DIR"] ?? ""
        if cache.isEmpty { cache = NSHomeDirectory() + "/.cache/kvduel" }
        return cache + "/models/" + fileName
    }

    static var required: Bool { ProcessInfo.processInfo.environment["KVDUEL_REQUIRE_MODEL"] == "1" }

    struct Missing: Error, CustomStringConvertible {
        let path: String
        var description: String {
            "model not found at \(path): run scripts/fetch-model.sh (or set KVDUEL_MODEL)"
        }
    }

    /// Loaded once for the whole test process; nil when the file is absent.
    private static let loaded: Result<Tokenizer, Error>? = {
        let p = path
        guard FileManager.default.fileExists(atPath: p) else { return nil }
        return Result { try Tokenizer(gguf: GGUFFile(path: p)) }
    }()

    /// The model's tokenizer. Skips the test when the model is missing, unless
    /// `KVDUEL_REQUIRE_MODEL=1`, in which case the test fails naming `scripts/fetch-model.sh`.
    static func tokenizer(file: StaticString = #filePath, line: UInt = #line) throws -> Tokenizer {
        guard let result = loaded else {
            let missing = Missing(path: path)
            if required {
                XCTFail(missing.description, file: file, line: line)
                throw missing
            }
            throw XCTSkip(missing.description)
        }
        return try result.get()
    }
}

enum Fixtures {
    static func url(_ name: String) throws -> URL {
        let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
        guard let url = Bundle.module.url(forResource: parts[0], withExtension: parts.count > 1 ? parts[1] : nil,
                                          subdirectory: "Fixtures") else {
            throw NSError(domain: "Fixtures", code: 1, userInfo: [NSLocalizedDescriptionKey: "fixture \(name) not found"])
        }
        return url
    }

    static func data(_ name: String) throws -> Data { try Data(contentsOf: url(name)) }
    static func text(_ name: String) throws -> String { String(decoding: try data(name), as: UTF8.self) }

    struct Tokenization: Decodable {
        struct Case: Decodable {
            let text: String
            let ids_parse_special: [Int32]
            let ids_no_parse_special: [Int32]
        }
        let results: [Case]
    }

    struct Prompts: Decodable {
        struct Prompt: Decodable {
            let name: String
            let text: String
            let ids: [Int32]
        }
        let prompts: [Prompt]
    }
}

/// Asserts two id sequences are equal; on mismatch reports the first differing index and the
/// id runs around it.
func assertIDs(_ got: [Int32], _ want: [Int32], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
    if got == want { return }
    let n = min(got.count, want.count)
    let i = (0..<n).first { got[$0] != want[$0] } ?? n
    let lo = max(0, i - 4)
    func run(_ a: [Int32]) -> String {
        let hi = min(a.count, i + 8)
        return (lo < hi ? a[lo..<hi].map(String.init).joined(separator: " ") : "") + (hi < a.count ? " …" : "")
    }
    XCTFail("""
        \(label): first difference at index \(i) (got \(got.count) ids, want \(want.count))
          got  [\(lo)…]: \(run(got))
          want [\(lo)…]: \(run(want))
        """, file: file, line: line)
}

/// Metadata from a dictionary, to test `Vocabulary(metadata:)` without a file.
struct DictionaryMetadata: TokenizerMetadata {
    var values: [String: Any]
    func string(_ key: String) -> String? { values[key] as? String }
    func int(_ key: String) -> Int? { values[key] as? Int }
    func bool(_ key: String) -> Bool? { values[key] as? Bool }
    func strings(_ key: String) -> [String]? { values[key] as? [String] }
    func ints(_ key: String) -> [Int]? { values[key] as? [Int] }
    func floats(_ key: String) -> [Float]? { values[key] as? [Float] }
}

/// Writes a GGUF v3 file with metadata only (no tensors).
enum GGUFWriter {
    enum Value {
        case string(String), uint32(UInt32), int32(Int32), bool(Bool)
        case strings([String]), int32s([Int32]), float32s([Float])
    }

    static func write(_ kv: [(String, Value)], to path: String) throws {
        var d = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); d.append(contentsOf: Array(s.utf8)) }
        d.append(contentsOf: Array("GGUF".utf8))
        u32(3)
        u64(0)
        u64(UInt64(kv.count))
        for (key, value) in kv {
            str(key)
            switch value {
            case .string(let s): u32(8); str(s)
            case .uint32(let v): u32(4); u32(v)
            case .int32(let v): u32(5); u32(UInt32(bitPattern: v))
            case .bool(let b): u32(7); d.append(b ? 1 : 0)
            case .strings(let a): u32(9); u32(8); u64(UInt64(a.count)); a.forEach(str)
            case .int32s(let a): u32(9); u32(5); u64(UInt64(a.count)); a.forEach { u32(UInt32(bitPattern: $0)) }
            case .float32s(let a): u32(9); u32(6); u64(UInt64(a.count)); a.forEach { u32($0.bitPattern) }
            }
        }
        try d.write(to: URL(fileURLWithPath: path))
    }
}

/// A small byte-level BPE vocabulary: the 256 byte symbols, then merged tokens, then specials.
enum TinyBPE {
    static func byteSymbol(_ b: UInt8) -> String {
        let v: UInt32
        if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
            v = UInt32(b)
        } else {
            var extra: UInt32 = 0
            for x in 0..<Int(b) where !((0x21...0x7E).contains(x) || (0xA1...0xAC).contains(x) || (0xAE...0xFF).contains(x)) {
                extra += 1
            }
            v = 256 + extra
        }
        return String(Unicode.Scalar(v)!)
    }

    static func vocabulary(pre: String = "gpt2", merges: [String], extraTokens: [String] = [],
                           specials: [(String, TokenType)] = []) -> Vocabulary {
        var tokens = (0...255).map { byteSymbol(UInt8($0)) }
        var types = [Int32](repeating: TokenType.normal.rawValue, count: 256)
        for t in extraTokens { tokens.append(t); types.append(TokenType.normal.rawValue) }
        for (t, type) in specials { tokens.append(t); types.append(type.rawValue) }
        return Vocabulary(model: "gpt2", pre: pre, tokens: tokens, tokenTypes: types, merges: merges)
    }
}
