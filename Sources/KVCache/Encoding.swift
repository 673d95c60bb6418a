// Encodings of stored KV, and `EncodedKV`, the form both tiers hold.
//
// `EncodedKV.body` is one byte array:
//   positions   tokenCount × Int32 (little-endian)
//   payload     depends on the encoding; "row" = the kvDim values of one (component, layer, token),
//               rows ordered component (K then V), layer, token — the order of `KVBlock.k` then `.v`
//     f32   2·layers·tokens·kvDim × Float32
//     f16   2·layers·tokens·kvDim × IEEE binary16 (round to nearest even; beyond ±65504 → ±inf)
//     int8  2·layers·tokens × Float32 scales, then 2·layers·tokens·kvDim × Int8.
//           Per row: scale = max|x| / 127, q = round(x / scale) in -127...127, x ≈ q · scale,
//           so |error| ≤ scale / 2. Rows with max|x| below 2^-119 are stored as zeros (scale 0);
//           NaN is stored as 0 and ±inf as ±max|finite x| of its row.
//     int4  K, then V, each layers blocks of tokens × `Int4Quant.rowBytes(kvDim)` bytes (108 per
//           token for kvDim 192), so one (component, layer) block holds exactly tokens × rowBytes bytes.
//           V, and the last tokens % 64 tokens of each K block, are "rows": per group of 32 values
//           an f16 scale, then the codes two to a byte (low nibble first), the row padded to a
//           multiple of 4. Each group is rotated by the 32×32 Walsh–Hadamard matrix H before
//           quantising (y = H x spreads an outlier over the group, as llama.cpp's rotated KV
//           quantisation does), then scale = max|y| / 7, code = round(y / scale) + 8 in 1...15;
//           decoding is x ≈ Hᵀ(scale · (code − 8)) / 32. A last group of fewer than 32 values is
//           quantised the same way without the rotation. NaN → 0, ±inf → ±max|finite| of its group.
//           K is quantised per channel (KIVI): each whole group of 64 tokens of a K block takes
//           64 × rowBytes bytes: kvDim f16 steps, kvDim f16 minimums, then 64 rows of codes
//           (kvDim values two to a byte, low nibble first, (kvDim + 1) / 2 bytes a row), then zero
//           padding. Per channel c: m = f16(min), step = f16((max − m) / 15),
//           code = round((x − m) / step) in 0...15, x ≈ m + code · step, so |error| ≤ step / 2 for
//           values in [m, max]. NaN → 0 (the range then includes 0), ±inf → the channel's
//           max / min finite value; values beyond ±65504 saturate.
//           Encoding byte 4 was an earlier int4 layout (K per token, as V); it is retired, so
//           entries written with it are rejected as an unknown encoding, never misread.
// All offsets are multiples of 4 from the start of the body, so every typed access is aligned.

#if _endian(big)
#error("KVCache stores little-endian data by memory copy; big-endian hosts are not supported")
#endif

public enum KVEncoding: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case int8 = 1
    case f16 = 2
    case f32 = 3
    /// 4-bit, K per channel and V per token (see the top of this file). 4 was the retired layout.
    case int4 = 5

    public static let `default`: KVEncoding = .int8

    /// Parses "int4", "int8", "f16", "f32" (as printed by `description`).
    public init?(name: String) {
        guard let e = Self.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = e
    }

    public var description: String {
        switch self {
        case .int4: return "int4"
        case .int8: return "int8"
        case .f16: return "f16"
        case .f32: return "f32"
        }
    }

    /// Stored bytes of one row of `kvDim` values (int8 includes its Float32 scale, int4 its f16 group scales).
    public func rowBytes(kvDim: Int) -> Int {
        switch self {
        case .int4: return Int4Quant.rowBytes(kvDim: kvDim)
        case .int8: return kvDim + 4
        case .f16: return 2 * kvDim
        case .f32: return 4 * kvDim
        }
    }

    /// Stored bytes per token: K and V rows of every layer plus the 4-byte position.
    /// An entry of n tokens holds exactly `n * bytesPerToken` bytes (`EncodedKV.byteCount`).
    /// SmolLM2-135M (30 layers, kvDim 192): int4 6 484, int8 11 764, f16 23 044, f32 46 084.
    public func bytesPerToken(layers: Int, kvDim: Int) -> Int {
        2 * layers * rowBytes(kvDim: kvDim) + 4
    }

    /// Body bytes for a shape, or nil when the shape is out of `EncodedKV.limits` (no overflow possible).
    public func bodyBytes(layers: Int, tokenCount: Int, kvDim: Int) -> Int? {
        guard EncodedKV.shapeIsPlausible(layers: layers, tokenCount: tokenCount, kvDim: kvDim) else { return nil }
        return tokenCount * bytesPerToken(layers: layers, kvDim: kvDim)
    }
}

