import Foundation
import GGUF
import Llama
import Tokenizer

/// Writes GGUF v3 files for tests: metadata of every type and tensors in F32, F16, Q8_0 or Q4_1.
public struct GGUFWriter {
    public enum Value {
        case u8(UInt8), i8(Int8), u16(UInt16), i16(Int16), u32(UInt32), i32(Int32), f32(Float), bool(Bool)
        case string(String), u64(UInt64), i64(Int64), f64(Double)
        case strings([String]), i32s([Int32]), f32s([Float])
    }
    public enum TensorType { case f32, f16, q8_0, q4_1 }

    private var kv: [(String, Value)] = []
    private var tensors: [(name: String, dims: [Int], type: TensorType, data: [Float])] = []
    public var alignment = 32

    public init() {}

    public mutating func set(_ key: String, _ v: Value) { kv.append((key, v)) }
    /// `dims[0]` is the innermost dimension (GGUF order); `data` is row-major with that innermost.
    public mutating func addTensor(_ name: String, dims: [Int], type: TensorType = .f32, data: [Float]) {
        precondition(dims.reduce(1, *) == data.count)
        tensors.append((name, dims, type, data))
    }

    public func bytes() -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); out += Array(s.utf8) }
        func value(_ v: Value) {
            switch v {
            case .u8(let x): u32(0); out.append(x)
            case .i8(let x): u32(1); out.append(UInt8(bitPattern: x))
            case .u16(let x): u32(2); withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case .i16(let x): u32(3); withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case .u32(let x): u32(4); u32(x)
            case .i32(let x): u32(5); u32(UInt32(bitPattern: x))
            case .f32(let x): u32(6); u32(x.bitPattern)
            case .bool(let x): u32(7); out.append(x ? 1 : 0)
            case .string(let s): u32(8); str(s)
            case .u64(let x): u32(10); u64(x)
            case .i64(let x): u32(11); u64(UInt64(bitPattern: x))
            case .f64(let x): u32(12); u64(x.bitPattern)
            case .strings(let a): u32(9); u32(8); u64(UInt64(a.count)); a.forEach(str)
            case .i32s(let a): u32(9); u32(5); u64(UInt64(a.count)); a.forEach { u32(UInt32(bitPattern: $0)) }
            case .f32s(let a): u32(9); u32(6); u64(UInt64(a.count)); a.forEach { u32($0.bitPattern) }
            }
        }
        out += Array("GGUF".utf8)
        u32(3)
        u64(UInt64(tensors.count))
        u64(UInt64(kv.count + (alignment != 32 ? 1 : 0)))
        for (k, v) in kv { str(k); value(v) }
        if alignment != 32 { str("general.alignment"); value(.u32(UInt32(alignment))) }
        var blobs: [[UInt8]] = []
        var offset = 0
        for t in tensors {
            let blob = Self.encode(t.data, t.type)
            str(t.name)
            u32(UInt32(t.dims.count))
            t.dims.forEach { u64(UInt64($0)) }
            u32(Self.typeID(t.type))
            u64(UInt64(offset))
            blobs.append(blob)
            offset += (blob.count + alignment - 1) / alignment * alignment
        }
        while out.count % alignment != 0 { out.append(0) }
        for b in blobs {
            out += b
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }

    public func write(to path: String) throws {
        try Data(bytes()).write(to: URL(fileURLWithPath: path))
    }

    static func typeID(_ t: TensorType) -> UInt32 {
        switch t { case .f32: return 0; case .f16: return 1; case .q8_0: return 8; case .q4_1: return 3 }
    }

    static func encode(_ x: [Float], _ t: TensorType) -> [UInt8] {
        var out: [UInt8] = []
        func half(_ f: Float) { withUnsafeBytes(of: Float16(f).bitPattern.littleEndian) { out += $0 } }
        switch t {
        case .f32: for f in x { withUnsafeBytes(of: f.bitPattern.littleEndian) { out += $0 } }
        case .f16: for f in x { half(f) }
        case .q8_0:
            for b in 0..<(x.count / 32) {
                let blk = x[(b * 32)..<(b * 32 + 32)]
                let d = (blk.map(abs).max() ?? 0) / 127
                half(d)
                for v in blk { out.append(UInt8(bitPattern: Int8(d > 0 ? (v / d).rounded() : 0))) }
            }
        case .q4_1:
            for b in 0..<(x.count / 32) {
                let blk = Array(x[(b * 32)..<(b * 32 + 32)])
                let mn = blk.min()!, mx = blk.max()!
                let d = (mx - mn) / 15
                half(d); half(mn)
                let q = blk.map { d > 0 ? UInt8(min(15, max(0, (($0 - mn) / d).rounded()))) : 0 }
                for j in 0..<16 { out.append(q[j] | (q[j + 16] << 4)) }
            }
        }
        return out
    }
}

/// A tiny random LLaMA model written as GGUF: 2 layers, width 64, 4 query heads over 2 KV heads.
public enum TinyModel {
    public static let layers = 2, dim = 64, heads = 4, kvHeads = 2, ffn = 128, vocab = 96

