import Tokenizer
import XCTest

/// Byte-level BPE on a tiny hand-made vocabulary (no model needed).
final class BPETests: XCTestCase {
    // ids: 0..<256 byte symbols, then extra tokens in order.
    let extra = ["ab", "abc", "Ġa", "Ġab", "bc", "aa", "aaa"]
    var id: [String: Int32] {
        var d: [String: Int32] = [:]
        for (i, t) in extra.enumerated() { d[t] = Int32(256 + i) }
        return d
    }

    func testMergesFollowRank() throws {
        // "b c" outranks "a b": "abc" -> a + bc, not ab + c.
        let v = TinyBPE.vocabulary(merges: ["b c", "Ġ a", "a b", "ab c", "Ġa b"], extraTokens: extra)
        let tok = try Tokenizer(vocabulary: v)
        let a = Int32(UInt8(ascii: "a"))
        XCTAssertEqual(tok.encode("abc"), [a, id["bc"]!])
        XCTAssertEqual(tok.encode("ab"), [id["ab"]!])
        XCTAssertEqual(tok.encode(" ab"), [id["Ġab"]!], "Ġ a outranks a b")
        let late = try Tokenizer(vocabulary: TinyBPE.vocabulary(merges: ["a b", "Ġ a", "Ġa b"], extraTokens: extra))
        XCTAssertEqual(late.encode(" ab"), [32, id["ab"]!], "a b first, and there is no merge Ġ + ab")
        XCTAssertEqual(tok.decode(tok.encode(" ab abc")), " ab abc")

        let v2 = TinyBPE.vocabulary(merges: ["a b", "b c", "ab c"], extraTokens: extra)
        XCTAssertEqual(try Tokenizer(vocabulary: v2).encode("abc"), [id["abc"]!])
    }

    func testEqualRanksMergeLeftmostFirst() throws {
        let v = TinyBPE.vocabulary(merges: ["a a", "aa a"], extraTokens: extra)
        let tok = try Tokenizer(vocabulary: v)
        let a = Int32(UInt8(ascii: "a"))
        XCTAssertEqual(tok.encode("aaa"), [id["aaa"]!])
        XCTAssertEqual(tok.encode("aaaa"), [id["aa"]!, id["aa"]!])
        XCTAssertEqual(tok.encode("aaaaa"), [id["aa"]!, id["aaa"]!], "all rank-0 merges first: (aa)(aa)a, then aa+a")
        XCTAssertEqual(tok.encode(String(repeating: "a", count: 7)), [id["aa"]!, id["aa"]!, id["aaa"]!])
        XCTAssertEqual(tok.encode("a"), [a])
    }

    /// A merge whose result is not a token still merges (as strings do in llama.cpp); the symbol
    /// then falls back to its bytes.
    func testMergeResultMissingFromVocabularyFallsBackToBytes() throws {
        let v = TinyBPE.vocabulary(merges: ["x y", "xy z"], extraTokens: ["xyz"])
        let tok = try Tokenizer(vocabulary: v)
        XCTAssertEqual(tok.encode("xyz"), [256])
        XCTAssertEqual(tok.encode("xy"), [Int32(UInt8(ascii: "x")), Int32(UInt8(ascii: "y"))])
    }

    func testSpecialTokens() throws {
        let v = TinyBPE.vocabulary(merges: ["a b"], extraTokens: ["ab"],
                                   specials: [("<|im_start|>", .control), ("<|im_end|>", .control),
                                              ("<|im", .control), ("<tool>", .userDefined)])
        let tok = try Tokenizer(vocabulary: v)
        let start: Int32 = 257, end: Int32 = 258, shortOne: Int32 = 259, tool: Int32 = 260
        XCTAssertEqual(tok.encode("<|im_start|>ab<|im_end|>"), [start, 256, end])
        XCTAssertEqual(tok.encode("<|im"), [shortOne], "longest special token wins, shorter ones still match")
        XCTAssertEqual(tok.encode("x<tool>y", parseSpecial: false),
                       [Int32(UInt8(ascii: "x")), tool, Int32(UInt8(ascii: "y"))],
                       "user-defined tokens are always parsed")
        let plain = tok.encode("<|im_start|>", parseSpecial: false)
        XCTAssertFalse(plain.contains(start))
        XCTAssertEqual(tok.decode(plain), "<|im_start|>")
        XCTAssertEqual(tok.decode([start, 256, end]), "ab")
        XCTAssertEqual(tok.decode([start, 256, tool]), "ab<tool>", "user-defined tokens are text")
        XCTAssertTrue(tok.isEndOfGeneration(end))
        XCTAssertFalse(tok.isEndOfGeneration(start))
    }

    /// Llama-3 pre-tokenization ignores merges when the whole word is a token.
    func testLlama3IgnoresMergesForWholeWords() throws {
        // "abc" is a token but no merge sequence reaches it.
        let v = TinyBPE.vocabulary(pre: "llama3", merges: ["b c"], extraTokens: extra)
        let tok = try Tokenizer(vocabulary: v)
        XCTAssertEqual(tok.encode("abc"), [id["abc"]!])
        XCTAssertTrue(tok.addBOS, "Llama-3 adds BOS by default")
        XCTAssertNil(tok.bosID)
        let gpt2 = try Tokenizer(vocabulary: TinyBPE.vocabulary(pre: "gpt2", merges: ["b c"], extraTokens: extra))
        XCTAssertEqual(gpt2.encode("abc"), [Int32(UInt8(ascii: "a")), id["bc"]!])
    }

    func testLongWordsMatchShortWordMerging() throws {
        // The same word repeated inside a long run must give the same ids as on its own.
        let v = TinyBPE.vocabulary(merges: ["a a", "aa a"], extraTokens: extra)
        let tok = try Tokenizer(vocabulary: v)
        let run = String(repeating: "a", count: 1501)
        XCTAssertEqual(tok.encode(run), [Int32](repeating: id["aa"]!, count: 749) + [id["aaa"]!])
        XCTAssertEqual(tok.decode(tok.encode(run)), run)
    }
}