/// KV for a run of tokens in a stored encoding. Immutable; its size is `byteCount`.
public struct EncodedKV: Sendable, Equatable {
    public enum Component: Int, Sendable {
        case k = 0
        case v = 1
    }

    /// Shape limits accepted anywhere (they keep every size computation far from overflow).
    public static let limits = (layers: 1024, tokenCount: 1 << 20, kvDim: 1 << 14)

    public let encoding: KVEncoding
    public let layers: Int
    public let tokenCount: Int
    public let kvDim: Int
    /// Positions, then the payload; see the top of this file.
    public let body: [UInt8]

    /// Stored bytes, exactly `tokenCount * encoding.bytesPerToken(layers:kvDim:)`.
    public var byteCount: Int { body.count }

    static func shapeIsPlausible(layers: Int, tokenCount: Int, kvDim: Int) -> Bool {
        (1...limits.layers).contains(layers) && (1...limits.tokenCount).contains(tokenCount)
            && (1...limits.kvDim).contains(kvDim)
    }

    /// Wraps an already encoded body (e.g. read from disk); nil unless its size fits the shape.
    public init?(encoding: KVEncoding, layers: Int, tokenCount: Int, kvDim: Int, body: [UInt8]) {
        guard let n = encoding.bodyBytes(layers: layers, tokenCount: tokenCount, kvDim: kvDim),
              n == body.count else { return nil }
        self.encoding = encoding
        self.layers = layers
        self.tokenCount = tokenCount
        self.kvDim = kvDim
        self.body = body
    }

