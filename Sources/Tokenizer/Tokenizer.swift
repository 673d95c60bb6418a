import Foundation

/// A LLaMA-family tokenizer built from GGUF `tokenizer.ggml.*` metadata: byte-level BPE
/// (`gpt2`, with the pre-tokenizers of `PreTokenizer`) or SentencePiece (`llama`).
/// Encoding matches llama.cpp's `llama_tokenize`. Thread-safe.
public final class Tokenizer: @unchecked Sendable {
    public enum Model: String, Sendable {
        case bpe = "gpt2"
        case sentencePiece = "llama"
    }

    public let model: Model
    /// nil for SentencePiece.
    public let preTokenizer: PreTokenizer?
    public let vocabSize: Int
    public let bosID: Int32?
    public let eosID: Int32?
    public let eotID: Int32?
    public let unknownID: Int32?
    /// Whether `encode` adds BOS by default (`tokenizer.ggml.add_bos_token`).
    public let addBOS: Bool
    /// SentencePiece only: a space is prefixed to text (and stripped again when decoding).
    public let addSpacePrefix: Bool
    /// Token ids that end generation: eos, eot and control tokens such as `<|im_end|>`.
    public let endOfGenerationIDs: Set<Int32>
    /// Chat formatting detected from `tokenizer.chat_template`.
    public let chatTemplate: ChatTemplate
    /// The raw `tokenizer.chat_template`, if any.
    public let chatTemplateSource: String?

    let tokens: [String]
    let types: [TokenType]
    let tokenIDs: [[UInt8]: Int32]
    /// Bytes each token decodes to (control / unknown tokens: their text, shown on request).
    let pieces: [[UInt8]]
    let specialTokens: [SpecialToken]
    let bpe: BPEModel?
    let spm: SPMModel?

    struct SpecialToken {
        let id: Int32
        let bytes: [UInt8]
        /// Control and unknown tokens are only matched when parsing special tokens;
        /// user-defined tokens always are (as in llama.cpp).
        let needsParseSpecial: Bool
    }

    private let lock = NSLock()
    private var cache: [UInt64: CacheEntry] = [:]
    private var scratch = BPEModel.Scratch()
    private var scalars: [UInt32] = []
    private var offsets: [Int32] = []
    private var classes: [UInt8] = []
    static let cacheLimit = 65_536

    struct CacheEntry {
        let word: [UInt8]
        let ids: [Int32]
    }

    /// Names of control tokens that end a turn (matched only when they are control or user-defined).
    static let endOfGenerationNames: Set<String> = [
        "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "<|eom_id|>",
        "<|end|>", "<end_of_turn>", "<EOT>",
    ]

