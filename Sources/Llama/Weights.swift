import CKernels
import Dispatch
import GGUF

/// The model's weights, loaded once and shared read-only by every engine in the process.
///
/// Each layer matrix is held twice: as float32 (`DenseMatrix`) for batched prefill through sgemm,
/// and in a block-quantised layout (`QMatrix`) for one-token decode. Q4_1 and Q8_0 tensors are used
/// straight from the memory-mapped file; other types are re-quantised to Q8_0 once at load.
public final class LlamaWeights: @unchecked Sendable {
    public struct Layer: @unchecked Sendable {
        public let attnNorm: UnsafeMutablePointer<Float>   // [D]
        public let wq: DenseMatrix, wk: DenseMatrix, wv: DenseMatrix, wo: DenseMatrix
        public let qq: QMatrix, qk: QMatrix, qv: QMatrix, qo: QMatrix
        public let ffnNorm: UnsafeMutablePointer<Float>    // [D]
        public let wGate: DenseMatrix, wUp: DenseMatrix, wDown: DenseMatrix
        public let qGate: QMatrix, qUp: QMatrix, qDown: QMatrix
        /// wq, wk, wv stacked ([D+2·KV, D]) and wGate, wUp stacked ([2F, D]): the same memory as the
        /// separate matrices, so prefill runs one sgemm for each group.
        public let wqkv: DenseMatrix, wGateUp: DenseMatrix
    }

    public let config: LlamaConfig
    public let layers: [Layer]
    public let outputNorm: UnsafeMutablePointer<Float>     // [D]
    public let output: QMatrix                             // [V, D], tied to token_embd when absent
    let embedding: GGUFTensorInfo                          // [V, D] rows looked up per token
    let file: GGUFFile
    private var owned: [UnsafeMutableRawPointer] = []
    /// Bytes of float32 copies plus re-quantised copies held in RAM (the mapped file is extra).
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
        for l in 0..<c.layers {
            let p = "blk.\(l)."
            plan.append([
                try info(p + "attn_norm.weight", [c.dim]),
                try info(p + "attn_q.weight", [c.dim, c.dim]),
                try info(p + "attn_k.weight", [c.dim, c.kvDim]),
                try info(p + "attn_v.weight", [c.dim, c.kvDim]),
                try info(p + "attn_output.weight", [c.dim, c.dim]),
                try info(p + "ffn_norm.weight", [c.dim]),
                try info(p + "ffn_gate.weight", [c.dim, c.ffnDim]),
                try info(p + "ffn_up.weight", [c.dim, c.ffnDim]),
                try info(p + "ffn_down.weight", [c.ffnDim, c.dim]),
            ])
        }
        embedding = try info("token_embd.weight", [c.dim, c.vocabSize])
        let normInfo = try info("output_norm.weight", [c.dim])
        let outInfo = file.tensor("output.weight") != nil ? try info("output.weight", [c.dim, c.vocabSize]) : embedding
        guard c.dim % 32 == 0, c.ffnDim % 32 == 0 else {
            throw GGUFError.unsupportedModel("widths \(c.dim)/\(c.ffnDim) are not multiples of 32")
        }

