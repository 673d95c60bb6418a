import Tokenizer
import XCTest

/// Pre-tokenizer splits, checked against the regexes' behaviour in llama.cpp.
final class PreTokenizerTests: XCTestCase {
    func testGPT2Regex() throws {
        let p = PreTokenizer.gpt2
        XCTAssertEqual(p.split("Hello, world!"), ["Hello", ",", " world", "!"])
        XCTAssertEqual(p.split("it's we're they'll I'd you've I'm"),
                       ["it", "'s", " we", "'re", " they", "'ll", " I", "'d", " you", "'ve", " I", "'m"])
        XCTAssertEqual(p.split("IT'S"), ["IT", "'", "S"], "GPT-2 contractions are case-sensitive")
        XCTAssertEqual(p.split("abc 12345 x"), ["abc", " 12345", " x"])
        XCTAssertEqual(p.split("a ...!? b"), ["a", " ...!?", " b"])
        XCTAssertEqual(p.split("Ünïcödé 東京"), ["Ünïcödé", " 東京"])
        XCTAssertEqual(p.split("e\u{301}"), ["e", "\u{301}"], "combining marks are not letters")
    }

    /// `\s+(?!\S)`: a whitespace run before a word leaves its last character to the word.
    func testWhitespaceLookahead() throws {
        let p = PreTokenizer.gpt2
        XCTAssertEqual(p.split("a   b"), ["a", "  ", " b"])
        XCTAssertEqual(p.split("   leading"), ["  ", " leading"])
        XCTAssertEqual(p.split("trailing   "), ["trailing", "   "], "at the end the whole run is one word")
        XCTAssertEqual(p.split("a \tb"), ["a", " ", "\t", "b"], "tab is not the optional space of ` ?\\p{L}+`")
        XCTAssertEqual(p.split("a\t\tb"), ["a", "\t", "\t", "b"])
        XCTAssertEqual(p.split("a\n\nb"), ["a", "\n", "\n", "b"])
        XCTAssertEqual(p.split("x\r\n"), ["x", "\r\n"])
        XCTAssertEqual(p.split("a  !"), ["a", " ", " !"])
        XCTAssertEqual(p.split(" "), [" "])
        XCTAssertEqual(p.split("a\u{3000}\u{3000}b"), ["a", "\u{3000}", "\u{3000}", "b"], "non-ASCII whitespace")
    }

    func testSmolLMSplitsEveryDigit() throws {
        let p = PreTokenizer.smollm
        XCTAssertEqual(p.split("abc 12345 x"), ["abc", " ", "1", "2", "3", "4", "5", " x"])
        XCTAssertEqual(p.split("3.14"), ["3", ".", "1", "4"])
        XCTAssertEqual(p.split("x²½"), ["x", "²", "½"], "\\p{N} includes No")
        // Lookahead stops at the digit chunk boundary: the space run before a digit is whole.
        XCTAssertEqual(p.split("a   1"), ["a", "   ", "1"])
        XCTAssertEqual(p.split("The capital of France is"), ["The", " capital", " of", " France", " is"])
    }

    func testLlama3Regex() throws {
        let p = PreTokenizer.llama3
        XCTAssertEqual(p.split("Hello, world!"), ["Hello", ",", " world", "!"])
        XCTAssertEqual(p.split("1234567"), ["123", "456", "7"])
        XCTAssertEqual(p.split("IT'S"), ["IT", "'S"], "Llama-3 contractions ignore case")
        XCTAssertEqual(p.split("(hello"), ["(hello"], "one non-letter prefixes a letter run")
        XCTAssertEqual(p.split("a...\n\nb"), ["a", "...\n\n", "b"])
        XCTAssertEqual(p.split("a  \n  b"), ["a", "  \n", " ", " b"])
        XCTAssertEqual(p.split("x   y"), ["x", "  ", " y"])
        XCTAssertEqual(p.split("\tword"), ["\tword"])
        XCTAssertEqual(PreTokenizer.qwen2.split("12345"), ["1", "2", "3", "4", "5"])
    }

    func testNames() throws {
        XCTAssertEqual(try PreTokenizer(name: "smollm"), .smollm)
        XCTAssertEqual(try PreTokenizer(name: "gpt2"), .gpt2)
        XCTAssertEqual(try PreTokenizer(name: "gpt-2"), .gpt2)
        XCTAssertEqual(try PreTokenizer(name: "default"), .gpt2)
        XCTAssertEqual(try PreTokenizer(name: nil), .gpt2)
        XCTAssertEqual(try PreTokenizer(name: "llama-bpe"), .llama3)
        XCTAssertEqual(try PreTokenizer(name: "qwen2"), .qwen2)
        XCTAssertThrowsError(try PreTokenizer(name: "tekken"))
    }
}