    /// Encodes a block. The block must be well formed and within `limits` (a programming error otherwise).
    public init(_ block: KVBlock, encoding: KVEncoding) {
        guard block.isWellFormed,
              let n = encoding.bodyBytes(layers: block.layers, tokenCount: block.tokenCount, kvDim: block.kvDim)
        else { fatalError("EncodedKV: malformed or oversized block \(block.layers)x\(block.tokenCount)x\(block.kvDim)") }
        let t = block.tokenCount, d = block.kvDim
        let rows = block.layers * t     // rows per component
        let m = rows * d                // values per component
        let body = [UInt8](unsafeUninitializedCapacity: n) { buf, count in
            let raw = UnsafeMutableRawPointer(buf.baseAddress!)
            block.positions.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: 4 * t) }
            let p = raw + 4 * t
            block.k.withUnsafeBufferPointer { kb in
                block.v.withUnsafeBufferPointer { vb in
                    let k = kb.baseAddress!, v = vb.baseAddress!
                    switch encoding {
                    case .f32:
                        p.copyMemory(from: k, byteCount: 4 * m)
                        (p + 4 * m).copyMemory(from: v, byteCount: 4 * m)
                    case .f16:
                        p.withMemoryRebound(to: UInt16.self, capacity: 2 * m) { h in
                            Half.encode(k, into: h, count: m)
                            Half.encode(v, into: h + m, count: m)
                        }
                    case .int8:
                        p.withMemoryRebound(to: Float.self, capacity: 2 * rows) { scales in
                            (p + 8 * rows).withMemoryRebound(to: Int8.self, capacity: 2 * m) { q in
                                Int8Quant.quantize(k, rows: rows, dim: d, scales: scales, into: q)
                                Int8Quant.quantize(v, rows: rows, dim: d, scales: scales + rows, into: q + m)
                            }
                        }
                    case .int4:
                        let rb = Int4Quant.rowBytes(kvDim: d)
                        let out = p.assumingMemoryBound(to: UInt8.self)
                        for l in 0..<block.layers {
                            Int4Quant.quantizeK(k + l * t * d, tokens: t, dim: d, into: out + l * t * rb)
                        }
                        Int4Quant.quantize(v, rows: rows, dim: d, into: out + rows * rb)
                    }
                }
            }
            count = n
        }
        self.encoding = encoding
        self.layers = block.layers
        self.tokenCount = t
        self.kvDim = d
        self.body = body
    }

    /// Position each token's K was rotated at.
    public var positions: [Int32] {
        [Int32](unsafeUninitializedCapacity: tokenCount) { buf, count in
            body.withUnsafeBytes { raw in
                UnsafeMutableRawPointer(buf.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: 4 * tokenCount)
            }
            count = tokenCount
        }
    }

    /// Decodes one component of one layer into `tokenCount * kvDim` floats at `dst`
    /// (token-major rows, as in `KVBlock`). This is the TTFT path: write straight into the
    /// engine's cache rather than through `decode()`.
    public func decode(_ component: Component, layer: Int, into dst: UnsafeMutablePointer<Float>) {
        guard (0..<layers).contains(layer) else { fatalError("EncodedKV.decode: layer \(layer) of \(layers)") }
        let t = tokenCount, d = kvDim
        let rows = layers * t, m = rows * d, n = t * d
        let c = component.rawValue
        body.withUnsafeBytes { raw in
            let p = raw.baseAddress! + 4 * t
            switch encoding {
            case .f32:
                UnsafeMutableRawPointer(dst).copyMemory(from: p + 4 * (c * m + layer * n), byteCount: 4 * n)
            case .f16:
                (p + 2 * (c * m + layer * n)).withMemoryRebound(to: UInt16.self, capacity: n) { h in
                    Half.decode(h, into: dst, count: n)
                }
            case .int8:
                (p + 4 * (c * rows + layer * t)).withMemoryRebound(to: Float.self, capacity: t) { scales in
                    (p + 8 * rows + c * m + layer * n).withMemoryRebound(to: Int8.self, capacity: n) { q in
                        Int8Quant.dequantize(q, rows: t, dim: d, scales: scales, into: dst)
                    }
                }
            case .int4:
                let rb = Int4Quant.rowBytes(kvDim: d)
                let src = (p + (c * rows + layer * t) * rb).assumingMemoryBound(to: UInt8.self)
                if component == .k {
                    Int4Quant.dequantizeK(src, tokens: t, dim: d, into: dst)
                } else {
                    Int4Quant.dequantize(src, rows: t, dim: d, into: dst)
                }
            }
        }
    }

    /// Decodes everything into a new block.
    public func decode() -> KVBlock {
        let n = tokenCount * kvDim, m = layers * n
        func component(_ c: Component) -> [Float] {
            [Float](unsafeUninitializedCapacity: m) { buf, count in
                for l in 0..<layers { decode(c, layer: l, into: buf.baseAddress! + l * n) }
                count = m
            }
        }
        return KVBlock(layers: layers, tokenCount: tokenCount, kvDim: kvDim,
                       positions: positions, k: component(.k), v: component(.v))
    }
}

/// Per-row symmetric int8 quantisation. Plain loops over raw pointers so LLVM vectorises them.
enum Int8Quant {
    /// Rows whose max |x| is below this are stored as zeros (127 / amax would overflow near here).
    static let tiny = Float(bitPattern: 0x0400_0000)  // 2^-119

    package static func quantize(_ src: UnsafePointer<Float>, rows: Int, dim: Int,
                         scales: UnsafeMutablePointer<Float>, into q: UnsafeMutablePointer<Int8>) {
        for r in 0..<rows {
            let s = src + r * dim, d = q + r * dim
            // max |x| via the bit pattern: an integer max reduction vectorises, a Float one does not.
            var mbits: UInt32 = 0
            for i in 0..<dim { mbits = max(mbits, s[i].bitPattern & 0x7FFF_FFFF) }
            if mbits >= 0x7F80_0000 {
                scales[r] = quantizeNonFinite(s, dim: dim, into: d)
                continue
            }
            let amax = Float(bitPattern: mbits)
            if amax < tiny {
                scales[r] = 0
                for i in 0..<dim { d[i] = 0 }
                continue
            }
            scales[r] = amax / 127
            let inv = 127 / amax
            for i in 0..<dim {
                let x = min(max((s[i] * inv).rounded(.toNearestOrEven), -127), 127)
                d[i] = Int8(truncatingIfNeeded: Int32(x))
            }
        }
    }