        var owned: [UnsafeMutableRawPointer] = []
        var resident = 0
        func floats(_ t: GGUFTensorInfo) throws -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: t.elementCount)
            owned.append(UnsafeMutableRawPointer(p))
            resident += t.elementCount * 4
            try Dequant.toFloat(t.type, file.data(of: t), count: t.elementCount, into: p)
            return p
        }
        /// Several [rows_i, cols] tensors dequantised one after another into one allocation.
        func stacked(_ ts: [GGUFTensorInfo]) throws -> (DenseMatrix, [DenseMatrix]) {
            let cols = ts[0].columns
            let total = ts.reduce(0) { $0 + $1.rows }
            let p = UnsafeMutablePointer<Float>.allocate(capacity: total * cols)
            owned.append(UnsafeMutableRawPointer(p))
            resident += total * cols * 4
            var parts: [DenseMatrix] = []
            var off = 0
            for t in ts {
                precondition(t.columns == cols)
                try Dequant.toFloat(t.type, file.data(of: t), count: t.elementCount, into: p + off * cols)
                parts.append(DenseMatrix(rows: t.rows, cols: cols, data: p + off * cols))
                off += t.rows
            }
            return (DenseMatrix(rows: total, cols: cols, data: p), parts)
        }
        func quantised(_ t: GGUFTensorInfo, dense: UnsafePointer<Float>?) throws -> QMatrix {
            if let dense, [.f32, .f16, .bf16].contains(t.type) {
                return QMatrix(format: .f32, rows: t.rows, cols: t.columns, data: UnsafeRawPointer(dense))
            }
            switch t.type {
            case .q4_1: return QMatrix(format: .q4_1, rows: t.rows, cols: t.columns, data: file.data(of: t).baseAddress!)
            case .q8_0: return QMatrix(format: .q8_0, rows: t.rows, cols: t.columns, data: file.data(of: t).baseAddress!)
            default:
                // Re-quantise row by row to Q8_0 (scale = max|w|/127 per block of 32).
                let rowBytes = t.columns / 32 * 34
                let buf = UnsafeMutableRawPointer.allocate(byteCount: t.rows * rowBytes, alignment: 64)
                owned.append(buf)
                resident += t.rows * rowBytes
                var row = [Float](repeating: 0, count: t.columns)
                let rowIn = t.type.byteCount(elements: t.columns)
                for r in 0..<t.rows {
                    if let dense { row.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: dense + r * t.columns, count: t.columns) } }
                    else {
                        let src = UnsafeRawBufferPointer(rebasing: file.data(of: t)[(r * rowIn)..<((r + 1) * rowIn)])
                        try row.withUnsafeMutableBufferPointer { try Dequant.toFloat(t.type, src, count: t.columns, into: $0.baseAddress!) }
                    }
                    let out = buf + r * rowBytes
                    for b in 0..<(t.columns / 32) {
                        var amax: Float = 0
                        for j in 0..<32 { amax = max(amax, abs(row[b * 32 + j])) }
                        let d = amax / 127, id: Float = d > 0 ? 1 / d : 0
                        out.storeBytes(of: Float16(d).bitPattern, toByteOffset: b * 34, as: UInt16.self)
                        for j in 0..<32 {
                            out.storeBytes(of: Int8((row[b * 32 + j] * id).rounded()), toByteOffset: b * 34 + 2 + j, as: Int8.self)
                        }
                    }
                }
                return QMatrix(format: .q8_0, rows: t.rows, cols: t.columns, data: UnsafeRawPointer(buf))
            }
        }

        var layers: [Layer] = []
        for (l, t) in plan.enumerated() {
            func dm(_ i: Int) throws -> (DenseMatrix, QMatrix) {
                let p = try floats(t[i])
                return (DenseMatrix(rows: t[i].rows, cols: t[i].columns, data: p), try quantised(t[i], dense: p))
            }
            func q(_ i: Int, _ d: DenseMatrix) throws -> QMatrix { try quantised(t[i], dense: d.data) }
            let (wqkv, qkvParts) = try stacked([t[1], t[2], t[3]])
            let (wq, wk, wv) = (qkvParts[0], qkvParts[1], qkvParts[2])
            let (qq, qk, qv) = (try q(1, wq), try q(2, wk), try q(3, wv))
            let (wo, qo) = try dm(4)
            let (wgu, guParts) = try stacked([t[6], t[7]])
            let (wg, wu) = (guParts[0], guParts[1])
            let (qg, qu) = (try q(6, wg), try q(7, wu))
            let (wd, qd) = try dm(8)
            layers.append(Layer(attnNorm: try floats(t[0]), wq: wq, wk: wk, wv: wv, wo: wo, qq: qq, qk: qk, qv: qv, qo: qo,
                                ffnNorm: try floats(t[5]), wGate: wg, wUp: wu, wDown: wd, qGate: qg, qUp: qu, qDown: qd,
                                wqkv: wqkv, wGateUp: wgu))
            progress?(Double(l + 1) / Double(c.layers + 1))
        }
        self.layers = layers
        self.outputNorm = try floats(normInfo)
        let out = try quantised(outInfo, dense: nil)
        self.output = out
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
