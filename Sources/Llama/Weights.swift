import CKernels
import Dispatch
import GGUF

/// The model's weights, loaded once and shared read-only by every engine in the process.
///
/// Every matrix is held once, packed for `kv_qgemm` (Sources/CKernels/qgemm.c): Q4_1 and Q4_0
/// tensors keep their 4-bit codes and scales exactly, Q8_0 keeps its 8-bit codes, and every other
/// type is re-quantised to 8 bits per weight at load. Prefill and decode run the same kernel, so a
/// token's numbers do not depend on the batch it was computed in.
public final class LlamaWeights: @unchecked Sendable {
    public struct Layer: @unchecked Sendable {
        public let attnNorm: UnsafeMutablePointer<Float>   // [D]
        /// wq, wk, wv stacked: [Q + 2·KV, D]
        public let wqkv: PackedMatrix
        /// bq, bk, bv stacked: [Q + 2·KV] (Qwen2), nil when the model has no attention biases
        public let qkvBias: UnsafeMutablePointer<Float>?
        public let wo: PackedMatrix                        // [D, Q]
        public let ffnNorm: UnsafeMutablePointer<Float>    // [D]
        /// w_gate, w_up stacked: [2F, D]
        public let wGateUp: PackedMatrix
        public let wDown: PackedMatrix                     // [D, F]
    }

    public let config: LlamaConfig
    public let layers: [Layer]
    public let outputNorm: UnsafeMutablePointer<Float>     // [D]
    public let output: PackedMatrix                        // [V, D], tied to token_embd when absent
    let embedding: GGUFTensorInfo                          // [V, D] rows looked up per token
    let file: GGUFFile
    private var owned: [UnsafeMutableRawPointer] = []
    /// Bytes of packed weights and norms held in RAM (the mapped file is extra).
    public private(set) var residentBytes = 0