    /// Slow path for a row holding inf or NaN. Returns the row's scale.
    static func quantizeNonFinite(_ s: UnsafePointer<Float>, dim: Int, into d: UnsafeMutablePointer<Int8>) -> Float {
        var amax: Float = 0
        for i in 0..<dim where s[i].isFinite { amax = max(amax, abs(s[i])) }
        let ok = amax >= tiny
        let inv = ok ? 127 / amax : 0
        for i in 0..<dim {
            let x = s[i]
            if x.isNaN || !ok {
                d[i] = 0
            } else if x.isInfinite {
                d[i] = x > 0 ? 127 : -127
            } else {
                d[i] = Int8(truncatingIfNeeded: Int32(min(max((x * inv).rounded(.toNearestOrEven), -127), 127)))
            }
        }
        return ok ? amax / 127 : 0
    }

    static func dequantize(_ q: UnsafePointer<Int8>, rows: Int, dim: Int,
                           scales: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let s = scales[r], src = q + r * dim, out = dst + r * dim
            for i in 0..<dim { out[i] = Float(Int32(src[i])) * s }
        }
    }
}

/// 4-bit codes: K per channel over 64 tokens, asymmetric (`quantizeK`); V rows per group of 32
/// after a Walsh–Hadamard rotation, symmetric, f16 scale per group (layout at the top of this file).
package enum Int4Quant {
    static let group = 32
    /// Tokens per K group: each channel of a K block gets one scale and minimum per 64 tokens.
    static let kTokens = 64

    package static func rowBytes(kvDim: Int) -> Int {
        let groups = (kvDim + group - 1) / group
        return (2 * groups + (kvDim + 1) / 2 + 3) & ~3
    }

    /// Quantises one layer's K, `tokens` rows of `dim` (layout at the top of this file): whole
    /// groups of 64 tokens per channel, asymmetric; the last `tokens % 64` rows as V rows.
    /// Writes exactly `tokens * rowBytes(kvDim: dim)` bytes.
    package static func quantizeK(_ src: UnsafePointer<Float>, tokens: Int, dim: Int, into dst: UnsafeMutablePointer<UInt8>) {
        let rb = rowBytes(kvDim: dim), cb = (dim + 1) / 2, full = tokens / kTokens
        let lo = UnsafeMutablePointer<Float>.allocate(capacity: 2 * dim)
        defer { lo.deallocate() }
        let hi = lo + dim
        for g in 0..<full {
            let x = src + g * kTokens * dim, out = dst + g * kTokens * rb
            let codes = out + 4 * dim
            for i in 0..<(kTokens * rb) { out[i] = 0 }
            // Per channel: min and max of the finite values (NaN → 0, ±inf → the channel's max/min).
            for c in 0..<dim { lo[c] = .infinity; hi[c] = -.infinity }
            for t in 0..<kTokens {
                let row = x + t * dim
                for c in 0..<dim where row[c].isFinite {
                    lo[c] = min(lo[c], row[c])
                    hi[c] = max(hi[c], row[c])
                }
            }
            for c in 0..<dim {
                if lo[c] > hi[c] { lo[c] = 0; hi[c] = 0 }  // no finite value
                for t in 0..<kTokens where x[t * dim + c].isNaN { lo[c] = min(lo[c], 0); hi[c] = max(hi[c], 0) }
                // Saturate to the f16 range, store the minimum, then the step that reaches the maximum.
                let a = min(max(lo[c], -65504), 65504), b = min(max(hi[c], -65504), 65504)
                let minBits = Half.floatToHalf(a)
                let m = Half.halfToFloat(minBits)
                let stepBits = Half.floatToHalf(max(b - m, 0) / 15)
                UnsafeMutableRawPointer(out + 2 * c).storeBytes(of: stepBits.littleEndian, as: UInt16.self)
                UnsafeMutableRawPointer(out + 2 * dim + 2 * c).storeBytes(of: minBits.littleEndian, as: UInt16.self)
                lo[c] = m
                let step = Half.halfToFloat(stepBits)
                hi[c] = step > 0 && step.isFinite ? 1 / step : 0   // now the inverse step
            }
            for t in 0..<kTokens {
                let row = x + t * dim, cr = codes + t * cb
                for c in 0..<dim {
                    let v = row[c]
                    let y: Float = v.isNaN ? 0 : v
                    let q: UInt8 = hi[c] > 0 ? UInt8(min(max(((y - lo[c]) * hi[c]).rounded(.toNearestOrEven), 0), 15)) : 0
                    cr[c / 2] |= c % 2 == 0 ? q : q << 4
                }
            }
        }
        let done = full * kTokens
        if done < tokens { quantize(src + done * dim, rows: tokens - done, dim: dim, into: dst + done * rb) }
    }

    /// The f16 steps and minimums at the start of a K group of 64 tokens, per channel, as floats.
    static func readKGroupHeader(_ block: UnsafePointer<UInt8>, dim: Int, steps: UnsafeMutablePointer<Float>,
                                 minimums: UnsafeMutablePointer<Float>) {
        for c in 0..<dim {
            steps[c] = Half.halfToFloat(UInt16(littleEndian: UnsafeRawPointer(block + 2 * c).loadUnaligned(as: UInt16.self)))
            minimums[c] = Half.halfToFloat(UInt16(littleEndian: UnsafeRawPointer(block + 2 * dim + 2 * c).loadUnaligned(as: UInt16.self)))
        }
    }

    /// `dequantizeK` one value at a time: the definition the vector version must equal bit for bit.
    package static func dequantizeKScalar(_ src: UnsafePointer<UInt8>, tokens: Int, dim: Int, into dst: UnsafeMutablePointer<Float>) {
        let rb = rowBytes(kvDim: dim), cb = (dim + 1) / 2, full = tokens / kTokens
        let m = UnsafeMutablePointer<Float>.allocate(capacity: 2 * dim)
        defer { m.deallocate() }
        let step = m + dim
        for g in 0..<full {
            let block = src + g * kTokens * rb, codes = block + 4 * dim, y = dst + g * kTokens * dim
            readKGroupHeader(block, dim: dim, steps: step, minimums: m)
            for t in 0..<kTokens {
                let cr = codes + t * cb, out = y + t * dim
                for c in 0..<dim {
                    let b = cr[c / 2]
                    let q = c % 2 == 0 ? b & 0x0F : b >> 4
                    out[c] = m[c] + Float(q) * step[c]
                }
            }
        }
        let done = full * kTokens
        if done < tokens { dequantizeScalar(src + done * rb, rows: tokens - done, dim: dim, into: dst + done * dim) }
    }

    /// In-place unnormalised fast Walsh–Hadamard transform of 32 values (H·H = 32·I).
    @inline(__always)
    static func hadamard32(_ x: UnsafeMutablePointer<Float>) {
        var h = 1
        while h < 32 {
            var i = 0
            while i < 32 {
                for j in i..<(i + h) {
                    let a = x[j], b = x[j + h]
                    x[j] = a + b
                    x[j + h] = a - b
                }
                i += 2 * h
            }
            h *= 2
        }
    }

    package static func quantize(_ src: UnsafePointer<Float>, rows: Int, dim: Int, into dst: UnsafeMutablePointer<UInt8>) {
        let rb = rowBytes(kvDim: dim), groups = (dim + group - 1) / group
        let y = UnsafeMutablePointer<Float>.allocate(capacity: group)
        defer { y.deallocate() }
        for r in 0..<rows {
            let s = src + r * dim, row = dst + r * rb
            let codes = row + 2 * groups
            for i in (2 * groups)..<rb { row[i] = 0 }
            for g in 0..<groups {
                let lo = g * group, n = min(group, dim - lo)
                // Non-finite values: NaN → 0, ±inf → ±max|finite| of the group.
                var fmax: Float = 0
                for i in 0..<n where s[lo + i].isFinite { fmax = max(fmax, abs(s[lo + i])) }
                for i in 0..<n {
                    let x = s[lo + i]
                    y[i] = x.isFinite ? x : (x.isNaN ? 0 : (x > 0 ? fmax : -fmax))
                }
                if n == group { hadamard32(y) }
                var amax: Float = 0
                for i in 0..<n { amax = max(amax, abs(y[i])) }
                let scaleBits = Half.floatToHalf(amax / 7)
                let scale = Half.halfToFloat(scaleBits)
                UnsafeMutableRawPointer(row + 2 * g).storeBytes(of: scaleBits.littleEndian, as: UInt16.self)
                let inv: Float = scale > 0 && scale.isFinite ? 1 / scale : 0
                for i in 0..<n {
                    let q = UInt8(min(max((y[i] * inv).rounded(.toNearestOrEven), -7), 7) + 8)
                    let b = (lo + i) / 2
                    codes[b] = (lo + i) % 2 == 0 ? (codes[b] & 0xF0) | q : (codes[b] & 0x0F) | (q << 4)
                }
            }
        }
    }

    /// `dequantize` one value at a time: the definition the vector version must equal bit for bit.
    package static func dequantizeScalar(_ src: UnsafePointer<UInt8>, rows: Int, dim: Int, into dst: UnsafeMutablePointer<Float>) {
        let rb = rowBytes(kvDim: dim), groups = (dim + group - 1) / group
        for r in 0..<rows {
            let row = src + r * rb, codes = row + 2 * groups, out = dst + r * dim
            for g in 0..<groups {
                let lo = g * group, n = min(group, dim - lo)
                let bits = UInt16(littleEndian: UnsafeRawPointer(row + 2 * g).loadUnaligned(as: UInt16.self))
                let scale = Half.halfToFloat(bits)
                for i in 0..<n {
                    let b = codes[(lo + i) / 2]
                    let q = (lo + i) % 2 == 0 ? b & 0x0F : b >> 4
                    out[lo + i] = Float(Int32(q) - 8) * scale
                }
                if n == group {
                    hadamard32(out + lo)
                    for i in 0..<group { out[lo + i] *= 1.0 / 32 }
                }
            }
        }
    }
}

