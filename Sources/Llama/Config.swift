import GGUF

/// Hyperparameters of a LLaMA-family model, read from GGUF metadata.
public struct LlamaConfig: Sendable, Hashable {
    public var architecture: String
    public var name: String
    public var layers: Int          // L
    public var dim: Int             // D, embedding width
    public var heads: Int           // H, query heads
    public var kvHeads: Int         // Hkv, key/value heads (GQA when < H)
    public var headDim: Int         // Dh = D / H
    public var ffnDim: Int          // F, SwiGLU hidden width
    public var vocabSize: Int       // V
    public var contextLength: Int
    public var ropeBase: Float
    public var ropeDim: Int         // leading dims of each head that are rotated
    public var ropeNeox: Bool       // NEOX (half-split) pairs instead of adjacent pairs
    public var normEps: Float

    public var kvDim: Int { kvHeads * headDim }
    public var groupSize: Int { heads / kvHeads }
    /// Bytes of K and V for one token across all layers in float32.
    public var kvBytesPerTokenF32: Int { layers * 2 * kvDim * 4 }

    /// Architectures whose weights and forward pass match this implementation.
    public static let supportedArchitectures: Set<String> = ["llama", "mistral", "granite_llama"]

    public init(gguf: GGUFFile) throws {
        guard let arch = gguf.string("general.architecture") else {
            throw GGUFError.unsupportedModel("metadata has no general.architecture")
        }
        guard Self.supportedArchitectures.contains(arch) else {
            throw GGUFError.unsupportedModel("architecture '\(arch)' (kvduel runs LLaMA-family models: \(Self.supportedArchitectures.sorted().joined(separator: ", ")))")
        }
        func req(_ key: String) throws -> Int {
            guard let v = gguf.int("\(arch).\(key)"), v > 0, v < 1 << 24 else {
                throw GGUFError.unsupportedModel("missing or invalid \(arch).\(key)")
            }
            return v
        }
        architecture = arch
        name = gguf.string("general.name") ?? "model"
        layers = try req("block_count")
        dim = try req("embedding_length")
        heads = try req("attention.head_count")
        kvHeads = gguf.int("\(arch).attention.head_count_kv") ?? heads
        ffnDim = try req("feed_forward_length")
        contextLength = gguf.int("\(arch).context_length") ?? 2048
        guard dim % heads == 0, kvHeads > 0, heads % kvHeads == 0 else {
            throw GGUFError.unsupportedModel("head counts \(heads)/\(kvHeads) do not divide width \(dim)")
        }
        headDim = gguf.int("\(arch).attention.key_length") ?? dim / heads
        guard headDim * heads == dim, headDim % 8 == 0, headDim <= 512 else {
            throw GGUFError.unsupportedModel("head size \(headDim) does not fit width \(dim)")
        }
        vocabSize = gguf.int("\(arch).vocab_size") ?? gguf.strings("tokenizer.ggml.tokens")?.count ?? 0
        ropeBase = gguf.float("\(arch).rope.freq_base") ?? 10000
        ropeDim = gguf.int("\(arch).rope.dimension_count") ?? headDim
        guard ropeDim > 0, ropeDim <= headDim, ropeDim % 2 == 0 else {
            throw GGUFError.unsupportedModel("rope dimension \(ropeDim) for head size \(headDim)")
        }
        ropeNeox = false  // llama.cpp uses normal (adjacent-pair) RoPE for these architectures
        normEps = gguf.float("\(arch).attention.layer_norm_rms_epsilon") ?? 1e-5
        guard vocabSize > 0 else { throw GGUFError.unsupportedModel("vocabulary size unknown") }
    }

    public init(architecture: String = "llama", name: String = "toy", layers: Int, dim: Int, heads: Int,
                kvHeads: Int, ffnDim: Int, vocabSize: Int, contextLength: Int = 2048,
                ropeBase: Float = 10000, normEps: Float = 1e-5) {
        self.architecture = architecture
        self.name = name
        self.layers = layers
        self.dim = dim
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = dim / heads
        self.ffnDim = ffnDim
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.ropeBase = ropeBase
        self.ropeDim = dim / heads
        self.ropeNeox = false
        self.normEps = normEps
    }
}
