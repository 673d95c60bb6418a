import Foundation
import GGUF

/// The model shapes that users bring, as small random-weight GGUFs: what differs from SmolLM2 is
/// the point (grouping of heads, head size, RoPE mode and factors, biases, tied output), not size.
/// The files are written deterministically, so a test regenerates byte for byte the file that
/// llama.cpp read to make the reference logits in Tests/LlamaTests/Fixtures/shapes/.
public struct ModelShape: Sendable, Hashable {
    public var name: String
    public var architecture: String
    public var layers: Int
    public var dim: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var ffn: Int
    public var ropeBase: Float
    /// Written as `rope_freqs.weight` (Llama 3.x) when set.
    public var ropeFreqFactors: [Float]?
    public var biases: Bool          // q/k/v biases (Qwen2)
    public var tiedOutput: Bool      // no output.weight: the embedding is the output head
    /// σ of the logits from an untied output head (chosen so the distribution is peaked but not one-hot).
    public var logitScale: Float = 5
    public var chatTemplate: String?

    /// Llama 3.x: GQA 4:1, base 500000, frequency factors on every pair (a real Llama 3.1 file
    /// scales only the slowest ones, where a short test could not see them), untied output.
    public static let llama3 = ModelShape(
        name: "llama3", architecture: "llama", layers: 2, dim: 256, heads: 8, kvHeads: 2, headDim: 32, ffn: 512,
        ropeBase: 500_000, ropeFreqFactors: (0..<16).map { 1 + Float(($0 * 7) % 5) * 0.75 },
        biases: false, tiedOutput: false, chatTemplate: ChatTemplates.llama3)
    /// Qwen2/2.5: q/k/v biases, NEOX RoPE, base 1e6 (untied output here: tied to these random
    /// embeddings, the last input token would take all the probability; SmolLM2 covers tying).
    public static let qwen2 = ModelShape(
        name: "qwen2", architecture: "qwen2", layers: 2, dim: 128, heads: 4, kvHeads: 2, headDim: 32, ffn: 384,
        ropeBase: 1_000_000, ropeFreqFactors: nil, biases: true, tiedOutput: false, logitScale: 4, chatTemplate: ChatTemplates.qwen2)
    /// Mistral-Nemo-like MQA: one K/V head, key_length 64 on width 192 (H·Dh = 256 ≠ 192).
    public static let mqa = ModelShape(
        name: "mqa", architecture: "llama", layers: 2, dim: 192, heads: 4, kvHeads: 1, headDim: 64, ffn: 384,
        ropeBase: 10_000, ropeFreqFactors: nil, biases: false, tiedOutput: false, logitScale: 8, chatTemplate: ChatTemplates.mistral)

    public static let all = [llama3, qwen2, mqa]
}

/// Chat templates of the families, abridged to their markers and default system prompts.
public enum ChatTemplates {
    public static let llama3 = "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
    public static let qwen2 = "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    public static let mistral = "{{- bos_token }}{%- for message in messages %}{%- if message['role'] == 'user' %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}{%- endif %}{%- endfor %}"
}

public enum ShapeModel {
    /// Tokenizer metadata to write into a model.
    public struct Vocabulary {
        public var count: Int
        public var metadata: [(String, GGUFWriter.Value)]
    }