    public init(vocabulary v: Vocabulary) throws {
        guard let model = Model(rawValue: v.model) else {
            throw TokenizerError.unsupportedModel(v.model)
        }
        guard !v.tokens.isEmpty else {
            throw TokenizerError.invalidVocabulary("tokenizer.ggml.tokens is empty")
        }
        guard v.tokens.count < Int(Int32.max) / 2 else {
            throw TokenizerError.invalidVocabulary("too many tokens (\(v.tokens.count))")
        }
        if !v.tokenTypes.isEmpty && v.tokenTypes.count != v.tokens.count {
            throw TokenizerError.invalidVocabulary(
                "\(v.tokenTypes.count) token types for \(v.tokens.count) tokens")
        }
        if !v.scores.isEmpty && v.scores.count != v.tokens.count {
            throw TokenizerError.invalidVocabulary("\(v.scores.count) scores for \(v.tokens.count) tokens")
        }
        for (key, value) in [("bos", v.bosID), ("eos", v.eosID), ("eot", v.eotID), ("unknown", v.unknownID)] {
            if let id = value, id < 0 || Int(id) >= v.tokens.count {
                throw TokenizerError.invalidVocabulary("\(key) token id \(id) out of range")
            }
        }
        self.model = model
        switch model {
        case .bpe:
            preTokenizer = try PreTokenizer(name: v.pre)
            if v.merges.isEmpty { throw TokenizerError.missingMetadata("tokenizer.ggml.merges") }
        case .sentencePiece:
            preTokenizer = nil
        }
        vocabSize = v.tokens.count
        bosID = v.bosID
        eosID = v.eosID
        eotID = v.eotID
        unknownID = v.unknownID
        // llama.cpp defaults: SentencePiece and Llama-3 add BOS unless the GGUF says otherwise.
        addBOS = v.addBOS ?? (model == .sentencePiece || preTokenizer == .llama3)
        addSpacePrefix = model == .sentencePiece ? (v.addSpacePrefix ?? true) : false
        tokens = v.tokens
        types = (0..<v.tokens.count).map { v.type(of: $0) }

        var ids: [[UInt8]: Int32] = [:]
        ids.reserveCapacity(v.tokens.count)
        for (i, t) in v.tokens.enumerated() { ids[Array(t.utf8)] = Int32(i) }  // later duplicates win, as in llama.cpp
        tokenIDs = ids

        var pieces: [[UInt8]] = []
        pieces.reserveCapacity(v.tokens.count)
        var specials: [SpecialToken] = []
        var eog = Set<Int32>()
        for (i, t) in v.tokens.enumerated() {
            let type = types[i]
            switch type {
            case .normal, .undefined:
                if model == .bpe {
                    pieces.append(ByteLevel.decode(t))
                } else {
                    var b: [UInt8] = []
                    for u in t.utf8 { b.append(u) }
                    pieces.append(Tokenizer.unescapeSpaces(b))
                }
            case .byte:
                pieces.append(model == .sentencePiece ? Tokenizer.parseByteToken(t).map { [$0] } ?? [] : [])
            case .userDefined, .control, .unknown:
                pieces.append(Array(t.utf8))
            case .unused:
                pieces.append([])
            }
            if type == .control || type == .userDefined || type == .unknown, !t.isEmpty {
                specials.append(SpecialToken(id: Int32(i), bytes: Array(t.utf8),
                                             needsParseSpecial: type != .userDefined))
            }
            if (type == .control || type == .userDefined) && Tokenizer.endOfGenerationNames.contains(t) {
                eog.insert(Int32(i))
            }
        }
        if let e = v.eosID { eog.insert(e) }
        if let e = v.eotID { eog.insert(e) }
        self.pieces = pieces
        // Longest first, as llama.cpp's `cache_special_tokens`.
        specialTokens = specials.sorted { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }
        endOfGenerationIDs = eog

        switch model {
        case .bpe:
            bpe = BPEModel(tokenIDs: ids, tokenCount: v.tokens.count, merges: v.merges)
            spm = nil
        case .sentencePiece:
            bpe = nil
            spm = SPMModel(tokenIDs: ids, scores: v.scores, unknownID: v.unknownID)
        }
        chatTemplateSource = v.chatTemplate
        chatTemplate = ChatTemplate(template: v.chatTemplate)
    }

    /// Builds a tokenizer from `tokenizer.*` metadata (e.g. a `GGUFFile`).
    public convenience init(metadata: TokenizerMetadata) throws {
        try self.init(vocabulary: Vocabulary(metadata: metadata))
    }

    // MARK: - Encoding

    enum Fragment {
        case text(Int, Int)  // byte range [from, to)
        case token(Int32)
    }

    /// Tokenizes `text`. Control tokens such as `<|im_start|>` are single tokens when
    /// `parseSpecial` is true; otherwise they are tokenized as plain text. BOS is prepended when
    /// `addBOS` is true, or when it is nil and the model asks for it.
    public func encode(_ text: String, addBOS: Bool? = nil, parseSpecial: Bool = true) -> [Int32] {
        let bytes = Array(text.utf8)
        var out: [Int32] = []
        out.reserveCapacity(bytes.count / 3 + 2)
        if addBOS ?? self.addBOS, let bos = bosID { out.append(bos) }
        let fragments = partition(bytes, parseSpecial: parseSpecial)
        lock.lock()
        defer { lock.unlock() }
        bytes.withUnsafeBufferPointer { buf in
            var previousWasSpecial = true
            for f in fragments {
                switch f {
                case .token(let id):
                    out.append(id)
                    previousWasSpecial = true
                case .text(let from, let to):
                    if bpe != nil {
                        encodeBPE(UnsafeBufferPointer(rebasing: buf[from..<to]), into: &out)
                    } else {
                        encodeSPM(buf[from..<to], prefixSpace: addSpacePrefix && previousWasSpecial, into: &out)
                    }
                    previousWasSpecial = false
                }
            }
        }
        return out
    }

