import Foundation
import Tokenizer
import XCTest

/// Token ids from llama.cpp (b4748) for the default model must be reproduced exactly.
final class GoldenTests: XCTestCase {
    func testModelTokenizerMetadata() throws {
        let tok = try TestModel.tokenizer()
        XCTAssertEqual(tok.model, .bpe)
        XCTAssertEqual(tok.preTokenizer, .smollm)
        XCTAssertEqual(tok.vocabSize, 49152)
        XCTAssertEqual(tok.bosID, 1)
        XCTAssertEqual(tok.eosID, 2)
        XCTAssertFalse(tok.addBOS)
        XCTAssertEqual(tok.tokenText(1), "<|im_start|>")
        XCTAssertEqual(tok.tokenText(2), "<|im_end|>")
        XCTAssertEqual(tok.id(of: "<|im_start|>"), 1)
        XCTAssertEqual(tok.id(of: "<|im_end|>"), 2)
        XCTAssertEqual(tok.id(of: "Ġworld"), 905)
        XCTAssertEqual(tok.id(of: " world"), 905, "decoded form is accepted too")
        XCTAssertNil(tok.id(of: "no such token \u{1F680}\u{1F680}"))
        XCTAssertEqual(tok.tokenType(1), .control)
        XCTAssertEqual(tok.tokenType(905), .normal)
        XCTAssertTrue(tok.isEndOfGeneration(2))
        XCTAssertTrue(tok.isEndOfGeneration(0), "<|endoftext|> ends generation, as in llama.cpp")
        XCTAssertFalse(tok.isEndOfGeneration(1))
        XCTAssertFalse(tok.isEndOfGeneration(905))
        XCTAssertEqual(tok.chatTemplate.format, .chatml)
        XCTAssertEqual(tok.chatTemplate.defaultSystemPrompt,
                       "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
    }

    func testReferenceTokenization() throws {
        let tok = try TestModel.tokenizer()
        let golden = try JSONDecoder().decode(Fixtures.Tokenization.self, from: Fixtures.data("tokenization.json"))
        XCTAssertEqual(golden.results.count, 5)
        for (i, c) in golden.results.enumerated() {
            assertIDs(tok.encode(c.text), c.ids_parse_special, "case \(i) \(c.text.debugDescription) parse_special")
            assertIDs(tok.encode(c.text, parseSpecial: false), c.ids_no_parse_special,
                      "case \(i) \(c.text.debugDescription) no_parse_special")
        }
    }

    func testReferencePromptIDs() throws {
        let tok = try TestModel.tokenizer()
        let golden = try JSONDecoder().decode(Fixtures.Prompts.self, from: Fixtures.data("prompts.json"))
        XCTAssertEqual(golden.prompts.map(\.name), ["chatml", "france"])
        for p in golden.prompts {
            assertIDs(tok.encode(p.text), p.ids, "prompt \(p.name)")
            XCTAssertEqual(tok.decode(p.ids, showSpecial: true), p.text)
        }
    }

    /// The ChatML prompt of the reference equals our rendering of the same conversation, and
    /// per-message tokenization concatenates to the same ids (what the reuse engine relies on).
    func testRenderedChatTokenizesLikeReference() throws {
        let tok = try TestModel.tokenizer()
        let golden = try JSONDecoder().decode(Fixtures.Prompts.self, from: Fixtures.data("prompts.json"))
        let chatml = try XCTUnwrap(golden.prompts.first { $0.name == "chatml" })
        let template = ChatTemplate(format: .chatml)  // the reference prompt has no system message
        let messages = [ChatMessage.user("What is a KV cache?")]
        XCTAssertEqual(template.render(messages, addGenerationPrompt: true), chatml.text)
        let perSegment = template.segments(messages, addGenerationPrompt: true).flatMap { tok.encode($0) }
        assertIDs(perSegment, chatml.ids, "per-segment ids")
    }

    func testBOSOnRequest() throws {
        let tok = try TestModel.tokenizer()
        XCTAssertEqual(tok.encode("Hello, world!", addBOS: true), [1, 19556, 28, 905, 17])
        XCTAssertEqual(tok.encode("Hello, world!", addBOS: false), [19556, 28, 905, 17])
        XCTAssertEqual(tok.encode(""), [])
    }
}
