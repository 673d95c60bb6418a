import CBLAS

// Compute kernels. Prefill goes through BLAS sgemm on float32 weights; decode (one token) goes
// through matrix-vector products over the file's quantised blocks with int8-quantised activations.
// The integer inner loops are plain Swift that LLVM vectorises (AVX2 with -target-cpu haswell).

@inline(__always) func halfToFloat(_ p: UnsafeRawPointer, _ off: Int) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: off, as: UInt16.self)))
}

/// A weight matrix in a block-quantised layout, row-major (`rows` × `cols`), for decode.
public struct QMatrix: @unchecked Sendable {
    public enum Format: Sendable { case q4_1, q8_0 }
    public let format: Format
    public let rows: Int
    public let cols: Int
    public let data: UnsafeRawPointer
    public var blocksPerRow: Int { cols / 32 }
    public var rowBytes: Int { blocksPerRow * (format == .q4_1 ? 20 : 34) }
    public var byteCount: Int { rows * rowBytes }
}

/// A float32 weight matrix, row-major `rows` (output features) × `cols` (input features), for sgemm.
public struct DenseMatrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let data: UnsafeMutablePointer<Float>
}

/// An activation vector quantised to int8 in blocks of 32 (like ggml's Q8_1):
/// x[b*32+j] ≈ scale[b] * q[b*32+j]; `sum[b]` = scale[b] * Σ_j q[b*32+j].
struct QuantizedVector {
    var q: UnsafeMutableBufferPointer<Int8>
    var scale: UnsafeMutableBufferPointer<Float>
    var sum: UnsafeMutableBufferPointer<Float>

    init(capacity n: Int) {
        q = .allocate(capacity: n)
        scale = .allocate(capacity: n / 32)
        sum = .allocate(capacity: n / 32)
    }

    func quantize(_ x: UnsafePointer<Float>, count n: Int) {
        let qp = q.baseAddress!
        for b in 0..<(n / 32) {
            let xb = x + b * 32
            var amax: Float = 0
            for j in 0..<32 { amax = max(amax, abs(xb[j])) }
            let d = amax / 127
            let id: Float = d > 0 ? 1 / d : 0
            var s: Int32 = 0
            for j in 0..<32 {
                let v = Int32((xb[j] * id).rounded(.toNearestOrEven))
                qp[b * 32 + j] = Int8(truncatingIfNeeded: v)
                s &+= v
            }
            scale[b] = d
            sum[b] = d * Float(s)
        }
    }
}

enum Kernels {
    /// out[r] = Σ_c W[r, c] · x[c] for rows in `range`, with x given quantised.
    static func gemv(_ w: QMatrix, _ x: UnsafePointer<Int8>, _ xs: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                     rows range: Range<Int>, out: UnsafeMutablePointer<Float>) {
        let nb = w.blocksPerRow
        let rb = w.rowBytes
        switch w.format {
        case .q4_1:
            for r in range {
                let row = w.data + r * rb
                var acc: Float = 0
                for b in 0..<nb {
                    let blk = row + b * 20
                    let q = (blk + 4).assumingMemoryBound(to: UInt8.self)
                    let a = x + b * 32
                    var s: Int32 = 0
                    for j in 0..<16 {
                        s &+= Int32(q[j] & 0x0F) &* Int32(a[j]) &+ Int32(q[j] >> 4) &* Int32(a[j + 16])
                    }
                    acc += halfToFloat(blk, 0) * xs[b] * Float(s) + halfToFloat(blk, 2) * xsum[b]
                }
                out[r] = acc
            }
        case .q8_0:
            for r in range {
                let row = w.data + r * rb
                var acc: Float = 0
                for b in 0..<nb {
                    let blk = row + b * 34
                    let q = (blk + 2).assumingMemoryBound(to: Int8.self)
                    let a = x + b * 32
                    var s: Int32 = 0
                    for j in 0..<32 { s &+= Int32(q[j]) &* Int32(a[j]) }
                    acc += halfToFloat(blk, 0) * xs[b] * Float(s)
                }
                out[r] = acc
            }
        }
    }

    /// C[M, N] = A[M, K] · W[N, K]ᵀ, the N output features split across `threads` workers,
    /// each running single-threaded BLAS on its slice of W.
    static func matmul(_ a: UnsafePointer<Float>, rows m: Int, _ w: DenseMatrix,
                       _ c: UnsafeMutablePointer<Float>, threads: Int) {
        let k = w.cols, n = w.rows
        let ap = SendablePointer(UnsafeMutablePointer(mutating: a)), cp = SendablePointer(c)
        parallelRanges(n, threads: threads, align: 16) { r in
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(r.count), Int32(k),
                        1, ap.p, Int32(k), w.data + r.lowerBound * k, Int32(k), 0, cp.p + r.lowerBound, Int32(n))
        }
    }

    /// y = x / rms(x) * weight, per row.
    static func rmsnorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                        dim: Int, eps: Float) {
        var ss: Float = 0
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= dim {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            acc.addProduct(v, v)
            i += 8
        }
        ss = acc.sum()
        while i < dim { ss += x[i] * x[i]; i += 1 }
        let scale = 1 / (ss / Float(dim) + eps).squareRoot()
        for j in 0..<dim { y[j] = x[j] * scale * weight[j] }
    }

    @inline(__always) static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            acc0.addProduct(UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self),
                            UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self))
            acc1.addProduct(UnsafeRawPointer(a + i + 8).loadUnaligned(as: SIMD8<Float>.self),
                            UnsafeRawPointer(b + i + 8).loadUnaligned(as: SIMD8<Float>.self))
            i += 16
        }
        var s = (acc0 + acc1).sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// y += a * x
    @inline(__always) static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += a * x[i] }
    }

    static func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        var mx = -Float.infinity
        for i in 0..<n { mx = max(mx, x[i]) }
        guard mx > -Float.infinity else { return }
        var s: Float = 0
        for i in 0..<n { let e = expf(x[i] - mx); x[i] = e; s += e }
        let inv = 1 / s
        for i in 0..<n { x[i] *= inv }
    }
}

extension SIMD8 where Scalar == Float {
    @inline(__always) mutating func addProduct(_ a: SIMD8<Float>, _ b: SIMD8<Float>) {
        self = self.addingProduct(a, b)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
