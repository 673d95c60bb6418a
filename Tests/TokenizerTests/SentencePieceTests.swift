import Tokenizer
import XCTest

/// SentencePiece (`tokenizer.ggml.model = llama`) on a tiny hand-made vocabulary.
final class SentencePieceTests: XCTestCase {
    /// <unk> <s> </s>, 256 byte tokens, then pieces with scores.
    func makeTokenizer(addSpacePrefix: Bool? = nil) throws -> (Tokenizer, [String: Int32]) {
        var tokens = ["<unk>", "<s>", "</s>"]
        var types: [Int32] = [2, 3, 3]
        var scores: [Float] = [0, 0, 0]
        for b in 0..<256 {
            tokens.append(String(format: "<0x%02X>", b))
            types.append(TokenType.byte.rawValue)
            scores.append(0)
        }
        let pieces: [(String, Float)] = [("▁", -1), ("h", -2), ("e", -2), ("l", -2), ("o", -2), ("w", -2), ("r", -2),
                                         ("d", -2), ("▁h", -3), ("he", -3.5), ("ll", -3), ("llo", -4), ("▁he", -4),
                                         ("▁hello", -5), ("or", -3), ("▁w", -3), ("▁wor", -6), ("ld", -3.5), ("▁world", -4)]
        var ids: [String: Int32] = [:]
        for (p, s) in pieces {
            ids[p] = Int32(tokens.count)
            tokens.append(p)
            types.append(TokenType.normal.rawValue)
            scores.append(s)
        }
        let v = Vocabulary(model: "llama", tokens: tokens, tokenTypes: types, scores: scores,
                           bosID: 1, eosID: 2, unknownID: 0, addSpacePrefix: addSpacePrefix)
        return (try Tokenizer(vocabulary: v), ids)
    }

    func testEncodeWithScoresAndSpacePrefix() throws {
        let (tok, id) = try makeTokenizer()
        XCTAssertEqual(tok.model, .sentencePiece)
        XCTAssertTrue(tok.addBOS, "SentencePiece adds BOS by default")
        XCTAssertEqual(tok.encode("hello world"), [1, id["▁hello"]!, id["▁world"]!])
        XCTAssertEqual(tok.encode("hello", addBOS: false), [id["▁hello"]!])
        XCTAssertEqual(tok.decode(tok.encode("hello world")), "hello world", "prefix space is removed again")
    }

    func testByteFallback() throws {
        let (tok, id) = try makeTokenizer()
        // "é" is not a piece: its two UTF-8 bytes become <0xC3> <0xA9> (ids 3 + byte).
        XCTAssertEqual(tok.encode("hé", addBOS: false), [id["▁h"]!, 3 + 0xC3, 3 + 0xA9])
        XCTAssertEqual(tok.decode(tok.encode("hé 🚀")), "hé 🚀")
        var dec = tok.makeStreamDecoder()
        var s = ""
        for t in tok.encode("hé 🚀") { s += dec.append(t) }
        XCTAssertEqual(s + dec.flush(), "hé 🚀")
    }

    func testNoSpacePrefix() throws {
        let (tok, id) = try makeTokenizer(addSpacePrefix: false)
        // ll (-3) first, then he (-3.5), then llo (-4); "hell" and "hello" are not pieces.
        XCTAssertEqual(tok.encode("hello", addBOS: false), [id["he"]!, id["llo"]!])
        XCTAssertEqual(tok.decode(tok.encode("hello")), "hello")
    }
}
