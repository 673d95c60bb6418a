import CKernels

// Compute kernels. Every matrix product (prefill and decode alike) is `kv_qgemm`: int8
// activations against packed 4- or 8-bit weights (Sources/CKernels/qgemm.c), split over the
// pool's workers by groups of 8 output rows. Attention, norms and activations are float32.

/// A weight matrix packed for `kv_qgemm`: `rows` output features × `cols` inputs, in groups of 8
/// rows (the last group padded with zero rows).
public struct PackedMatrix: @unchecked Sendable {
    public enum Format: Sendable {
        case q4, q8
        var c: Int32 { self == .q4 ? Int32(KV_Q4) : Int32(KV_Q8) }
    }
    public let format: Format
    public let rows: Int
    public let cols: Int
    public let data: UnsafeMutableRawPointer
    public var groups: Int { (rows + 7) / 8 }
    public var groupBytes: Int { kv_qpack_group_bytes(format.c, Int32(cols)) }
    public var byteCount: Int { groups * groupBytes }

    /// Allocates (uninitialised) storage; the loader packs into it and owns it.
    init(format: Format, rows: Int, cols: Int) {
        self.format = format
        self.rows = rows
        self.cols = cols
        data = .allocate(byteCount: (rows + 7) / 8 * kv_qpack_group_bytes(format.c, Int32(cols)), alignment: 64)
    }
}

/// Activation rows quantised to int8 per block of 32 (codes, scales, scaled sums), the left
/// operand of `kv_qgemm`. Grown to the largest batch × width seen.
final class QuantisedRows {
    private(set) var capacity = 0
    private(set) var codes: UnsafeMutablePointer<Int8>
    private(set) var scales: UnsafeMutablePointer<Float>
    private(set) var sums: UnsafeMutablePointer<Float>
    /// The rounding residual's codes, scales and sums (for `precise` products).
    private(set) var lowCodes: UnsafeMutablePointer<Int8>
    private(set) var lowScales: UnsafeMutablePointer<Float>
    private(set) var lowSums: UnsafeMutablePointer<Float>
    private var extra = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var extraCount = 1
    init() {
        codes = .allocate(capacity: 1); scales = .allocate(capacity: 1); sums = .allocate(capacity: 1)
        lowCodes = .allocate(capacity: 1); lowScales = .allocate(capacity: 1); lowSums = .allocate(capacity: 1)
    }
    func reserve(_ n: Int) {
        guard n > capacity else { return }
        free()
        codes = .allocate(capacity: n); scales = .allocate(capacity: n / 32 + 1); sums = .allocate(capacity: n / 32 + 1)
        lowCodes = .allocate(capacity: n); lowScales = .allocate(capacity: n / 32 + 1); lowSums = .allocate(capacity: n / 32 + 1)
        capacity = n
    }
    /// A float buffer of at least `n` elements for the residual pass's output.
    func output(_ n: Int) -> UnsafeMutablePointer<Float> {
        if extraCount < n { extra.deallocate(); extra = .allocate(capacity: n); extraCount = n }
        return extra
    }
    private func free() {
        codes.deallocate(); scales.deallocate(); sums.deallocate()
        lowCodes.deallocate(); lowScales.deallocate(); lowSums.deallocate()
    }
    deinit { free(); extra.deallocate() }
}

enum Kernels {
    /// C[M, N] = A[M, K] · W[N, K]ᵀ (A's rows `lda` apart, C's rows N apart): A is quantised to
    /// int8 rows into `q`, then the N outputs are split across the pool's workers by groups.
    /// `precise` adds a second pass over A's rounding residual (about 15-bit activations, twice
    /// the work): used for the output head, where a near-tie decides the next token.
    static func matmul(_ a: UnsafePointer<Float>, rows m: Int, lda: Int? = nil, _ w: PackedMatrix,
                       _ c: UnsafeMutablePointer<Float>, q: QuantisedRows, pool: WorkerPool, precise: Bool = false) {
        let k = w.cols, lda = lda ?? k, nb = k / 32
        q.reserve(m * k)
        let codes = q.codes, scales = q.scales, sums = q.sums
        let lo = q.lowCodes, dlo = q.lowScales, slo = q.lowSums
        func quantise(_ r: Range<Int>) {
            kv_quantize_rows(a + r.lowerBound * lda, lda, Int32(r.count), Int32(k),
                             codes + r.lowerBound * k, scales + r.lowerBound * nb, sums + r.lowerBound * nb,
                             precise ? lo + r.lowerBound * k : nil, dlo + r.lowerBound * nb, slo + r.lowerBound * nb)
        }
        if m >= 8 { parallelRanges(m, pool: pool) { quantise($0) } } else { quantise(0..<m) }
        let fmt = w.format.c, data = w.data.assumingMemoryBound(to: UInt8.self), n = w.rows
        let c2 = precise ? q.output(m * n) : c
        parallelRanges(w.groups, pool: pool, chunks: m == 1 ? 4 : 2) { g in
            let (g0, g1) = (Int32(g.lowerBound), Int32(g.upperBound))
            kv_qgemm(fmt, data, Int32(n), Int32(k), g0, g1, codes, scales, sums, Int32(m), c, n)
            if precise {
                kv_qgemm(fmt, data, Int32(n), Int32(k), g0, g1, lo, dlo, slo, Int32(m), c2, n)
                for r in 0..<m {
                    let lo = r * n + g.lowerBound * 8, hi = r * n + min(n, g.upperBound * 8)
                    for i in lo..<hi { c[i] += c2[i] }
                }
            }
        }
    }

    /// y = x / rms(x) * weight
    @inline(__always)
    static func rmsnorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                        dim: Int, eps: Float) {
        kv_rmsnorm(x, weight, y, Int32(dim), eps)
    }

    @inline(__always) static func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        kv_softmax(x, Int32(n))
    }

    /// g = silu(g) · u
    @inline(__always) static func siluMul(_ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, _ n: Int) {
        kv_silu_mul(g, u, n)
    }
}