    public static func writer(seed: UInt64 = 7, type: GGUFWriter.TensorType = .f32, architecture: String = "llama") -> GGUFWriter {
        var rng = TestRNG(seed: seed)
        func rand(_ n: Int, scale: Float) -> [Float] { (0..<n).map { _ in (rng.uniform() * 2 - 1) * scale } }
        var w = GGUFWriter()
        w.set("general.architecture", .string(architecture))
        w.set("general.name", .string("tiny-test"))
        w.set("llama.block_count", .u32(UInt32(layers)))
        w.set("llama.context_length", .u32(512))
        w.set("llama.embedding_length", .u32(UInt32(dim)))
        w.set("llama.feed_forward_length", .u32(UInt32(ffn)))
        w.set("llama.attention.head_count", .u32(UInt32(heads)))
        w.set("llama.attention.head_count_kv", .u32(UInt32(kvHeads)))
        w.set("llama.rope.freq_base", .f32(10000))
        w.set("llama.attention.layer_norm_rms_epsilon", .f32(1e-5))
        w.set("llama.vocab_size", .u32(UInt32(vocab)))
        // A byte-level vocabulary: enough for the tokenizer to load.
        var tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        for i in 0..<(vocab - 3) { tokens.append(String(UnicodeScalar(UInt8(33 + i)))) }
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("smollm"))
        w.set("tokenizer.ggml.tokens", .strings(tokens))
        w.set("tokenizer.ggml.token_type", .i32s([3, 3, 3] + Array(repeating: 1, count: vocab - 3)))
        w.set("tokenizer.ggml.merges", .strings([]))
        w.set("tokenizer.ggml.eos_token_id", .u32(2))
        w.set("tokenizer.ggml.bos_token_id", .u32(1))
        let kv = dim / heads * kvHeads
        w.addTensor("token_embd.weight", dims: [dim, vocab], type: type == .f32 ? .f32 : .q8_0, data: rand(dim * vocab, scale: 1))
        w.addTensor("output_norm.weight", dims: [dim], data: rand(dim, scale: 0.2).map { 1 + $0 })
        for l in 0..<layers {
            let p = "blk.\(l)."
            w.addTensor(p + "attn_norm.weight", dims: [dim], data: rand(dim, scale: 0.2).map { 1 + $0 })
            w.addTensor(p + "attn_q.weight", dims: [dim, dim], type: type, data: rand(dim * dim, scale: 0.3))
            w.addTensor(p + "attn_k.weight", dims: [dim, kv], type: type, data: rand(dim * kv, scale: 0.3))
            w.addTensor(p + "attn_v.weight", dims: [dim, kv], type: type, data: rand(dim * kv, scale: 0.3))
            w.addTensor(p + "attn_output.weight", dims: [dim, dim], type: type, data: rand(dim * dim, scale: 0.2))
            w.addTensor(p + "ffn_norm.weight", dims: [dim], data: rand(dim, scale: 0.2).map { 1 + $0 })
            w.addTensor(p + "ffn_gate.weight", dims: [dim, ffn], type: type, data: rand(dim * ffn, scale: 0.2))
            w.addTensor(p + "ffn_up.weight", dims: [dim, ffn], type: type, data: rand(dim * ffn, scale: 0.2))
            w.addTensor(p + "ffn_down.weight", dims: [ffn, dim], type: type, data: rand(ffn * dim, scale: 0.2))
        }
        return w
    }

    /// Writes the tiny model to a temporary file and returns its path.
    public static func path(seed: UInt64 = 7, type: GGUFWriter.TensorType = .f32) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvduel-tests-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("tiny-\(seed)-\(type).gguf").path
        if !FileManager.default.fileExists(atPath: path) { try writer(seed: seed, type: type).write(to: path) }
        return path
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var loaded: [UInt64: (LlamaModel, Tokenizer)] = [:]

    /// The tiny model (f32 weights), loaded once per seed, with a tokenizer over its vocabulary.
    /// `Tokenizer(gguf:)` rejects its empty BPE merge list ("tokenizer.ggml.merges is missing"),
    /// so the vocabulary gets one (unused) merge.
    public static func loaded(seed: UInt64 = 7) throws -> (model: LlamaModel, tokenizer: Tokenizer) {
        lock.lock()
        defer { lock.unlock() }
        if let m = loaded[seed] { return m }
        let model = try LlamaModel(path: try path(seed: seed))
        var vocab = try Vocabulary(metadata: model.file)
        vocab.merges = ["! \""]
        let tok = try Tokenizer(vocabulary: vocab)
        loaded[seed] = (model, tok)
        return (model, tok)
    }
}

/// Seeded randomness for tests (the project's SplitMix64).
public struct TestRNG {
    var rng: SplitMix64
    public init(seed: UInt64) { rng = SplitMix64(seed: seed) }
    public mutating func next() -> UInt64 { rng.next() }
    public mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// The default model, for golden tests. In CI (KVDUEL_REQUIRE_MODEL=1) a missing model is a failure.
public enum DefaultModel {
    public static var path: String {
        let env = ProcessInfo.processInfo.environment
        if let p = env["KVDUEL_MODEL"], !p.isEmpty { return p }
        let cache = env["KVDUEL_CACHE_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? NSString(string: "~/.cache/kvduel").expandingTildeInPath
        return cache + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    }
    public static var required: Bool { ProcessInfo.processInfo.environment["KVDUEL_REQUIRE_MODEL"] == "1" }
    public static var isAvailable: Bool { FileManager.default.fileExists(atPath: path) }
}