    /// Splits text at special-token occurrences (llama.cpp `tokenizer_st_partition`): for each
    /// special token, longest first, every remaining text fragment is split at its occurrences.
    func partition(_ bytes: [UInt8], parseSpecial: Bool) -> [Fragment] {
        var fragments: [Fragment] = bytes.isEmpty ? [] : [.text(0, bytes.count)]
        guard !specialTokens.isEmpty else { return fragments }
        bytes.withUnsafeBufferPointer { buf in
            for sp in specialTokens where parseSpecial || !sp.needsParseSpecial {
                let pat = sp.bytes
                let m = pat.count
                let first = pat[0]
                var result: [Fragment] = []
                result.reserveCapacity(fragments.count)
                var changed = false
                for f in fragments {
                    guard case .text(let from, let to) = f, to - from >= m else { result.append(f); continue }
                    var start = from
                    var i = from
                    while i + m <= to {
                        if buf[i] == first && Tokenizer.matches(buf, i, pat) {
                            if start < i { result.append(.text(start, i)) }
                            result.append(.token(sp.id))
                            changed = true
                            i += m
                            start = i
                        } else {
                            i += 1
                        }
                    }
                    if start < to { result.append(.text(start, to)) }
                }
                if changed { fragments = result }
            }
        }
        return fragments
    }

    @inline(__always)
    static func matches(_ buf: UnsafeBufferPointer<UInt8>, _ at: Int, _ pat: [UInt8]) -> Bool {
        for k in 1..<pat.count where buf[at + k] != pat[k] { return false }
        return true
    }

    /// Caller holds `lock`.
    private func encodeBPE(_ text: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        guard let bpe, let pre = preTokenizer else { return }
        decodeUTF8(text, scalars: &scalars, offsets: &offsets)
        offsets.append(Int32(text.count))
        classes.removeAll(keepingCapacity: true)
        for v in scalars { classes.append(CharClass.of(v)) }
        let ignoreMerges = pre == .llama3
        scalars.withUnsafeBufferPointer { cp in
            classes.withUnsafeBufferPointer { cl in
                offsets.withUnsafeBufferPointer { off in
                    pre.split(cp, cl, 0, cp.count) { s, e in
                        let word = UnsafeBufferPointer(rebasing: text[Int(off[s])..<Int(off[e])])
                        encodeWord(word, bpe, ignoreMerges, &out)
                    }
                }
            }
        }
    }