    public init(file: GGUFFile, config: LlamaConfig, progress: ((Double) -> Void)? = nil) throws {
        self.file = file
        self.config = config
        let c = config

        func info(_ name: String, _ shape: [Int]) throws -> GGUFTensorInfo {
            guard let t = file.tensor(name) else { throw GGUFError.unsupportedModel("tensor '\(name)' is missing") }
            guard t.dims == shape else {
                throw GGUFError.unsupportedModel("tensor '\(name)' has shape \(t.dims), expected \(shape)")
            }
            guard t.type.isSupported else {
                throw GGUFError.unsupportedType("tensor '\(name)' is \(t.type), which kvduel cannot compute with (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)")
            }
            return t
        }

        // Validate every tensor before allocating anything.
        var plan: [[GGUFTensorInfo]] = []
        var biasPlan: [[GGUFTensorInfo]?] = []
        for l in 0..<c.layers {
            let p = "blk.\(l)."
            plan.append([
                try info(p + "attn_norm.weight", [c.dim]),
                try info(p + "attn_q.weight", [c.dim, c.qDim]),
                try info(p + "attn_k.weight", [c.dim, c.kvDim]),
                try info(p + "attn_v.weight", [c.dim, c.kvDim]),
                try info(p + "attn_output.weight", [c.qDim, c.dim]),
                try info(p + "ffn_norm.weight", [c.dim]),
                try info(p + "ffn_gate.weight", [c.dim, c.ffnDim]),
                try info(p + "ffn_up.weight", [c.dim, c.ffnDim]),
                try info(p + "ffn_down.weight", [c.ffnDim, c.dim]),
            ])
            // Optional, all three or none: q/k/v biases (Qwen2).
            let biases = ["attn_q.bias", "attn_k.bias", "attn_v.bias"].map { p + $0 }
            if biases.contains(where: { file.tensor($0) != nil }) {
                biasPlan.append([try info(biases[0], [c.qDim]), try info(biases[1], [c.kvDim]), try info(biases[2], [c.kvDim])])
            } else {
                biasPlan.append(nil)
            }
            for extra in ["attn_output.bias", "ffn_gate.bias", "ffn_up.bias", "ffn_down.bias", "attn_q_norm.weight", "attn_k_norm.weight"]
            where file.tensor(p + extra) != nil {
                throw GGUFError.unsupportedModel("tensor '\(p + extra)' has no place in kvduel's forward pass")
            }
        }
        embedding = try info("token_embd.weight", [c.dim, c.vocabSize])
        let normInfo = try info("output_norm.weight", [c.dim])
        let outInfo = file.tensor("output.weight") != nil ? try info("output.weight", [c.dim, c.vocabSize]) : embedding
        guard c.dim % 32 == 0, c.ffnDim % 32 == 0, c.qDim % 32 == 0 else {
            throw GGUFError.unsupportedModel("widths \(c.dim)/\(c.qDim)/\(c.ffnDim) are not multiples of 32")
        }

        var owned: [UnsafeMutableRawPointer] = []
        var resident = 0
        /// Tensors dequantised to float32, one after the other.
        func floats(_ ts: GGUFTensorInfo...) throws -> UnsafeMutablePointer<Float> {
            let n = ts.reduce(0) { $0 + $1.elementCount }
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
            owned.append(UnsafeMutableRawPointer(p))
            resident += n * 4
            var off = 0
            for t in ts {
                try Dequant.toFloat(t.type, file.data(of: t), count: t.elementCount, into: p + off)
                off += t.elementCount
            }
            return p
        }
        /// Tensors with the same input width stacked row-wise and packed into one matrix.
        func packed(_ ts: [GGUFTensorInfo]) throws -> PackedMatrix {
            let cols = ts[0].columns
            precondition(ts.allSatisfy { $0.columns == cols })
            let rows = ts.reduce(0) { $0 + $1.rows }
            let type = ts[0].type
            let format: PackedMatrix.Format
            let srcRowBytes: Int
            let src: UnsafeMutableRawPointer
            if ts.allSatisfy({ $0.type == type }) && [.q4_1, .q4_0, .q8_0].contains(type) {
                // The file's blocks, rows concatenated.
                format = type == .q8_0 ? .q8 : .q4
                srcRowBytes = type.byteCount(elements: cols)
                src = .allocate(byteCount: rows * srcRowBytes, alignment: 64)
                var off = 0
                for t in ts {
                    let d = file.data(of: t)
                    (src + off).copyMemory(from: d.baseAddress!, byteCount: t.rows * srcRowBytes)
                    off += t.rows * srcRowBytes
                }
            } else {
                // Any other type: dequantise each row, re-quantise to Q8_0 blocks (scale = max|w|/127).
                format = .q8
                srcRowBytes = cols / 32 * 34
                src = .allocate(byteCount: rows * srcRowBytes, alignment: 64)
                var row = [Float](repeating: 0, count: cols)
                var r = 0
                for t in ts {
                    let rowIn = t.type.byteCount(elements: cols)
                    for i in 0..<t.rows {
                        let s = UnsafeRawBufferPointer(rebasing: file.data(of: t)[(i * rowIn)..<((i + 1) * rowIn)])
                        try row.withUnsafeMutableBufferPointer { try Dequant.toFloat(t.type, s, count: cols, into: $0.baseAddress!) }
                        let out = src + r * srcRowBytes
                        for b in 0..<(cols / 32) {
                            var amax: Float = 0
                            for j in 0..<32 { amax = max(amax, abs(row[b * 32 + j])) }
                            let d = amax / 127, id: Float = d > 0 ? 1 / d : 0
                            out.storeBytes(of: Float16(d).bitPattern, toByteOffset: b * 34, as: UInt16.self)
                            for j in 0..<32 {
                                out.storeBytes(of: Int8((row[b * 32 + j] * id).rounded()), toByteOffset: b * 34 + 2 + j, as: Int8.self)
                            }
                        }
                        r += 1
                    }
                }
            }
            defer { src.deallocate() }
            let m = PackedMatrix(format: format, rows: rows, cols: cols)
            let s8 = src.assumingMemoryBound(to: UInt8.self), d8 = m.data.assumingMemoryBound(to: UInt8.self)
            switch (format, type) {
            case (.q4, .q4_0): kv_qpack_q4_1(s8, srcRowBytes, Int32(rows), Int32(cols), 1, d8)
            case (.q4, _): kv_qpack_q4_1(s8, srcRowBytes, Int32(rows), Int32(cols), 0, d8)
            case (.q8, _): kv_qpack_q8_0(s8, srcRowBytes, Int32(rows), Int32(cols), d8)
            }
            owned.append(m.data)
            resident += m.byteCount
            return m
        }

        var layers: [Layer] = []
        for (l, t) in plan.enumerated() {
            let b = biasPlan[l]
            layers.append(Layer(attnNorm: try floats(t[0]), wqkv: try packed([t[1], t[2], t[3]]),
                                qkvBias: try b.map { try floats($0[0], $0[1], $0[2]) },
                                wo: try packed([t[4]]),
                                ffnNorm: try floats(t[5]), wGateUp: try packed([t[6], t[7]]), wDown: try packed([t[8]])))
            progress?(Double(l + 1) / Double(c.layers + 1))
        }
        self.layers = layers
        self.outputNorm = try floats(normInfo)
        self.output = try packed([outInfo])
        self.owned = owned
        self.residentBytes = resident
        progress?(1)
    }

    deinit { for p in owned { p.deallocate() } }

    /// Writes the embedding of `token` (dequantised) into `out` [D].
    func embed(_ token: Int32, into out: UnsafeMutablePointer<Float>) {
        let d = config.dim
        let rowBytes = embedding.type.byteCount(elements: d)
        let all = file.data(of: embedding)
        let t = Int(token)
        let src = UnsafeRawBufferPointer(rebasing: all[(t * rowBytes)..<((t + 1) * rowBytes)])
        try! Dequant.toFloat(embedding.type, src, count: d, into: out)  // type and size validated at load
    }
}
