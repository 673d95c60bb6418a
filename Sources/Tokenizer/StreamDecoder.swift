/// Decodes tokens one at a time for display. `append` returns only whole UTF-8 characters and
/// holds back the bytes of a character cut between tokens (byte-level BPE splits emoji and CJK
/// across tokens), so a UI never shows half a character. The concatenation of every `append`
/// and the final `flush` equals `Tokenizer.decode` of the same ids.
public struct StreamDecoder {
    public let tokenizer: Tokenizer
    /// Show control tokens (`<|im_end|>`) as their text instead of "".
    public var showSpecial: Bool
    private var pending: [UInt8] = []
    private var atStart = true

    public init(tokenizer: Tokenizer, showSpecial: Bool = false) {
        self.tokenizer = tokenizer
        self.showSpecial = showSpecial
    }

    /// True while bytes of an incomplete character are held back.
    public var hasPendingBytes: Bool { !pending.isEmpty }

    /// Adds one token; returns the text that is now complete (possibly "").
    public mutating func append(_ id: Int32) -> String {
        tokenizer.appendPiece(id, showSpecial: showSpecial, atStart: &atStart, to: &pending)
        let cut = StreamDecoder.completePrefixLength(pending)
        if cut == 0 { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Adds several tokens; returns the text that is now complete.
    public mutating func append<S: Sequence>(contentsOf ids: S) -> String where S.Element == Int32 {
        var s = ""
        for id in ids { s += append(id) }
        return s
    }

    /// Returns whatever is held back (an unfinished character becomes U+FFFD).
    public mutating func flush() -> String {
        let text = String(decoding: pending, as: UTF8.self)
        pending.removeAll()
        return text
    }

    /// Drops held-back bytes and starts a new text (as if freshly created).
    public mutating func reset() {
        pending.removeAll()
        atStart = true
    }

    /// Length of the longest prefix that ends on a character boundary: everything except a
    /// trailing lead byte whose continuation bytes have not all arrived yet. Cutting right before
    /// a lead byte is safe: a lead byte always starts a new sequence, whether or not the bytes
    /// before it were valid, so decoding the two parts separately equals decoding the whole.
    static func completePrefixLength(_ b: [UInt8]) -> Int {
        let n = b.count
        var k = 1
        while k <= min(3, n) {
            let byte = b[n - k]
            if byte & 0xC0 == 0x80 { k += 1; continue }  // continuation byte: look further back
            let need: Int
            switch byte {
            case 0xC2...0xDF: need = 2
            case 0xE0...0xEF: need = 3
            case 0xF0...0xF4: need = 4
            default: need = 1  // ASCII or a byte that can never start a sequence
            }
            return k < need ? n - k : n
        }
        return n
    }
}
