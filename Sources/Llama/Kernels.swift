import CBLAS
import CKernels

// Compute kernels. Prefill goes through BLAS sgemm on float32 weights; decode (one token) goes
// through matrix-vector products over the file's quantised blocks with int8-quantised activations.
// The int8 inner loops and the vectorised exp live in C (Sources/CKernels): Swift's optimiser left
// them scalar, measured in the disassembly of the first version.

/// A weight matrix in a block-quantised layout, row-major (`rows` × `cols`), for decode.
public struct QMatrix: @unchecked Sendable {
    /// q4_1 / q8_0: ggml blocks (from the file, or re-quantised); f32: the dense copy, used when the
    /// file holds float weights so decode loses no precision to quantisation.
    /// q4_1r: Q4_1 repacked in pair rows for decode (`kv_repack_q4_1`), read with pair-ordered int8 activations.
    /// q8_0f: Q8_0 repacked with f32 scales (`kv_repack_q8_0`), read with int16 activations (the output
    /// head, where logits need more than int8 precision).
    /// q4_1x / q8_0x: the file's Q4_1 / Q8_0 rows read with float activations — what decode uses,
    /// so the two engines' tiny differences in prompt KV (BLAS sums depend on the batch shape)
    /// are not amplified by activation rounding into different greedy tokens.
    public enum Format: Sendable { case q4_1, q4_1r, q4_1x, q8_0, q8_0f, q8_0x, f32 }
    public let format: Format
    public let rows: Int
    public let cols: Int
    public let data: UnsafeRawPointer
    public var blocksPerRow: Int { cols / 32 }
    public var rowBytes: Int {
        switch format {
        case .q4_1, .q4_1r, .q4_1x: return blocksPerRow * 20
        case .q8_0, .q8_0x: return blocksPerRow * 34
        case .q8_0f: return blocksPerRow * 36
        case .f32: return cols * 4
        }
    }
    public var byteCount: Int { rows * rowBytes }
}

/// A float32 weight matrix, row-major `rows` (output features) × `cols` (input features), for sgemm.
public struct DenseMatrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let data: UnsafeMutablePointer<Float>
}

/// An activation vector quantised in blocks of 32, in the layouts the decode kernels read:
/// int8 like ggml's Q8_1 (x[b*32+j] ≈ scale[b] * q[b*32+j]; `sum[b]` = scale[b] * Σ_j q[b*32+j]),
/// the same in pair order (`qp`, for q4_1r), and int16 (`q16`, for q8_0f).
struct QuantizedVector: @unchecked Sendable {
    let q: UnsafeMutableBufferPointer<Int8>
    let scale: UnsafeMutableBufferPointer<Float>
    let sum: UnsafeMutableBufferPointer<Float>
    let fsum: UnsafeMutableBufferPointer<Float>   // Σ x per block, for float-activation Q4_1
    let qp: UnsafeMutableBufferPointer<Int8>
    let pscale: UnsafeMutableBufferPointer<Float>
    let psum: UnsafeMutableBufferPointer<Float>
    let q16: UnsafeMutableBufferPointer<Int16>
    let scale16: UnsafeMutableBufferPointer<Float>

    init(capacity n: Int) {
        q = .allocate(capacity: n)
        scale = .allocate(capacity: n / 32)
        sum = .allocate(capacity: n / 32)
        fsum = .allocate(capacity: n / 32)
        qp = .allocate(capacity: n)
        pscale = .allocate(capacity: n / 32)
        psum = .allocate(capacity: n / 32)
        q16 = .allocate(capacity: n)
        scale16 = .allocate(capacity: n / 32)
    }

