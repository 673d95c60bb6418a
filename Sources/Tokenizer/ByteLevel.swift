/// GPT-2 byte-level mapping: every byte becomes a printable Unicode scalar, so that byte-level
/// BPE vocabularies can be stored as strings (space 0x20 is `Ġ` U+0120, newline is `Ċ` U+010A).
enum ByteLevel {
    /// byte -> scalar value.
    static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var extra: UInt32 = 0
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = UInt32(b)
            } else {
                table[b] = 256 + extra
                extra += 1
            }
        }
        return table
    }()

    /// scalar value (< 0x144) -> byte, or -1.
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in byteToScalar.enumerated() { table[Int(s)] = Int16(b) }
        return table
    }()

    /// UTF-8 of the mapped scalar for each byte.
    static let byteToUTF8: [[UInt8]] = byteToScalar.map { Array(String(Unicode.Scalar($0)!).utf8) }

    /// Encodes raw bytes into the byte-level alphabet (as UTF-8 bytes).
    static func encode<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(contentsOf: byteToUTF8[Int(b)]) }
        return out
    }

    /// Decodes a byte-level token text back to raw bytes. Scalars outside the alphabet are kept
    /// as their own UTF-8 (llama.cpp would print a placeholder for them instead).
    static func decode(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for s in text.unicodeScalars {
            let v = Int(s.value)
            if v < scalarToByte.count, scalarToByte[v] >= 0 {
                out.append(UInt8(scalarToByte[v]))
            } else {
                out.append(contentsOf: Array(String(s).utf8))
            }
        }
        return out
    }
}

/// Decodes well-formed UTF-8 into scalar values and the byte offset of each scalar.
/// (Input always comes from a Swift `String`, so it is valid UTF-8.)
@inline(__always)
func decodeUTF8(_ bytes: UnsafeBufferPointer<UInt8>, scalars: inout [UInt32], offsets: inout [Int32]) {
    scalars.removeAll(keepingCapacity: true)
    offsets.removeAll(keepingCapacity: true)
    var i = 0
    let n = bytes.count
    while i < n {
        let b0 = UInt32(bytes[i])
        offsets.append(Int32(i))
        if b0 < 0x80 {
            scalars.append(b0); i += 1
        } else if b0 < 0xE0, i + 1 < n {
            scalars.append((b0 & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F)); i += 2
        } else if b0 < 0xF0, i + 2 < n {
            scalars.append((b0 & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F)); i += 3
        } else if i + 3 < n {
            scalars.append((b0 & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12
                           | UInt32(bytes[i + 2] & 0x3F) << 6 | UInt32(bytes[i + 3] & 0x3F)); i += 4
        } else {
            scalars.append(0xFFFD); i = n  // truncated sequence; cannot happen for String input
        }
    }
}

/// Character classes used by the pre-tokenizer regexes.
enum CharClass {
    static let outOfRange: UInt8 = 0   // sentinel past the end of a chunk
    static let letter: UInt8 = 1       // \p{L}
    static let number: UInt8 = 2       // \p{N}
    static let space: UInt8 = 4        // \s (Unicode White_Space)
    static let other: UInt8 = 8        // [^\s\p{L}\p{N}]

    static let ascii: [UInt8] = (0..<128).map { classify(UInt32($0)) }

    @inline(__always)
    static func of(_ v: UInt32) -> UInt8 {
        v < 128 ? ascii[Int(v)] : classify(v)
    }

    static func classify(_ v: UInt32) -> UInt8 {
        guard let s = Unicode.Scalar(v) else { return other }
        let p = s.properties
        if p.isWhitespace { return space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        default:
            return other
        }
    }
}
