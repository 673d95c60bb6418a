/// Token types as stored in `tokenizer.ggml.token_type` (llama.cpp `llama_token_type`).
public enum TokenType: Int32, Sendable {
    case undefined = 0
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6
}

/// Errors thrown while building a tokenizer. `description` is always one line.
public enum TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// `tokenizer.ggml.model` names a tokenizer we do not implement.
    case unsupportedModel(String)
    /// `tokenizer.ggml.pre` names a pre-tokenizer we do not implement.
    case unsupportedPreTokenizer(String)
    /// A required metadata key is absent or has the wrong type.
    case missingMetadata(String)
    /// The vocabulary is inconsistent (e.g. empty, or arrays of different lengths).
    case invalidVocabulary(String)

    public var description: String {
        switch self {
        case .unsupportedModel(let name):
            return "unsupported tokenizer model '\(name)' (supported: \(Vocabulary.supportedModels.joined(separator: ", ")))"
        case .unsupportedPreTokenizer(let name):
            return "unsupported tokenizer pre-tokenizer '\(name)' (supported: \(PreTokenizer.supportedNames.joined(separator: ", ")))"
        case .missingMetadata(let key):
            return "tokenizer metadata '\(key)' is missing or has the wrong type"
        case .invalidVocabulary(let why):
            return "invalid tokenizer vocabulary: \(why)"
        }
    }
}

/// Everything a tokenizer needs, as plain arrays (the `tokenizer.ggml.*` GGUF keys).
public struct Vocabulary: Sendable {
    public static let supportedModels = ["gpt2", "llama"]

    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE) or "llama" (SentencePiece).
    public var model: String
    /// `tokenizer.ggml.pre`: pre-tokenizer name (BPE only); nil means "default".
    public var pre: String?
    /// `tokenizer.ggml.tokens`, indexed by token id.
    public var tokens: [String]
    /// `tokenizer.ggml.token_type`; empty means every token is normal.
    public var tokenTypes: [Int32]
    /// `tokenizer.ggml.merges` ("left right"), in rank order (BPE).
    public var merges: [String]
    /// `tokenizer.ggml.scores` (SentencePiece); empty means all zero.
    public var scores: [Float]
    public var bosID: Int32?
    public var eosID: Int32?
    public var eotID: Int32?
    public var unknownID: Int32?
    /// `tokenizer.ggml.add_bos_token`; nil means the model type's default.
    public var addBOS: Bool?
    /// `tokenizer.ggml.add_space_prefix` (SentencePiece); nil means true.
    public var addSpacePrefix: Bool?
    /// `tokenizer.chat_template` (Jinja source), if any.
    public var chatTemplate: String?

    public init(model: String, pre: String? = nil, tokens: [String], tokenTypes: [Int32] = [],
                merges: [String] = [], scores: [Float] = [],
                bosID: Int32? = nil, eosID: Int32? = nil, eotID: Int32? = nil, unknownID: Int32? = nil,
                addBOS: Bool? = nil, addSpacePrefix: Bool? = nil, chatTemplate: String? = nil) {
        self.model = model
        self.pre = pre
        self.tokens = tokens
        self.tokenTypes = tokenTypes
        self.merges = merges
        self.scores = scores
        self.bosID = bosID
        self.eosID = eosID
        self.eotID = eotID
        self.unknownID = unknownID
        self.addBOS = addBOS
        self.addSpacePrefix = addSpacePrefix
        self.chatTemplate = chatTemplate
    }

    func type(of id: Int) -> TokenType {
        guard id < tokenTypes.count else { return .normal }
        return TokenType(rawValue: tokenTypes[id]) ?? .normal
    }
}

/// A source of `tokenizer.*` metadata. `GGUFFile` conforms; tests can use a dictionary.
public protocol TokenizerMetadata {
    func string(_ key: String) -> String?
    func int(_ key: String) -> Int?
    func bool(_ key: String) -> Bool?
    func strings(_ key: String) -> [String]?
    func ints(_ key: String) -> [Int]?
    func floats(_ key: String) -> [Float]?
}

extension Vocabulary {
    /// Reads the standard `tokenizer.ggml.*` keys. Throws if the model or token list is missing.
    public init(metadata m: TokenizerMetadata) throws {
        guard let model = m.string("tokenizer.ggml.model") else {
            throw TokenizerError.missingMetadata("tokenizer.ggml.model")
        }
        guard let tokens = m.strings("tokenizer.ggml.tokens") else {
            throw TokenizerError.missingMetadata("tokenizer.ggml.tokens")
        }
        func id(_ key: String) -> Int32? {
            guard let v = m.int(key), v >= 0, v < tokens.count else { return nil }
            return Int32(v)
        }
        self.init(model: model,
                  pre: m.string("tokenizer.ggml.pre"),
                  tokens: tokens,
                  tokenTypes: (m.ints("tokenizer.ggml.token_type") ?? []).map { Int32(truncatingIfNeeded: $0) },
                  merges: m.strings("tokenizer.ggml.merges") ?? [],
                  scores: m.floats("tokenizer.ggml.scores") ?? [],
                  bosID: id("tokenizer.ggml.bos_token_id"),
                  eosID: id("tokenizer.ggml.eos_token_id"),
                  eotID: id("tokenizer.ggml.eot_token_id"),
                  unknownID: id("tokenizer.ggml.unknown_token_id"),
                  addBOS: m.bool("tokenizer.ggml.add_bos_token"),
                  addSpacePrefix: m.bool("tokenizer.ggml.add_space_prefix"),
                  chatTemplate: m.string("tokenizer.chat_template"))
    }
}