    /// TinyModel's byte-level vocabulary of 96 tokens (ids 0, 1, 2 are control tokens).
    public static func tinyVocabulary() -> Vocabulary {
        let vocab = TinyModel.vocab
        var tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        for i in 0..<(vocab - 3) { tokens.append(String(UnicodeScalar(UInt8(33 + i)))) }
        return Vocabulary(count: vocab, metadata: [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string("smollm")),
            ("tokenizer.ggml.tokens", .strings(tokens)),
            ("tokenizer.ggml.token_type", .i32s([3, 3, 3] + Array(repeating: 1, count: vocab - 3))),
            ("tokenizer.ggml.merges", .strings(["! \""])),
            ("tokenizer.ggml.eos_token_id", .u32(2)),
            ("tokenizer.ggml.bos_token_id", .u32(1)),
        ])
    }

    /// Every `tokenizer.*` entry of another model (the default model's SmolLM2 tokenizer), except
    /// its chat template: a shape writes its family's.
    public static func vocabulary(copiedFrom file: GGUFFile) throws -> Vocabulary {
        var out: [(String, GGUFWriter.Value)] = []
        for key in file.metadataKeys where key.hasPrefix("tokenizer.") && key != "tokenizer.chat_template" {
            guard let v = file.metadata[key] else { continue }
            switch v {
            case .string(let s): out.append((key, .string(s)))
            case .uint32(let x): out.append((key, .u32(x)))
            case .int32(let x): out.append((key, .i32(x)))
            case .bool(let b): out.append((key, .bool(b)))
            case .float32(let f): out.append((key, .f32(f)))
            case .array(let a):
                if case .string? = a.first {
                    out.append((key, .strings(a.map { if case .string(let s) = $0 { return s } else { return "" } })))
                } else if case .int32? = a.first {
                    out.append((key, .i32s(a.map { Int32($0.intValue ?? 0) })))
                } else if case .float32? = a.first {
                    out.append((key, .f32s(a.map { $0.floatValue ?? 0 })))
                }
            default: continue
            }
        }
        guard let n = file.strings("tokenizer.ggml.tokens")?.count else {
            throw GGUFError.unsupportedModel("no tokenizer.ggml.tokens in \(file.path)")
        }
        return Vocabulary(count: n, metadata: out)
    }

    /// The shape's GGUF. Each tensor has its own random stream (seeded by its name), so leaving a
    /// tensor out or renaming the architecture changes nothing else. Scales make the output
    /// distribution peaked and attention position-sensitive: q and k entries have σ ≈ 1.7
    /// (attention scores σ ≈ 3), logits σ ≈ 5 or more.
    public static func writer(_ s: ModelShape, vocabulary: Vocabulary, seed: UInt64 = 1,
                              matrixType: GGUFWriter.TensorType = .q8_0) -> GGUFWriter {
        func rand(_ name: String, _ n: Int, scale: Float) -> [Float] {
            var h: UInt64 = seed &* 0x9E37_79B9_7F4A_7C15
            for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            var rng = TestRNG(seed: h)
            return (0..<n).map { _ in (rng.uniform() * 2 - 1) * scale }
        }
        let a = s.architecture, D = s.dim, Q = s.heads * s.headDim, KV = s.kvHeads * s.headDim, F = s.ffn, V = vocabulary.count
        var w = GGUFWriter()
        w.set("general.architecture", .string(a))
        w.set("general.name", .string("kvduel-shape-\(s.name)"))
        w.set("\(a).block_count", .u32(UInt32(s.layers)))
        w.set("\(a).context_length", .u32(4096))
        w.set("\(a).embedding_length", .u32(UInt32(D)))
        w.set("\(a).feed_forward_length", .u32(UInt32(F)))
        w.set("\(a).attention.head_count", .u32(UInt32(s.heads)))
        w.set("\(a).attention.head_count_kv", .u32(UInt32(s.kvHeads)))
        w.set("\(a).attention.key_length", .u32(UInt32(s.headDim)))
        w.set("\(a).attention.value_length", .u32(UInt32(s.headDim)))
        w.set("\(a).rope.dimension_count", .u32(UInt32(s.headDim)))
        w.set("\(a).rope.freq_base", .f32(s.ropeBase))
        w.set("\(a).attention.layer_norm_rms_epsilon", .f32(1e-6))
        w.set("\(a).vocab_size", .u32(UInt32(V)))
        for (k, v) in vocabulary.metadata { w.set(k, v) }
        if let t = s.chatTemplate { w.set("tokenizer.chat_template", .string(t)) }

        let sd = Float(D).squareRoot(), sq = Float(Q).squareRoot(), sf = Float(F).squareRoot(), s3 = Float(3).squareRoot()
        func norm(_ name: String) { w.addTensor(name, dims: [D], data: rand(name, D, scale: 0.2).map { 1 + $0 }) }
        w.addTensor("token_embd.weight", dims: [D, V], type: matrixType, data: rand("token_embd.weight", D * V, scale: 1))
        norm("output_norm.weight")
        if !s.tiedOutput {
            w.addTensor("output.weight", dims: [D, V], type: matrixType, data: rand("output.weight", D * V, scale: s.logitScale * s3 / sd))
        }
        if let f = s.ropeFreqFactors { w.addTensor("rope_freqs.weight", dims: [f.count], data: f) }
        for l in 0..<s.layers {
            let p = "blk.\(l)."
            func m(_ n: String, _ dims: [Int], _ scale: Float) {
                w.addTensor(p + n, dims: dims, type: matrixType, data: rand(p + n, dims[0] * dims[1], scale: scale))
            }
            norm(p + "attn_norm.weight")
            m("attn_q.weight", [D, Q], 3 / sd)
            m("attn_k.weight", [D, KV], 3 / sd)
            m("attn_v.weight", [D, KV], s3 / sd)
            if s.biases {
                w.addTensor(p + "attn_q.bias", dims: [Q], data: rand(p + "attn_q.bias", Q, scale: 0.5))
                w.addTensor(p + "attn_k.bias", dims: [KV], data: rand(p + "attn_k.bias", KV, scale: 0.5))
                w.addTensor(p + "attn_v.bias", dims: [KV], data: rand(p + "attn_v.bias", KV, scale: 0.2))
            }
            m("attn_output.weight", [Q, D], s3 / sq)
            norm(p + "ffn_norm.weight")
            m("ffn_gate.weight", [D, F], s3 / sd)
            m("ffn_up.weight", [D, F], s3 / sd)
            m("ffn_down.weight", [F, D], 0.5 * s3 / sf)
        }
        return w
    }

    /// Writes the shape with the tiny vocabulary (for engine tests) to a temporary file.
    public static func tinyPath(_ s: ModelShape) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvduel-tests-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("shape-\(s.name)-\(s.architecture)-tiny.gguf").path
        if !FileManager.default.fileExists(atPath: path) {
            try writer(s, vocabulary: tinyVocabulary(), matrixType: .f32).write(to: path)
        }
        return path
    }
}

/// FNV-1a 64 of a file's bytes: identifies a regenerated fixture model.
public func fnv1a64(file path: String) throws -> UInt64 {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    data.withUnsafeBytes { for b in $0 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 } }
    return h
}
