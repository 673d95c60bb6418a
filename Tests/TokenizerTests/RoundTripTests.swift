import Foundation
import Tokenizer
import XCTest

final class RoundTripTests: XCTestCase {
    static let tricky: [String] = [
        "",
        " ",
        "\n\n\n",
        "Hello, world!",
        "東京タワーは日本の首都にあります。中文测试：你好，世界！한국어 텍스트",
        "emoji 🚀🔥 family 👩‍👩‍👧‍👦 flags 🇫🇷🇯🇵 skin 👍🏽 end",
        "combining e\u{301}le\u{300}ve n\u{303} Z\u{351}\u{36B}\u{343}a\u{352}l\u{300}g\u{300}o and precomposed é",
        "tabs\tand\ttabs\t\t\tend\t",
        "windows\r\nline\r\nendings\r\n\r\n",
        "many          spaces    here  and\u{A0}nbsp\u{2003}em\u{3000}ideographic   ",
        "   leading and trailing   ",
        "digits 1234567890 3.14159 1,000,000 ٣٤٥ Ⅷ ½ 2²",
        "contractions it's we're they'll I'd you've I'm don't 'S 'LL ’curly’",
        "code: func f(x: Int) -> Int { return x * 2 } // ### ***",
        "controls \u{0}\u{1}\u{7F}\u{1C} replacement \u{FFFD} bom \u{FEFF} zwj a\u{200D}b",
        "<|im_start|> literal <|im_end|> markup <not a token>",
        String(repeating: "a", count: 3000),
        String(repeating: "🚀", count: 200),
        String(repeating: " ", count: 1000) + "x",
    ]

    func testRoundTrip() throws {
        let tok = try TestModel.tokenizer()
        for s in Self.tricky {
            let plain = tok.encode(s, parseSpecial: false)
            XCTAssertEqual(tok.decode(plain), s, "no-parse-special round trip of \(s.debugDescription)")
            let special = tok.encode(s)
            XCTAssertEqual(tok.decode(special, showSpecial: true), s, "parse-special round trip of \(s.debugDescription)")
            // Swift String == is canonical equivalence: compare bytes as well.
            XCTAssertEqual(Array(tok.decode(plain).utf8), Array(s.utf8))
        }
    }

    func testControlTokensHiddenByDefault() throws {
        let tok = try TestModel.tokenizer()
        let ids = tok.encode("<|im_start|>user\nHi<|im_end|>\n")
        XCTAssertEqual(ids.first, 1)
        XCTAssertEqual(tok.decode(ids), "user\nHi\n")
        XCTAssertEqual(tok.decode(ids, showSpecial: true), "<|im_start|>user\nHi<|im_end|>\n")
        XCTAssertEqual(tok.tokenBytes(2), [])
        XCTAssertEqual(tok.tokenBytes(2, showSpecial: true), Array("<|im_end|>".utf8))
        XCTAssertEqual(tok.decode([-1, 49152, 1 << 30]), "", "invalid ids decode to nothing")
    }

    func testStreamingEqualsDecodeAndNeverSplitsCharacters() throws {
        let tok = try TestModel.tokenizer()
        for s in Self.tricky {
            for parseSpecial in [true, false] {
                let ids = tok.encode(s, parseSpecial: parseSpecial)
                for show in [false, true] {
                    var dec = tok.makeStreamDecoder(showSpecial: show)
                    var out = ""
                    var broken: Int?
                    for (i, id) in ids.enumerated() {
                        let chunk = dec.append(id)
                        if broken == nil && chunk.unicodeScalars.contains("\u{FFFD}") { broken = i }
                        out += chunk
                    }
                    out += dec.flush()
                    if !s.unicodeScalars.contains("\u{FFFD}") {
                        XCTAssertNil(broken, "token \(broken ?? -1) produced a broken character while streaming \(s.debugDescription)")
                    }
                    XCTAssertFalse(dec.hasPendingBytes)
                    XCTAssertEqual(Array(out.utf8), Array(tok.decode(ids, showSpecial: show).utf8),
                                   "stream != decode for \(s.debugDescription)")
                }
            }
        }
    }

    /// A rocket is split over byte tokens: nothing is shown until its last byte arrives.
    func testStreamingHoldsBackPartialCharacter() throws {
        let tok = try TestModel.tokenizer()
        let ids = tok.encode("🚀")
        XCTAssertGreaterThan(ids.count, 1, "the model has no single token for 🚀")
        var dec = tok.makeStreamDecoder()
        for id in ids.dropLast() {
            XCTAssertEqual(dec.append(id), "")
            XCTAssertTrue(dec.hasPendingBytes)
        }
        XCTAssertEqual(dec.append(ids.last!), "🚀")
        XCTAssertFalse(dec.hasPendingBytes)
        // A character cut off for good becomes U+FFFD on flush, as in decode.
        XCTAssertEqual(dec.append(ids[0]), "")
        XCTAssertEqual(dec.flush(), "\u{FFFD}")
        XCTAssertEqual(tok.decode([ids[0]]), "\u{FFFD}")
    }

    /// Encoding speed on a mixed English/code/Unicode document (printed; a loose floor is
    /// asserted in optimised builds only, the machine is shared).
    func testEncodeSpeed() throws {
        let tok = try TestModel.tokenizer()
        var paragraph = """
            The KV cache stores the keys and values of every attention layer, so that a new token only \
            needs one forward step. When the prompt changes in the middle, the cache after the change is \
            invalid; a reuse engine keeps the longest common prefix. Numbers like 3.14159, 2048 and \
            1,000,000 are split digit by digit. func f(x: Int) -> Int { return x * 2 } // code too.
            Unicode: Ünïcödé — 東京 🚀, naïve café, Ελληνικά, русский текст, עברית.\n\n
            """
        paragraph += String(repeating: " ", count: 8) + "indented\tline\r\n"
        // Distinct words so that the word cache does not make every paragraph free.
        var doc = ""
        var n = 0
        while doc.utf8.count < 1_000_000 {
            doc += paragraph + "item\(n) word\(n * 7919 % 10007)x "
            n += 1
        }
        let bytes = Double(doc.utf8.count)
        let t0 = Date()
        let ids = tok.encode(doc)
        let dt = Date().timeIntervalSince(t0)
        let mbps = bytes / dt / 1e6
        print(String(format: "encode speed: %.2f MB/s (%d bytes -> %d tokens in %.3f s)", mbps, Int(bytes), ids.count, dt))
        XCTAssertEqual(Array(tok.decode(ids).utf8), Array(doc.utf8))
        #if !DEBUG
        XCTAssertGreaterThan(mbps, 1.0, "encoding is slower than 1 MB/s")
        #endif
    }
}
