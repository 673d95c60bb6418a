/// Pre-tokenizers: split text into words before BPE, as llama.cpp does (`unicode.cpp`,
/// `unicode_regex_split_custom_gpt2` / `_llama3`). Hand-written scanners over Unicode scalars;
/// lookahead never sees past the end of the chunk being split, exactly like llama.cpp.
public enum PreTokenizer: String, Sendable, CaseIterable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// `\p{N}` (each digit on its own), then the GPT-2 regex on the pieces in between.
    case smollm
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case llama3
    /// The Llama-3 regex with `\p{N}` instead of `\p{N}{1,3}`.
    case qwen2

    public static let supportedNames = ["smollm", "gpt2", "llama3", "qwen2"]

    /// Maps a `tokenizer.ggml.pre` value to a pre-tokenizer. nil (key absent) means "default".
    /// Aliases follow llama.cpp's grouping of pre-tokenizer names that share a regex.
    public init(name: String?) throws {
        switch name ?? "default" {
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva":
            self = .smollm
        case "gpt2", "gpt-2", "default", "mpt", "olmo", "jais":
            self = .gpt2
        case "llama3", "llama-v3", "llama-bpe", "falcon3":
            self = .llama3
        case "qwen2", "deepseek-r1-qwen", "stablelm2":
            self = .qwen2
        case let other:
            throw TokenizerError.unsupportedPreTokenizer(other)
        }
    }

    /// Splits `text` into pre-token words (for tests and debugging).
    public func split(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        let values = scalars.map(\.value)
        let classes = values.map(CharClass.of)
        var words: [String] = []
        values.withUnsafeBufferPointer { v in
            classes.withUnsafeBufferPointer { c in
                split(v, c, 0, v.count) { s, e in
                    var w = String.UnicodeScalarView()
                    w.append(contentsOf: scalars[s..<e])
                    words.append(String(w))
                }
            }
        }
        return words
    }

    /// Splits scalars `[start, end)` into words, calling `emit(wordStart, wordEnd)` in order.
    @inline(__always)
    func split(_ cp: UnsafeBufferPointer<UInt32>, _ cl: UnsafeBufferPointer<UInt8>,
               _ start: Int, _ end: Int, _ emit: (Int, Int) -> Void) {
        switch self {
        case .gpt2:
            PreTokenizer.scanGPT2(cp, cl, start, end, emit)
        case .smollm:
            // First regex `\p{N}`: every number scalar is its own chunk, and the runs between
            // them are chunks for the GPT-2 scanner.
            var chunk = start
            var i = start
            while i < end {
                if cl[i] == CharClass.number {
                    if chunk < i { PreTokenizer.scanGPT2(cp, cl, chunk, i, emit) }
                    emit(i, i + 1)
                    chunk = i + 1
                }
                i += 1
            }
            if chunk < end { PreTokenizer.scanGPT2(cp, cl, chunk, end, emit) }
        case .llama3:
            PreTokenizer.scanLlama3(cp, cl, start, end, maxDigits: 3, emit)
        case .qwen2:
            PreTokenizer.scanLlama3(cp, cl, start, end, maxDigits: 1, emit)
        }
    }

    // MARK: - Scanners

    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    static func scanGPT2(_ cp: UnsafeBufferPointer<UInt32>, _ cl: UnsafeBufferPointer<UInt8>,
                         _ start: Int, _ end: Int, _ emit: (Int, Int) -> Void) {
        @inline(__always) func cls(_ p: Int) -> UInt8 { p < end ? cl[p] : CharClass.outOfRange }
        var pos = start
        while pos < end {
            let c = cp[pos]
            // 's|'t|'re|'ve|'m|'ll|'d
            if c == 0x27, pos + 1 < end {
                let n = cp[pos + 1]
                if n == 0x73 || n == 0x74 || n == 0x6D || n == 0x64 {  // s t m d
                    emit(pos, pos + 2); pos += 2; continue
                }
                if pos + 2 < end {
                    let nn = cp[pos + 2]
                    if (n == 0x72 && nn == 0x65) || (n == 0x76 && nn == 0x65) || (n == 0x6C && nn == 0x6C) {  // re ve ll
                        emit(pos, pos + 3); pos += 3; continue
                    }
                }
            }
            let first = pos
            let c2 = c == 0x20 ? cls(pos + 1) : cl[pos]
            if c2 == CharClass.letter || c2 == CharClass.number || c2 == CharClass.other {
                // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
                if c == 0x20 { pos += 1 }
                while cls(pos) == c2 { pos += 1 }
                emit(first, pos); continue
            }
            var ws = 0
            while cls(pos + ws) == CharClass.space { ws += 1 }
            if ws > 1 && pos + ws < end {
                // `\s+(?!\S)`: leave the last space to prefix the next word
                pos += ws - 1
                emit(first, pos); continue
            }
            if ws > 0 {
                pos += ws
                emit(first, pos); continue
            }
            pos += 1  // no match (not reachable: every class is handled above)
            emit(first, pos)
        }
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}|
    ///  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    static func scanLlama3(_ cp: UnsafeBufferPointer<UInt32>, _ cl: UnsafeBufferPointer<UInt8>,
                           _ start: Int, _ end: Int, maxDigits: Int, _ emit: (Int, Int) -> Void) {
        @inline(__always) func cls(_ p: Int) -> UInt8 { p < end ? cl[p] : CharClass.outOfRange }
        @inline(__always) func cpt(_ p: Int) -> UInt32 { p < end ? cp[p] : 0xFFFF_FFFF }
        @inline(__always) func lower(_ v: UInt32) -> UInt32 { (v >= 0x41 && v <= 0x5A) ? v + 0x20 : v }
        var pos = start
        while pos < end {
            let c = cp[pos]
            let k = cl[pos]
            if c == 0x27, pos + 1 < end {
                let n = lower(cp[pos + 1])
                if n == 0x73 || n == 0x74 || n == 0x6D || n == 0x64 {
                    emit(pos, pos + 2); pos += 2; continue
                }
                if pos + 2 < end {
                    let nn = lower(cp[pos + 2])
                    if (n == 0x72 && nn == 0x65) || (n == 0x76 && nn == 0x65) || (n == 0x6C && nn == 0x6C) {
                        emit(pos, pos + 3); pos += 3; continue
                    }
                }
            }
            let first = pos
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(c == 0x0D || c == 0x0A || k == CharClass.number) {
                if k == CharClass.letter || cls(pos + 1) == CharClass.letter {
                    pos += 1
                    while cls(pos) == CharClass.letter { pos += 1 }
                    emit(first, pos); continue
                }
            }
            // \p{N}{1,maxDigits}
            if k == CharClass.number {
                var ini = pos
                while cls(pos) == CharClass.number {
                    pos += 1
                    if pos - ini >= maxDigits { emit(ini, pos); ini = pos }
                }
                if ini < pos { emit(ini, pos) }
                continue
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let c2 = c == 0x20 ? cls(pos + 1) : k
            if c2 == CharClass.other {
                if c == 0x20 { pos += 1 }
                while cls(pos) == CharClass.other { pos += 1 }
                while cpt(pos) == 0x0D || cpt(pos) == 0x0A { pos += 1 }
                emit(first, pos); continue
            }
            var ws = 0
            var lastNewlineEnd = -1
            while cls(pos + ws) == CharClass.space {
                let v = cp[pos + ws]
                if v == 0x0D || v == 0x0A { lastNewlineEnd = pos + ws + 1 }
                ws += 1
            }
            if lastNewlineEnd >= 0 {  // \s*[\r\n]+
                pos = lastNewlineEnd
                emit(first, pos); continue
            }
            if ws > 1 && pos + ws < end {  // \s+(?!\S)
                pos += ws - 1
                emit(first, pos); continue
            }
            if ws > 0 {  // \s+
                pos += ws
                emit(first, pos); continue
            }
            pos += 1
            emit(first, pos)
        }
    }
}