    @inline(__always)
    private func encodeWord(_ word: UnsafeBufferPointer<UInt8>, _ bpe: BPEModel, _ ignoreMerges: Bool,
                            _ out: inout [Int32]) {
        if word.count == 1 {
            bpe.encode(word, scratch: &scratch, into: &out)
            return
        }
        // FNV-1a; entries keep their bytes, so a hash collision only costs a cache miss.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in word { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        if let e = cache[h], e.word.elementsEqual(word) {
            out.append(contentsOf: e.ids)
            return
        }
        let before = out.count
        if ignoreMerges, let id = tokenIDs[ByteLevel.encode(word)] {
            out.append(id)
        } else {
            bpe.encode(word, scratch: &scratch, into: &out)
        }
        if cache.count >= Tokenizer.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[h] = CacheEntry(word: Array(word), ids: Array(out[before...]))
    }

    private func encodeSPM<C: Collection>(_ text: C, prefixSpace: Bool, into out: inout [Int32]) where C.Element == UInt8 {
        guard let spm else { return }
        var escaped: [UInt8] = []
        escaped.reserveCapacity(text.count + 8)
        if prefixSpace { escaped.append(contentsOf: SPMModel.escapedSpace) }
        for b in text {
            if b == 0x20 { escaped.append(contentsOf: SPMModel.escapedSpace) } else { escaped.append(b) }
        }
        spm.encode(escaped, into: &out)
    }

    // MARK: - Decoding

    /// Decodes token ids to text. Control tokens decode to "" unless `showSpecial`.
    /// Invalid UTF-8 (e.g. a cut multi-byte character) becomes U+FFFD.
    public func decode(_ ids: [Int32], showSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        var atStart = true
        for id in ids { appendPiece(id, showSpecial: showSpecial, atStart: &atStart, to: &bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The bytes `id` decodes to (control tokens: empty unless `showSpecial`).
    public func tokenBytes(_ id: Int32, showSpecial: Bool = false) -> [UInt8] {
        guard id >= 0, Int(id) < vocabSize else { return [] }
        if isSpecialPiece(Int(id)) && !showSpecial { return [] }
        return pieces[Int(id)]
    }

    @inline(__always)
    func isSpecialPiece(_ i: Int) -> Bool {
        types[i] == .control || types[i] == .unknown
    }

    /// Appends the bytes of one token. For SentencePiece the leading space of the first text
    /// piece is dropped (it was added by `addSpacePrefix`).
    func appendPiece(_ id: Int32, showSpecial: Bool, atStart: inout Bool, to bytes: inout [UInt8]) {
        guard id >= 0, Int(id) < vocabSize else { return }
        let i = Int(id)
        if isSpecialPiece(i) {
            if showSpecial { bytes.append(contentsOf: pieces[i]) }
            return
        }
        let p = pieces[i]
        if atStart && !p.isEmpty {
            atStart = false
            if addSpacePrefix && p[0] == 0x20 {
                bytes.append(contentsOf: p[1...])
                return
            }
        }
        bytes.append(contentsOf: p)
    }

    /// A streaming decoder for this tokenizer.
    public func makeStreamDecoder(showSpecial: Bool = false) -> StreamDecoder {
        StreamDecoder(tokenizer: self, showSpecial: showSpecial)
    }

    // MARK: - Vocabulary access

    /// The token's text as stored in the vocabulary (byte-level BPE: `Ġ` for space), or "" for
    /// an invalid id.
    public func tokenText(_ id: Int32) -> String {
        guard id >= 0, Int(id) < vocabSize else { return "" }
        return tokens[Int(id)]
    }

    /// The token's type, or nil for an invalid id.
    public func tokenType(_ id: Int32) -> TokenType? {
        guard id >= 0, Int(id) < vocabSize else { return nil }
        return types[Int(id)]
    }

    /// The id of a vocabulary entry: `piece` is looked up as stored (`Ġworld`), then in its
    /// encoded form (`" world"` -> `Ġworld` for byte-level BPE, `▁world` for SentencePiece).
    public func id(of piece: String) -> Int32? {
        let raw = Array(piece.utf8)
        if let id = tokenIDs[raw] { return id }
        switch model {
        case .bpe:
            return tokenIDs[ByteLevel.encode(raw)]
        case .sentencePiece:
            var e: [UInt8] = []
            for b in raw { if b == 0x20 { e.append(contentsOf: SPMModel.escapedSpace) } else { e.append(b) } }
            return tokenIDs[e]
        }
    }

    /// True for tokens that end generation (eos, eot, `<|im_end|>`, `<|eot_id|>`, ...).
    public func isEndOfGeneration(_ id: Int32) -> Bool {
        endOfGenerationIDs.contains(id)
    }

    /// True for control tokens (type 3), e.g. `<|im_start|>`.
    public func isControl(_ id: Int32) -> Bool {
        tokenType(id) == .control
    }

    // MARK: - Helpers

    static func unescapeSpaces(_ b: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            if i + 2 < b.count && b[i] == 0xE2 && b[i + 1] == 0x96 && b[i + 2] == 0x81 {
                out.append(0x20); i += 3
            } else {
                out.append(b[i]); i += 1
            }
        }
        return out
    }

    /// `<0xAB>` -> 0xAB.
    static func parseByteToken(_ t: String) -> UInt8? {
        let u = Array(t.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        return UInt8(String(decoding: u[3...4], as: UTF8.self), radix: 16)
    }
}