    /// Quantises `x` into the layouts `formats` need.
    func quantize(_ x: UnsafePointer<Float>, count n: Int, for formats: [QMatrix.Format]) {
        if formats.contains(where: { $0 == .q4_1 || $0 == .q8_0 }) {
            kv_quantize_q8(x, Int32(n), q.baseAddress!, scale.baseAddress!, sum.baseAddress!)
        }
        if formats.contains(.q4_1r) {
            kv_quantize_q8p(x, Int32(n), qp.baseAddress!, pscale.baseAddress!, psum.baseAddress!)
        }
        if formats.contains(.q8_0f) {
            kv_quantize_q16(x, Int32(n), q16.baseAddress!, scale16.baseAddress!)
        }
        if formats.contains(.q4_1x) {
            kv_block_sums(x, Int32(n), fsum.baseAddress!)
        }
    }

    func deallocate() {
        q.deallocate()
        fsum.deallocate()
        scale.deallocate()
        sum.deallocate()
        qp.deallocate()
        pscale.deallocate()
        psum.deallocate()
        q16.deallocate()
        scale16.deallocate()
    }
}

enum Kernels {
    /// out[r] = Σ_c W[r, c] · x[c] for rows in `range`; quantised formats read x as quantised by `qx`.
    @inline(__always)
    static func gemv(_ w: QMatrix, _ x: UnsafePointer<Float>, _ qx: QuantizedVector,
                     rows range: Range<Int>, out: UnsafeMutablePointer<Float>) {
        let p = w.data.assumingMemoryBound(to: UInt8.self)
        let (r0, r1, nb) = (Int32(range.lowerBound), Int32(range.upperBound), Int32(w.blocksPerRow))
        switch w.format {
        case .q4_1:
            kv_gemv_q4_1(p, w.rowBytes, r0, r1, nb, qx.q.baseAddress!, qx.scale.baseAddress!, qx.sum.baseAddress!, out)
        case .q4_1r:
            kv_gemv_q4_1r(p, w.rowBytes, r0, r1, nb, qx.qp.baseAddress!, qx.pscale.baseAddress!, qx.psum.baseAddress!, out)
        case .q8_0:
            kv_gemv_q8_0(p, w.rowBytes, r0, r1, nb, qx.q.baseAddress!, qx.scale.baseAddress!, out)
        case .q4_1x:
            kv_gemv_q4_1_f32(p, w.rowBytes, r0, r1, nb, x, qx.fsum.baseAddress!, out)
        case .q8_0x:
            kv_gemv_q8_0_f32(p, w.rowBytes, r0, r1, nb, x, out)
        case .q8_0f:
            kv_gemv_q8_0r(p, w.rowBytes, r0, r1, nb, qx.q16.baseAddress!, qx.scale16.baseAddress!, out)
        case .f32:
            let f = w.data.assumingMemoryBound(to: Float.self)
            for r in range { out[r] = kv_dot(f + r * w.cols, x, Int32(w.cols)) }
        }
    }

    /// C[M, N] = A[M, K] · W[N, K]ᵀ (A's rows `lda` apart), the N output features split across the
    /// pool's workers, each running single-threaded BLAS on its slice of W.
    static func matmul(_ a: UnsafePointer<Float>, rows m: Int, lda: Int? = nil, _ w: DenseMatrix,
                       _ c: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        let k = w.cols, n = w.rows, lda = lda ?? k
        parallelRanges(n, pool: pool, align: 16) { r in
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(r.count), Int32(k),
                        1, a, Int32(lda), w.data + r.lowerBound * k, Int32(k), 0, c + r.lowerBound, Int32(n))
        }
    }

    /// y = x / rms(x) * weight
    @inline(__always)
    static func rmsnorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                        dim: Int, eps: Float) {
        kv_rmsnorm(x, weight, y, Int32(dim), eps)
    }

    @inline(__always) static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        kv_dot(a, b, Int32(n))
    }

    /// y += a · x
    @inline(__always) static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        kv_axpy(a, x, y, Int32(n))
    }

    @inline(__always) static func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        kv_softmax(x, Int32(n))
    }

    /// g = silu(g) · u
    @inline(__always) static func siluMul(_ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, _ n: Int) {
        kv_silu_mul(g, u, n)
    }
}
