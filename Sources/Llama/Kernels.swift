import CBLAS
import CKernels

// Compute kernels. Prefill goes through BLAS sgemm on float32 weights; decode (one token) goes
// through matrix-vector products over the file's quantised blocks with float activations.
// The int8 inner loops and the vectorised exp live in C (Sources/CKernels): Swift's optimiser left
// them scalar, measured in the disassembly of the first version.

/// A weight matrix for decode, row-major (`rows` × `cols`): the file's Q4_1 or Q8_0 blocks (other
/// types are re-quantised to Q8_0 at load), or the float32 copy when the file holds float weights.
/// Decode reads them with float activations: no activation rounding, so the two engines' tiny
/// differences in prompt KV (BLAS sums depend on the batch shape) are not amplified into
/// different greedy tokens.
public struct QMatrix: @unchecked Sendable {
    public enum Format: Sendable { case q4_1, q8_0, f32 }
    public let format: Format
    public let rows: Int
    public let cols: Int
    public let data: UnsafeRawPointer
    public var blocksPerRow: Int { cols / 32 }
    public var rowBytes: Int {
        switch format {
        case .q4_1: return blocksPerRow * 20
        case .q8_0: return blocksPerRow * 34
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

/// Per-block sums of an activation vector (Σ x over each block of 32), which Q4_1's offsets need.
struct BlockSums: @unchecked Sendable {
    let sums: UnsafeMutableBufferPointer<Float>
    init(capacity n: Int) { sums = .allocate(capacity: n / 32) }
    func compute(_ x: UnsafePointer<Float>, count n: Int) { kv_block_sums(x, Int32(n), sums.baseAddress!) }
    func deallocate() { sums.deallocate() }
}

enum Kernels {
    /// out[r] = Σ_c W[r, c] · x[c] for rows in `range` (Q4_1 also reads x's block sums).
    @inline(__always)
    static func gemv(_ w: QMatrix, _ x: UnsafePointer<Float>, _ sums: BlockSums,
                     rows range: Range<Int>, out: UnsafeMutablePointer<Float>) {
        let p = w.data.assumingMemoryBound(to: UInt8.self)
        let (r0, r1, nb) = (Int32(range.lowerBound), Int32(range.upperBound), Int32(w.blocksPerRow))
        switch w.format {
        case .q4_1:
            kv_gemv_q4_1_f32(p, w.rowBytes, r0, r1, nb, x, sums.sums.baseAddress!, out)
        case .q8_0:
            kv_gemv_q8_0_f32(p, w.rowBytes, r0, r1, nb, x, out)
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