// The decode path of a load (Cake decodes each arriving chunk while the next one arrives), in
// vectors of 8: the same operations as the scalar definitions above, in the same order, so the
// same bits (Swift never fuses a multiply and an add).
extension Int4Quant {
    /// The 8 codes of 4 bytes, low nibble first.
    @inline(__always)
    static func codes8(_ p: UnsafePointer<UInt8>) -> SIMD8<Float> {
        let w = UInt32(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt32.self))
        let q = (SIMD8<UInt32>(repeating: w) &>> SIMD8<UInt32>(0, 4, 8, 12, 16, 20, 24, 28)) & 0xF
        return SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: q))
    }

    /// `hadamard32` over 4 vectors holding values 0–7, 8–15, 16–23, 24–31: stages h = 1, 2, 4
    /// within each vector, then 8 and 16 across them, as the scalar loop runs them. At each stage
    /// values j and j + h (j's bit h clear) become a + b and a − b.
    @inline(__always)
    static func hadamard32(_ x: inout (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)) {
        @inline(__always) func within(_ v: SIMD8<Float>) -> SIMD8<Float> {
            // h = 1: lanes (0,1), (2,3), (4,5), (6,7)
            let e = v.evenHalf, o = v.oddHalf
            var w = SIMD8<Float>()
            w.evenHalf = e + o
            w.oddHalf = e - o
            // h = 2: in each half, lanes (0,2), (1,3)
            @inline(__always) func two(_ x: SIMD4<Float>) -> SIMD4<Float> {
                SIMD4(lowHalf: x.lowHalf + x.highHalf, highHalf: x.lowHalf - x.highHalf)
            }
            let l = two(w.lowHalf), h = two(w.highHalf)
            // h = 4: lanes (j, j+4)
            return SIMD8(lowHalf: l + h, highHalf: l - h)
        }
        var (a, b, c, d) = (within(x.0), within(x.1), within(x.2), within(x.3))
        (a, b) = (a + b, a - b)
        (c, d) = (c + d, c - d)
        (a, c) = (a + c, a - c)
        (b, d) = (b + d, b - d)
        x = (a, b, c, d)
    }

    package static func dequantizeK(_ src: UnsafePointer<UInt8>, tokens: Int, dim: Int, into dst: UnsafeMutablePointer<Float>) {
        guard dim % 8 == 0 else { return dequantizeKScalar(src, tokens: tokens, dim: dim, into: dst) }
        let rb = rowBytes(kvDim: dim), cb = dim / 2, full = tokens / kTokens
        let m = UnsafeMutablePointer<Float>.allocate(capacity: 2 * dim)
        defer { m.deallocate() }
        let step = m + dim
        for g in 0..<full {
            let block = src + g * kTokens * rb, codes = block + 4 * dim, y = dst + g * kTokens * dim
            readKGroupHeader(block, dim: dim, steps: step, minimums: m)
            for t in 0..<kTokens {
                let cr = codes + t * cb, out = y + t * dim
                var c = 0
                while c < dim {
                    let mc = UnsafeRawPointer(m + c).loadUnaligned(as: SIMD8<Float>.self)
                    let sc = UnsafeRawPointer(step + c).loadUnaligned(as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(out + c).storeBytes(of: mc + codes8(cr + c / 2) * sc, as: SIMD8<Float>.self)
                    c += 8
                }
            }
        }
        let done = full * kTokens
        if done < tokens { dequantize(src + done * rb, rows: tokens - done, dim: dim, into: dst + done * dim) }
    }

    package static func dequantize(_ src: UnsafePointer<UInt8>, rows: Int, dim: Int, into dst: UnsafeMutablePointer<Float>) {
        guard dim % group == 0 else { return dequantizeScalar(src, rows: rows, dim: dim, into: dst) }
        let rb = rowBytes(kvDim: dim), groups = dim / group
        for r in 0..<rows {
            let row = src + r * rb, codes = row + 2 * groups, out = dst + r * dim
            for g in 0..<groups {
                let bits = UInt16(littleEndian: UnsafeRawPointer(row + 2 * g).loadUnaligned(as: UInt16.self))
                let scale = SIMD8<Float>(repeating: Half.halfToFloat(bits))
                let q = codes + g * group / 2
                let eight = SIMD8<Float>(repeating: 8)
                var x = ((codes8(q) - eight) * scale, (codes8(q + 4) - eight) * scale,
                         (codes8(q + 8) - eight) * scale, (codes8(q + 12) - eight) * scale)
                hadamard32(&x)
                let inv = SIMD8<Float>(repeating: 1.0 / 32)
                let o = UnsafeMutableRawPointer(out + g * group)
                o.storeBytes(of: x.0 * inv, as: SIMD8<Float>.self)
                o.storeBytes(of: x.1 * inv, toByteOffset: 32, as: SIMD8<Float>.self)
                o.storeBytes(of: x.2 * inv, toByteOffset: 64, as: SIMD8<Float>.self)
                o.storeBytes(of: x.3 * inv, toByteOffset: 96, as: SIMD8<Float>.self)
            }
        }
    }
}

