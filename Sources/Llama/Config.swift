import GGUF

/// Hyperparameters of a LLaMA-family model, read from GGUF metadata.
public struct LlamaConfig: Sendable, Hashable {
    public var architecture: String
    public var name: String
    public var layers: Int          // L
    public var dim: Int             // D, embedding width
    public var heads: Int           // H, query heads
    public var kvHeads: Int         // Hkv, key/value heads (GQA when < H, MQA when 1)
    /// Dh, the size of one head (`attention.key_length`); D / H unless the file says otherwise
    /// (Mistral-Nemo-shaped files have H·Dh ≠ D).
    public var headDim: Int
    public var ffnDim: Int          // F, SwiGLU hidden width
    public var vocabSize: Int       // V
    public var contextLength: Int
    public var ropeBase: Float
    public var ropeDim: Int         // leading dims of each head that are rotated
    public var ropeNeox: Bool       // NEOX pairs (i, i + ropeDim/2) instead of adjacent pairs (2i, 2i+1)
    /// Per-frequency divisors of RoPE's angles, [ropeDim / 2] (Llama 3.x `rope_freqs.weight`);
    /// nil when the file has none.
    public var ropeFreqFactors: [Float]?
    /// Linear RoPE scaling: angles are multiplied by this (1 / `rope.scaling.factor`); 1 without.
    public var ropeFreqScale: Float
    public var normEps: Float

    public var qDim: Int { heads * headDim }       // Q = H·Dh, width of the queries (and of attention's output)
    public var kvDim: Int { kvHeads * headDim }    // KV = Hkv·Dh
    public var groupSize: Int { heads / kvHeads }
    /// Bytes of K and V for one token across all layers as the live cache holds them (f16).
    public var kvBytesPerTokenF16: Int { layers * 2 * kvDim * 2 }

    /// Architectures whose weights and forward pass match this implementation.
    public static let supportedArchitectures: Set<String> = ["llama", "mistral", "granite_llama", "qwen2"]
    /// Architectures whose RoPE pairs dimension i with i + ropeDim/2 (llama.cpp's LLAMA_ROPE_TYPE_NEOX).
    public static let neoxArchitectures: Set<String> = ["qwen2"]

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
        guard kvHeads > 0, heads % kvHeads == 0 else {
            throw GGUFError.unsupportedModel("\(heads) query heads are not a multiple of \(kvHeads) key/value heads")
        }
        if let k = gguf.int("\(arch).attention.key_length") {
            headDim = k
        } else {
            guard dim % heads == 0 else {
                throw GGUFError.unsupportedModel("\(heads) heads do not divide width \(dim) and the file has no attention.key_length")
            }
            headDim = dim / heads
        }
        guard headDim > 0, headDim % 8 == 0, headDim <= 512, (heads * headDim) % 32 == 0 else {
            throw GGUFError.unsupportedModel("head size \(headDim) × \(heads) heads (kvduel needs a multiple of 8, at most 512, and a query width that is a multiple of 32)")
        }
        if let v = gguf.int("\(arch).attention.value_length"), v != headDim {
            throw GGUFError.unsupportedModel("value head size \(v) differs from key head size \(headDim)")
        }
        vocabSize = gguf.int("\(arch).vocab_size") ?? gguf.strings("tokenizer.ggml.tokens")?.count ?? 0
        ropeBase = gguf.float("\(arch).rope.freq_base") ?? 10000
        ropeDim = gguf.int("\(arch).rope.dimension_count") ?? headDim
        guard ropeDim > 0, ropeDim <= headDim, ropeDim % 2 == 0 else {
            throw GGUFError.unsupportedModel("rope dimension \(ropeDim) for head size \(headDim)")
        }
        ropeNeox = Self.neoxArchitectures.contains(arch)

        // RoPE scaling. Llama 3.x files carry their "llama3" scaling as per-frequency factors in
        // `rope_freqs.weight`; older files may ask for linear scaling.
        ropeFreqScale = 1
        let scaling = gguf.string("\(arch).rope.scaling.type") ?? "none"
        let factor = gguf.float("\(arch).rope.scaling.factor") ?? gguf.float("\(arch).rope.scale_linear") ?? 0
        switch scaling {
        case "none":
            if gguf.string("\(arch).rope.scaling.type") == nil, factor > 0, factor != 1 { ropeFreqScale = 1 / factor }
        case "linear":
            if factor > 0 { ropeFreqScale = 1 / factor }
        default:
            throw GGUFError.unsupportedModel("RoPE scaling '\(scaling)' (kvduel supports none, linear and Llama 3's rope_freqs factors)")
        }
        if let t = gguf.tensor("rope_freqs.weight") {
            guard t.elementCount == ropeDim / 2 else {
                throw GGUFError.unsupportedModel("rope_freqs.weight has \(t.elementCount) factors, expected \(ropeDim / 2)")
            }
            let f = try gguf.floats(of: t)
            guard f.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw GGUFError.unsupportedModel("rope_freqs.weight holds a factor that is not a positive number")
            }
            ropeFreqFactors = f
        } else {
            ropeFreqFactors = nil
        }
        normEps = gguf.float("\(arch).attention.layer_norm_rms_epsilon") ?? 1e-5
        guard vocabSize > 0 else { throw GGUFError.unsupportedModel("vocabulary size unknown") }
    }

    public init(architecture: String = "llama", name: String = "toy", layers: Int, dim: Int, heads: Int,
                kvHeads: Int, ffnDim: Int, vocabSize: Int, contextLength: Int = 2048,
                ropeBase: Float = 10000, normEps: Float = 1e-5, headDim: Int? = nil,
                ropeNeox: Bool = false, ropeFreqFactors: [Float]? = nil, ropeFreqScale: Float = 1) {
        self.architecture = architecture
        self.name = name
        self.layers = layers
        self.dim = dim
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim ?? dim / heads
        self.ffnDim = ffnDim
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.ropeBase = ropeBase
        self.ropeDim = self.headDim
        self.ropeNeox = ropeNeox
        self.ropeFreqFactors = ropeFreqFactors
        self.ropeFreqScale = ropeFreqScale
        self.normEps = normEps
    }
}
