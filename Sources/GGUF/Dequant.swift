/// Dequantisation of ggml block formats into float32, following ggml's reference
/// `dequantize_row_*` functions. Input is validated by the caller (GGUFFile checks sizes).
public enum Dequant {
    @inline(__always) static func f16(_ p: UnsafeRawPointer, _ off: Int) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: off, as: UInt16.self)))
    }

    /// Dequantises `count` elements of `type` from `src` into `dst`.
    public static func toFloat(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int,
                               into dst: UnsafeMutablePointer<Float>) throws {
        guard count % type.blockSize == 0, type.byteCount(elements: count) <= src.count else {
            throw GGUFError.invalid("\(type) data of \(src.count) bytes cannot hold \(count) elements")
        }
        guard let p = src.baseAddress else { return }
        let nb = count / type.blockSize
        switch type {
        case .f32:
            for i in 0..<count { dst[i] = Float(bitPattern: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
        case .f16:
            for i in 0..<count { dst[i] = f16(p, 2 * i) }
        case .bf16:
            for i in 0..<count {
                dst[i] = Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            }
        case .q8_0:
            for b in 0..<nb {
                let blk = p + b * 34, y = dst + b * 32
                let d = f16(blk, 0)
                let q = (blk + 2).assumingMemoryBound(to: Int8.self)
                for j in 0..<32 { y[j] = Float(q[j]) * d }
            }
        case .q4_0:
            for b in 0..<nb {
                let blk = p + b * 18, y = dst + b * 32
                let d = f16(blk, 0)
                let q = (blk + 2).assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    y[j] = Float(Int32(q[j] & 0x0F) - 8) * d
                    y[j + 16] = Float(Int32(q[j] >> 4) - 8) * d
                }
            }
        case .q4_1:
            for b in 0..<nb {
                let blk = p + b * 20, y = dst + b * 32
                let d = f16(blk, 0), m = f16(blk, 2)
                let q = (blk + 4).assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    y[j] = Float(q[j] & 0x0F) * d + m
                    y[j + 16] = Float(q[j] >> 4) * d + m
                }
            }
        case .q5_0, .q5_1:
            let hasMin = type == .q5_1
            let stride = hasMin ? 24 : 22
            for b in 0..<nb {
                let blk = p + b * stride, y = dst + b * 32
                let d = f16(blk, 0), m: Float = hasMin ? f16(blk, 2) : 0
                let hOff = hasMin ? 4 : 2
                let qh = blk.loadUnaligned(fromByteOffset: hOff, as: UInt32.self)
                let q = (blk + hOff + 4).assumingMemoryBound(to: UInt8.self)
                let bias: Int32 = hasMin ? 0 : 16
                for j in 0..<16 {
                    let h0 = Int32(((qh >> UInt32(j)) << 4) & 0x10)
                    let h1 = Int32((qh >> UInt32(j + 12)) & 0x10)
                    y[j] = Float((Int32(q[j] & 0x0F) | h0) - bias) * d + m
                    y[j + 16] = Float((Int32(q[j] >> 4) | h1) - bias) * d + m
                }
            }
        case .q4_K, .q5_K:
            let five = type == .q5_K
            let blockStride = five ? 176 : 144
            for b in 0..<nb {
                let blk = p + b * blockStride
                var y = dst + b * 256
                let d = f16(blk, 0), dmin = f16(blk, 2)
                let scales = (blk + 4).assumingMemoryBound(to: UInt8.self)
                let qh = (blk + 16).assumingMemoryBound(to: UInt8.self)  // q5_K only
                var ql = (blk + (five ? 48 : 16)).assumingMemoryBound(to: UInt8.self)
                var u1: UInt8 = 1, u2: UInt8 = 2
                for j in stride(from: 0, to: 256, by: 64) {
                    let (sc1, m1) = scaleMinK4(j / 32, scales)
                    let (sc2, m2) = scaleMinK4(j / 32 + 1, scales)
                    let d1 = d * Float(sc1), mm1 = dmin * Float(m1)
                    let d2 = d * Float(sc2), mm2 = dmin * Float(m2)
                    for l in 0..<32 {
                        let hi: Float = five && (qh[l] & u1) != 0 ? 16 : 0
                        y[l] = d1 * (Float(ql[l] & 0x0F) + hi) - mm1
                    }
                    for l in 0..<32 {
                        let hi: Float = five && (qh[l] & u2) != 0 ? 16 : 0
                        y[l + 32] = d2 * (Float(ql[l] >> 4) + hi) - mm2
                    }
                    y += 64
                    ql += 32
                    u1 <<= 2
                    u2 <<= 2
                }
            }
        case .q6_K:
            for b in 0..<nb {
                let blk = p + b * 210
                var y = dst + b * 256
                var ql = blk.assumingMemoryBound(to: UInt8.self)
                var qh = (blk + 128).assumingMemoryBound(to: UInt8.self)
                var sc = (blk + 192).assumingMemoryBound(to: Int8.self)
                let d = f16(blk, 208)
                for _ in 0..<2 {
                    for l in 0..<32 {
                        let s = l / 16
                        let q1 = Int32((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32
                        let q2 = Int32((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32
                        let q3 = Int32((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32
                        let q4 = Int32((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32
                        y[l] = d * Float(sc[s]) * Float(q1)
                        y[l + 32] = d * Float(sc[s + 2]) * Float(q2)
                        y[l + 64] = d * Float(sc[s + 4]) * Float(q3)
                        y[l + 96] = d * Float(sc[s + 6]) * Float(q4)
                    }
                    y += 128
                    ql += 64
                    qh += 32
                    sc += 8
                }
            }
        default:
            throw GGUFError.unsupportedType("\(type) (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)")
        }
    }

    @inline(__always) static func scaleMinK4(_ j: Int, _ q: UnsafePointer<UInt8>) -> (UInt8, UInt8) {
        if j < 4 { return (q[j] & 63, q[j + 4] & 63) }
        return ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}
