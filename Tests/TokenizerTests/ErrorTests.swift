import Foundation
import GGUF
import Tokenizer
import XCTest

final class ErrorTests: XCTestCase {
    func testUnknownPreTokenizer() throws {
        let v = TinyBPE.vocabulary(pre: "foo", merges: ["a b"])
        XCTAssertThrowsError(try Tokenizer(vocabulary: v)) { error in
            XCTAssertEqual(error as? TokenizerError, .unsupportedPreTokenizer("foo"))
            XCTAssertEqual("\(error)", "unsupported tokenizer pre-tokenizer 'foo' (supported: smollm, gpt2, llama3, qwen2)")
        }
    }

    func testUnknownModelType() throws {
        var v = TinyBPE.vocabulary(merges: ["a b"])
        v.model = "bert"
        XCTAssertThrowsError(try Tokenizer(vocabulary: v)) { error in
            XCTAssertEqual(error as? TokenizerError, .unsupportedModel("bert"))
            XCTAssertEqual("\(error)", "unsupported tokenizer model 'bert' (supported: gpt2, llama)")
        }
    }

    func testMissingTokensArray() throws {
        let m = DictionaryMetadata(values: ["tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smollm",
                                            "tokenizer.ggml.merges": ["a b"]])
        XCTAssertThrowsError(try Tokenizer(metadata: m)) { error in
            XCTAssertEqual(error as? TokenizerError, .missingMetadata("tokenizer.ggml.tokens"))
            XCTAssertEqual("\(error)", "tokenizer metadata 'tokenizer.ggml.tokens' is missing or has the wrong type")
        }
        let noModel = DictionaryMetadata(values: ["tokenizer.ggml.tokens": ["a"]])
        XCTAssertThrowsError(try Tokenizer(metadata: noModel)) { error in
            XCTAssertEqual(error as? TokenizerError, .missingMetadata("tokenizer.ggml.model"))
        }
    }

    func testInconsistentVocabulary() throws {
        var v = TinyBPE.vocabulary(merges: ["a b"])
        v.tokenTypes.removeLast()
        XCTAssertThrowsError(try Tokenizer(vocabulary: v)) { error in
            guard case .invalidVocabulary? = error as? TokenizerError else { return XCTFail("\(error)") }
        }
        var empty = TinyBPE.vocabulary(merges: ["a b"])
        empty.tokens = []
        empty.tokenTypes = []
        XCTAssertThrowsError(try Tokenizer(vocabulary: empty))
        var badBOS = TinyBPE.vocabulary(merges: ["a b"])
        badBOS.bosID = 100_000
        XCTAssertThrowsError(try Tokenizer(vocabulary: badBOS))
        let noMerges = TinyBPE.vocabulary(merges: [])
        XCTAssertThrowsError(try Tokenizer(vocabulary: noMerges)) { error in
            XCTAssertEqual(error as? TokenizerError, .missingMetadata("tokenizer.ggml.merges"))
        }
    }

    func testErrorDescriptionsAreOneLine() {
        let errors: [TokenizerError] = [.unsupportedModel("x"), .unsupportedPreTokenizer("y"),
                                        .missingMetadata("z"), .invalidVocabulary("w")]
        for e in errors {
            XCTAssertFalse(e.description.contains("\n"), e.description)
            XCTAssertFalse(e.description.isEmpty)
        }
    }

    // MARK: - Through real GGUF files

    private func tempPath(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "kvduel-tok-tests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/" + name
    }

    func testGGUFWithoutTokensThrows() throws {
        let path = tempPath("no-tokens.gguf")
        try GGUFWriter.write([("general.architecture", .string("llama")),
                              ("tokenizer.ggml.model", .string("gpt2")),
                              ("tokenizer.ggml.pre", .string("smollm"))], to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try Tokenizer(gguf: GGUFFile(path: path))) { error in
            XCTAssertEqual(error as? TokenizerError, .missingMetadata("tokenizer.ggml.tokens"))
        }
    }

    func testGGUFWithUnknownPreTokenizerThrows() throws {
        let v = TinyBPE.vocabulary(merges: ["a b"])
        let path = tempPath("bad-pre.gguf")
        try GGUFWriter.write([("tokenizer.ggml.model", .string("gpt2")),
                              ("tokenizer.ggml.pre", .string("foo")),
                              ("tokenizer.ggml.tokens", .strings(v.tokens)),
                              ("tokenizer.ggml.merges", .strings(["a b"]))], to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try Tokenizer(gguf: GGUFFile(path: path))) { error in
            XCTAssertEqual(error as? TokenizerError, .unsupportedPreTokenizer("foo"))
        }
    }

    /// All standard keys are read from a GGUF file.
    func testGGUFKeysAreRead() throws {
        let v = TinyBPE.vocabulary(merges: ["a b"], extraTokens: ["ab"],
                                   specials: [("<|im_start|>", .control), ("<|im_end|>", .control), ("<|eot_id|>", .control)])
        let template = "{{ '<|im_start|>system\\nBe brief.<|im_end|>\\n' }}"
        let path = tempPath("tiny.gguf")
        try GGUFWriter.write([
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string("smollm")),
            ("tokenizer.ggml.tokens", .strings(v.tokens)),
            ("tokenizer.ggml.token_type", .int32s(v.tokenTypes)),
            ("tokenizer.ggml.merges", .strings(["a b"])),
            ("tokenizer.ggml.bos_token_id", .uint32(257)),
            ("tokenizer.ggml.eos_token_id", .uint32(258)),
            ("tokenizer.ggml.eot_token_id", .uint32(259)),
            ("tokenizer.ggml.unknown_token_id", .uint32(0)),
            ("tokenizer.ggml.add_bos_token", .bool(true)),
            ("tokenizer.chat_template", .string(template)),
        ], to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let tok = try Tokenizer(gguf: GGUFFile(path: path))
        XCTAssertEqual(tok.vocabSize, 260)
        XCTAssertEqual(tok.bosID, 257)
        XCTAssertEqual(tok.eosID, 258)
        XCTAssertEqual(tok.eotID, 259)
        XCTAssertEqual(tok.unknownID, 0)
        XCTAssertTrue(tok.addBOS)
        XCTAssertEqual(tok.preTokenizer, .smollm)
        XCTAssertEqual(tok.encode("ab"), [257, 256])
        XCTAssertEqual(tok.tokenType(257), .control)
        XCTAssertEqual(tok.endOfGenerationIDs, [258, 259])
        XCTAssertEqual(tok.chatTemplateSource, template)
        XCTAssertEqual(tok.chatTemplate.defaultSystemPrompt, "Be brief.")
    }
}