/// IEEE binary16 conversion. Uses the hardware `Float16` where Swift has it, else bit arithmetic
/// (`floatToHalf` / `halfToFloat`, round to nearest even; tested against `Float16`).
public enum Half {
    static func encode(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<UInt16>, count n: Int) {
        #if arch(x86_64) && os(macOS)
        for i in 0..<n { dst[i] = floatToHalf(src[i]) }
        #else
        for i in 0..<n { dst[i] = Float16(src[i]).bitPattern }
        #endif
    }

    static func decode(_ src: UnsafePointer<UInt16>, into dst: UnsafeMutablePointer<Float>, count n: Int) {
        #if arch(x86_64) && os(macOS)
        for i in 0..<n { dst[i] = halfToFloat(src[i]) }
        #else
        for i in 0..<n { dst[i] = Float(Float16(bitPattern: src[i])) }
        #endif
    }

    /// Float → binary16 bits, round to nearest even (after F. Giesen's `float_to_half_fast3_rtne`).
    public static func floatToHalf(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let a = bits & 0x7FFF_FFFF
        if a >= 0x4780_0000 {  // ≥ 65536 (2^16): inf, or NaN (quiet)
            return sign | (a > 0x7F80_0000 ? 0x7E00 : 0x7C00)
        }
        if a < 0x3880_0000 {  // below 2^-14: half subnormal or zero; let an f32 add do the rounding
            let magic = Float(bitPattern: 0x3F00_0000)  // 0.5: its ulp is 2^-24, the half subnormal step
            let r = (Float(bitPattern: a) + magic).bitPattern &- magic.bitPattern
            return sign | UInt16(truncatingIfNeeded: r)
        }
        let mantOdd = (a >> 13) & 1
        let r = a &+ 0xC800_0FFF &+ mantOdd  // exponent rebias (−112 << 23) plus rounding bias
        return sign | UInt16(truncatingIfNeeded: r >> 13)
    }

    /// binary16 bits → Float (exact).
    public static func halfToFloat(_ h: UInt16) -> Float {
        let shiftedExp: UInt32 = 0x7C00 << 13
        var o = UInt32(h & 0x7FFF) << 13
        let exp = o & shiftedExp
        o &+= (127 - 15) << 23
        if exp == shiftedExp {  // inf / NaN
            o &+= (128 - 16) << 23
        } else if exp == 0 {  // zero / subnormal: renormalise
            o &+= 1 << 23
            o = (Float(bitPattern: o) - Float(bitPattern: 113 << 23)).bitPattern
        }
        return Float(bitPattern: o | UInt32(h & 0x8000) << 16)
    }
}
