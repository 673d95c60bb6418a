import Foundation
import KVCache
import XCTest

final class EncodingTests: XCTestCase {
    func testBytesPerToken() {
        // SmolLM2-135M: 30 layers, kvDim 192. Rows: 2 × 30 per token, plus a 4-byte position.
        XCTAssertEqual(KVEncoding.f32.bytesPerToken(layers: 30, kvDim: 192), 60 * 768 + 4)
        XCTAssertEqual(KVEncoding.f16.bytesPerToken(layers: 30, kvDim: 192), 60 * 384 + 4)
        XCTAssertEqual(KVEncoding.int8.bytesPerToken(layers: 30, kvDim: 192), 60 * 196 + 4)
        XCTAssertEqual(KVEncoding.int8.bytesPerToken(layers: 30, kvDim: 192), 11_764)
        // int4: 6 f16 group scales + 96 code bytes per row of 192.
        XCTAssertEqual(KVEncoding.int4.bytesPerToken(layers: 30, kvDim: 192), 60 * 108 + 4)
        XCTAssertEqual(KVEncoding.int4.bytesPerToken(layers: 30, kvDim: 192), 6_484)
        XCTAssertEqual(KVEncoding.int4.bytesPerToken(layers: 2, kvDim: 8), 4 * 8 + 4)    // one short group
        XCTAssertEqual(KVEncoding.int4.bytesPerToken(layers: 1, kvDim: 40), 2 * 24 + 4)  // 32 + 8: 4 + 20 bytes
        // Toy shape used by the store tests.
        XCTAssertEqual(KVEncoding.int8.bytesPerToken(layers: 2, kvDim: 8), 52)
        XCTAssertEqual(KVEncoding.f16.bytesPerToken(layers: 2, kvDim: 8), 68)
        XCTAssertEqual(KVEncoding.f32.bytesPerToken(layers: 2, kvDim: 8), 132)
        for e in KVEncoding.allCases {
            XCTAssertEqual(Toy.encoded(tokens: 3, seed: 1, encoding: e).byteCount, 3 * e.bytesPerToken(layers: 2, kvDim: 8))
        }
        XCTAssertEqual(KVEncoding.default, .int8)
        // 4 named the retired per-token int4 layout: it must not parse as any encoding.
        XCTAssertEqual(KVEncoding.int4.rawValue, 5)
        XCTAssertNil(KVEncoding(rawValue: 4))
        XCTAssertEqual(KVEncoding(name: "F16"), .f16)
        XCTAssertNil(KVEncoding(name: "q4"))
    }

    func testF32RoundTripIsExact() {
        let b = Toy.block(tokens: 5, seed: 11, firstPosition: 100)
        let e = EncodedKV(b, encoding: .f32)
        XCTAssertEqual(e.decode(), b)
        XCTAssertEqual(e.positions, [100, 101, 102, 103, 104])
        // Bitwise too (Equatable on Float would accept -0 == 0).
        XCTAssertEqual(e.decode().k.map(\.bitPattern), b.k.map(\.bitPattern))
    }

    func testF16RoundTripWithinHalfPrecision() {
        let b = Toy.block(tokens: 5, seed: 12, range: 100)
        let d = EncodedKV(b, encoding: .f16).decode()
        XCTAssertEqual(d.positions, b.positions)
        var maxRel: Float = 0
        for (x, y) in zip(b.k + b.v, d.k + d.v) {
            // Round to nearest: relative error ≤ 2^-11 for normal halves.
            XCTAssertLessThanOrEqual(abs(x - y), abs(x) * 0x1p-11, "\(x) → \(y)")
            maxRel = max(maxRel, abs(x - y) / abs(x))
        }
        XCTAssertGreaterThan(maxRel, 0, "f16 is lossy on random data")
        // Exactly representable values come back exactly; out-of-range values saturate to inf.
        let special = KVBlock(layers: 1, tokenCount: 1, kvDim: 4, positions: [0],
                              k: [0.5, -2048, 65504, 70000], v: [0, -0.0, 0x1p-24, 1e-9])
        let s = EncodedKV(special, encoding: .f16).decode()
        XCTAssertEqual(s.k, [0.5, -2048, 65504, .infinity])
        XCTAssertEqual(s.v, [0, 0, 0x1p-24, 0])
    }

    func testInt8RoundTripErrorWithinHalfAStep() {
        let b = Toy.block(tokens: 9, seed: 13, range: 5)
        let e = EncodedKV(b, encoding: .int8)
        let d = e.decode()
        XCTAssertEqual(d.positions, b.positions)
        let rows = 2 * b.layers * b.tokenCount
        var worst: Float = 0  // max error / scale
        for r in 0..<rows {
            let src = r < rows / 2 ? b.k : b.v, dst = r < rows / 2 ? d.k : d.v
            let base = (r % (rows / 2)) * b.kvDim
            let amax = (0..<b.kvDim).map { abs(src[base + $0]) }.max()!
            let scale = amax / 127
            for i in 0..<b.kvDim {
                let err = abs(src[base + i] - dst[base + i])
                // scale / 2, plus float rounding of x·(127/amax) and q·scale (a few ulps of amax).
                XCTAssertLessThanOrEqual(err, scale / 2 + 4 * amax.ulp, "row \(r) element \(i)")
                worst = max(worst, err / scale)
            }
            // The largest element maps to ±127 and comes back within float rounding.
            let imax = (0..<b.kvDim).max { abs(src[base + $0]) < abs(src[base + $1]) }!
            XCTAssertEqual(dst[base + imax], src[base + imax], accuracy: 2 * amax.ulp)
        }
        // The bound is tight: some element is close to half a step off (so a coarser grid would fail).
        XCTAssertGreaterThan(worst, 0.4)
    }

    /// Gaussian rows of 64 (two rotated groups): relative RMS error about step/√12 of the rotated
    /// values, ≈ 9.5%; every value within the rotated step's bound; positions exact.
    func testInt4RoundTripError() {
        var rng = SplitMix(seed: 41)
        let layers = 3, tokens = 7, dim = 64
        func gauss() -> Float {
            let u = max(rng.float(in: 0...1), 1e-7), v = rng.float(in: 0...1)
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
        let n = layers * tokens * dim
        let b = KVBlock(layers: layers, tokenCount: tokens, kvDim: dim, positions: (0..<Int32(tokens)).map { $0 + 9 },
                        k: (0..<n).map { _ in gauss() }, v: (0..<n).map { _ in 4 * gauss() })
        let e = EncodedKV(b, encoding: .int4)
        XCTAssertEqual(e.byteCount, tokens * KVEncoding.int4.bytesPerToken(layers: layers, kvDim: dim))
        let d = e.decode()
        XCTAssertEqual(d.positions, b.positions)
        for (name, x, y) in [("K", b.k, d.k), ("V", b.v, d.v)] {
            var err = 0.0, ref = 0.0
            for (a, c) in zip(x, y) { err += Double((a - c) * (a - c)); ref += Double(a * a) }
            let rel = (err / ref).squareRoot()
            XCTAssertLessThan(rel, 0.13, "\(name) relative RMS error \(rel)")
            XCTAssertGreaterThan(rel, 0.02, "\(name): 4 bits cannot be this exact (\(rel)): is it quantising?")
        }
        // Decoding one layer into a buffer gives the same values as the full decode.
        var buf = [Float](repeating: .nan, count: tokens * dim)
        buf.withUnsafeMutableBufferPointer { e.decode(.v, layer: 2, into: $0.baseAddress!) }
        XCTAssertEqual(buf, Array(d.v[(2 * tokens * dim)..<(3 * tokens * dim)]))
    }

    /// The vector int4 decoders (the load path) equal the one-value-at-a-time definitions bit for
    /// bit, over arbitrary bytes: every code, scale bits including subnormals, inf and NaN, whole
    /// and partial K groups, and a dimension the vector path hands to the scalar one.
    func testInt4VectorDecodeEqualsScalarBitForBit() {
        var rng = SplitMix(seed: 77)
        for (tokens, dim) in [(200, 192), (64, 64), (5, 64), (70, 40), (130, 96)] {
            let bytes = tokens * Int4Quant.rowBytes(kvDim: dim)
            let src = (0..<bytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var fast = [Float](repeating: -1, count: tokens * dim), slow = fast
            for k in [false, true] {
                src.withUnsafeBufferPointer { s in
                    fast.withUnsafeMutableBufferPointer { f in
                        slow.withUnsafeMutableBufferPointer { w in
                            if k {
                                Int4Quant.dequantizeK(s.baseAddress!, tokens: tokens, dim: dim, into: f.baseAddress!)
                                Int4Quant.dequantizeKScalar(s.baseAddress!, tokens: tokens, dim: dim, into: w.baseAddress!)
                            } else {
                                Int4Quant.dequantize(s.baseAddress!, rows: tokens, dim: dim, into: f.baseAddress!)
                                Int4Quant.dequantizeScalar(s.baseAddress!, rows: tokens, dim: dim, into: w.baseAddress!)
                            }
                        }
                    }
                }
                let bad = zip(fast, slow).enumerated().filter { !($1.0.bitPattern == $1.1.bitPattern || ($1.0.isNaN && $1.1.isNaN)) }
                XCTAssertTrue(bad.isEmpty, "\(k ? "K" : "V") \(tokens)×\(dim): \(bad.count) values differ, first at " +
                              bad.prefix(3).map { "\($0.offset): \($0.element.0) vs \($0.element.1)" }.joined(separator: ", "))
                XCTAssertGreaterThan(slow.filter { $0.isFinite && $0 != 0 }.count, tokens * dim / 2, "mostly finite values were compared")
            }
        }
    }

    /// A group whose energy sits in one outlier channel: after the rotation the outlier is spread
    /// over 32 rotated values, and the decoded group keeps the small channels' mean error below
    /// what plain 4-bit codes with the outlier's scale give them (they round to 0 there).
    func testInt4RotationSpreadsAnOutlier() {
        var rng = SplitMix(seed: 5)
        var row = (0..<32).map { _ in rng.float(in: -1...1) }
        row[13] = 60
        let b = KVBlock(layers: 1, tokenCount: 1, kvDim: 32, positions: [0], k: row, v: row)
        let d = EncodedKV(b, encoding: .int4).decode()
        XCTAssertEqual(d.k[13], 60, accuracy: 60 * 0.15)
        let small = (0..<32).filter { $0 != 13 }
        let rotatedErr = small.map { abs(d.k[$0] - row[$0]) }.reduce(0, +) / Float(small.count)
        let plainErr = small.map { abs(row[$0]) }.reduce(0, +) / Float(small.count)   // codes of 0 at step 60/7
        XCTAssertLessThan(rotatedErr, plainErr, "rotated error \(rotatedErr) vs unrotated \(plainErr)")
    }

    /// K is quantised per channel over whole groups of 64 tokens: values on each channel's own
    /// grid (minimum m, step s, 16 levels with both ends present) decode exactly, and the 3 tokens
    /// past the last whole group are per-token rows (error bounded by their rotated step).
    func testInt4KeyChannelGroupsAreExactOnTheirGrid() {
        let layers = 2, tokens = 64 + 3, dim = 40
        var k = [Float](repeating: 0, count: layers * tokens * dim)
        for l in 0..<layers {
            for t in 0..<tokens {
                for c in 0..<dim {
                    let m = -Float(c) / 4 + Float(l), s = 0.25 * Float(c % 3 + 1)
                    k[(l * tokens + t) * dim + c] = m + Float((t * 7 + c) % 16) * s   // codes 0...15 all present
                }
            }
        }
        let b = KVBlock(layers: layers, tokenCount: tokens, kvDim: dim, positions: (0..<Int32(tokens)).map { $0 },
                        k: k, v: k)
        let e = EncodedKV(b, encoding: .int4)
        XCTAssertEqual(e.byteCount, tokens * (2 * layers * 24 + 4))   // rowBytes(40) = 2 scales + 20 code bytes, padded
        let d = e.decode()
        for l in 0..<layers {
            let group = (l * tokens * dim)..<((l * tokens + 64) * dim)
            XCTAssertEqual(Array(d.k[group]), Array(k[group]), "layer \(l): a channel's own grid is exact")
            // The tail rows: per-token groups (32 rotated + 8 plain) of amax/7 steps.
            for t in 64..<tokens {
                let row = (l * tokens + t) * dim
                let amax = k[row..<(row + dim)].map(abs).max()!
                for c in 0..<dim { XCTAssertEqual(d.k[row + c], k[row + c], accuracy: 32 * amax / 7, "tail \(t) \(c)") }
            }
        }
        // V is per token everywhere: the same values do not come back exactly.
        XCTAssertNotEqual(Array(d.v[0..<(64 * dim)]), Array(k[0..<(64 * dim)]))
        // Decoding one layer into a buffer gives the same values as the full decode.
        var buf = [Float](repeating: .nan, count: tokens * dim)
        buf.withUnsafeMutableBufferPointer { e.decode(.k, layer: 1, into: $0.baseAddress!) }
        XCTAssertEqual(buf, Array(d.k[(tokens * dim)...]))
    }

    /// K with the shape of real keys (per-channel offsets, a few channels around ±25): within a
    /// whole group every value is within half its channel's step (plus the f16 rounding of the
    /// minimum), and the error is far below per-token codes on the same data.
    func testInt4KeyChannelErrorBound() {
        var rng = SplitMix(seed: 43)
        func gauss() -> Float {
            let u = max(rng.float(in: 0...1), 1e-7), v = rng.float(in: 0...1)
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
        let tokens = 128, dim = 64
        let offset = (0..<dim).map { c in c % 16 == 5 ? (c % 32 == 5 ? 25 : -25) : 2 * gauss() }
        let k = (0..<(tokens * dim)).map { i in offset[i % dim] + gauss() }
        let b = KVBlock(layers: 1, tokenCount: tokens, kvDim: dim, positions: (0..<Int32(tokens)).map { $0 }, k: k, v: k)
        let d = EncodedKV(b, encoding: .int4).decode()
        for g in 0..<2 {
            for c in 0..<dim {
                let xs = (0..<64).map { k[((g * 64) + $0) * dim + c] }
                let lo = xs.min()!, hi = xs.max()!
                let bound = (hi - lo) / 30 * 1.002 + abs(lo) / 1024
                for t in 0..<64 {
                    let i = (g * 64 + t) * dim + c
                    XCTAssertEqual(d.k[i], k[i], accuracy: bound, "group \(g) channel \(c) token \(t)")
                }
            }
        }
        func relRMS(_ x: [Float], _ y: [Float]) -> Double {
            var e = 0.0, r = 0.0
            for (a, c) in zip(x, y) { e += Double((a - c) * (a - c)); r += Double(a * a) }
            return (e / r).squareRoot()
        }
        let kErr = relRMS(k, d.k), vErr = relRMS(k, d.v)   // V holds the same values, per token
        XCTAssertLessThan(kErr, 0.03, "per-channel K error \(kErr)")
        XCTAssertLessThan(kErr, vErr / 2, "per-channel \(kErr) vs per-token \(vErr)")
    }

    /// Non-finite K in a whole group: NaN → 0 (inside the channel's range), +inf → the channel's
    /// finite max, −inf → its finite min; a channel with nothing finite decodes as zeros; a
    /// constant channel (f16-exact) is exact; a huge value saturates near 65504.
    func testInt4KeyChannelNonFinite() {
        let tokens = 64, dim = 5
        var k = [Float](repeating: 0, count: tokens * dim)
        for t in 0..<tokens {
            k[t * dim + 0] = Float(t % 8) + 1            // 1...8
            k[t * dim + 1] = .nan                        // nothing finite
            k[t * dim + 2] = 2.5                         // constant
            k[t * dim + 3] = Float(t) / 4 - 4            // −4...11.75
            k[t * dim + 4] = 1
        }
        k[3 * dim + 0] = .nan
        k[4 * dim + 0] = .infinity
        k[5 * dim + 0] = -.infinity
        k[9 * dim + 4] = 1e9
        let b = KVBlock(layers: 1, tokenCount: tokens, kvDim: dim, positions: (0..<Int32(tokens)).map { $0 }, k: k, v: k.map { _ in 0 })
        let d = EncodedKV(b, encoding: .int4).decode()
        XCTAssertTrue(d.k.allSatisfy(\.isFinite), "\(d.k)")
        let step0: Float = 8.0 / 15                      // channel 0's range is 0...8 (NaN counts as 0)
        XCTAssertEqual(d.k[3 * dim], 0, accuracy: step0 / 2)
        XCTAssertEqual(d.k[4 * dim], 8, accuracy: step0 / 2)
        XCTAssertEqual(d.k[5 * dim], 0, accuracy: step0 / 2)   // the finite min after NaN → 0
        for t in 0..<tokens {
            XCTAssertEqual(d.k[t * dim + 1], 0)
            XCTAssertEqual(d.k[t * dim + 2], 2.5)
            XCTAssertEqual(d.k[t * dim + 3], k[t * dim + 3], accuracy: 15.75 / 30 + 0.001)
            if t != 9 { XCTAssertEqual(d.k[t * dim + 4], 1) }
        }
        XCTAssertEqual(d.k[9 * dim + 4], 65504, accuracy: 65504 / 1000)   // m + 15 · f16 step
    }

    func testInt4ZerosNonFiniteAndShortGroups() {
        // Zeros stay zeros; NaN → 0; ±inf → ±max|finite| of its group; a short last group (8 of 40).
        var k = [Float](repeating: 0, count: 40), v = [Float](repeating: 0, count: 40)
        v[0] = .nan; v[1] = .infinity; v[2] = 3; v[35] = -2; v[36] = -.infinity
        let d = EncodedKV(KVBlock(layers: 1, tokenCount: 1, kvDim: 40, positions: [0], k: k, v: v), encoding: .int4).decode()
        XCTAssertEqual(d.k, k)
        XCTAssertTrue(d.v.allSatisfy(\.isFinite), "\(d.v)")
        XCTAssertEqual(d.v[35], -2, accuracy: 2.0 / 7)
        XCTAssertEqual(d.v[36], -2, accuracy: 2.0 / 7)
        XCTAssertEqual(d.v[1], 3, accuracy: 0.8)
        k[0] = 1
        XCTAssertNotEqual(EncodedKV(KVBlock(layers: 1, tokenCount: 1, kvDim: 40, positions: [0], k: k, v: v), encoding: .int4).decode().k, d.k)
    }

    func testInt8EdgeRowsDoNotCrash() {
        let dim = 4
        let k: [Float] = [0, 0, 0, 0,                      // all zero
                          0x1p-133, -0x1p-130, 0, 0,       // subnormal: stored as zeros
                          .nan, 1, -2, 0.5,                // NaN → 0
                          .infinity, -.infinity, 3, -1]    // ±inf → ±max finite
        let b = KVBlock(layers: 1, tokenCount: 4, kvDim: dim, positions: [0, 1, 2, 3], k: k, v: k.map { $0 * 2 })
        let d = EncodedKV(b, encoding: .int8).decode()
        XCTAssertEqual(Array(d.k[0..<4]), [0, 0, 0, 0])
        XCTAssertEqual(Array(d.k[4..<8]), [0, 0, 0, 0])
        XCTAssertEqual(d.k[8], 0)
        XCTAssertEqual(d.k[9], 1, accuracy: 2 / 127)
        XCTAssertEqual(d.k[10], -2, accuracy: 1e-6)
        XCTAssertEqual(d.k[12], 3, accuracy: 1e-6)
        XCTAssertEqual(d.k[13], -3, accuracy: 1e-6)
        XCTAssertTrue((d.k + d.v).allSatisfy(\.isFinite))
    }

    func testDecodeOneLayerIntoBufferMatchesFullDecode() {
        for enc in KVEncoding.allCases {
            let b = Toy.block(tokens: 3, seed: 14)
            let e = EncodedKV(b, encoding: enc)
            let full = e.decode()
            let n = b.tokenCount * b.kvDim
            var buf = [Float](repeating: .nan, count: n + 2)  // guard elements must stay untouched
            for layer in 0..<b.layers {
                for c in [EncodedKV.Component.k, .v] {
                    buf.withUnsafeMutableBufferPointer { e.decode(c, layer: layer, into: $0.baseAddress! + 1) }
                    let src = c == .k ? full.k : full.v
                    XCTAssertEqual(Array(buf[1...n]), Array(src[(layer * n)..<((layer + 1) * n)]), "\(enc) \(c) \(layer)")
                    XCTAssertTrue(buf[0].isNaN && buf[n + 1].isNaN, "wrote outside its range")
                }
            }
        }
    }

    func testWrappingABodyChecksItsSize() {
        let e = Toy.encoded(tokens: 2, seed: 1)
        XCTAssertEqual(EncodedKV(encoding: .int8, layers: 2, tokenCount: 2, kvDim: 8, body: e.body), e)
        XCTAssertNil(EncodedKV(encoding: .int8, layers: 2, tokenCount: 2, kvDim: 8, body: Array(e.body.dropLast())))
        XCTAssertNil(EncodedKV(encoding: .f16, layers: 2, tokenCount: 2, kvDim: 8, body: e.body))
        XCTAssertNil(EncodedKV(encoding: .int8, layers: 0, tokenCount: 2, kvDim: 8, body: e.body))
        XCTAssertNil(EncodedKV(encoding: .int8, layers: 2, tokenCount: -2, kvDim: 8, body: e.body))
    }

    #if !(arch(x86_64) && os(macOS))  // Float16 is unavailable there
    func testHalfBitConversionMatchesFloat16() {
        // Every half → float, and the float → half of each of them and of their neighbours.
        for h in UInt16.min...UInt16.max {
            let f = Half.halfToFloat(h)
            let ref = Float(Float16(bitPattern: h))
            if ref.isNaN {
                XCTAssertTrue(f.isNaN)
                XCTAssertEqual(Half.floatToHalf(f) & 0x7C00, 0x7C00)
                continue
            }
            XCTAssertEqual(f.bitPattern, ref.bitPattern, "half \(h)")
            XCTAssertEqual(Half.floatToHalf(f), h, "exact \(f)")
            for g in [f.nextUp, f.nextDown, Float(bitPattern: f.bitPattern &+ 0x1000)] where g.isFinite {
                XCTAssertEqual(Half.floatToHalf(g), Float16(g).bitPattern, "float \(g)")
            }
        }
        var rng = SplitMix(seed: 15)
        for _ in 0..<100_000 {
            let f = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            guard !f.isNaN else { continue }
            XCTAssertEqual(Half.floatToHalf(f), Float16(f).bitPattern, "float \(f)")
        }
    }
    #endif

    /// Throughput at the real model's shape (one 256-token chunk, 30 layers, kvDim 192), decoding
    /// into a full-size destination as the engine's cache would be (11.8 MB, not cache-resident).
    /// Printed, not asserted: debug builds are many times slower than release.
    func testThroughputReport() {
        #if DEBUG
        let (build, reps, tokens) = ("debug", 1, 16)  // only checks the code path; numbers are meaningless
        #else
        let (build, reps, tokens) = ("release", 20, 256)
        #endif
        let layers = 30, dim = 192
        let b = Toy.block(tokens: tokens, seed: 16, layers: layers, kvDim: dim)
        let f32Bytes = Double(2 * b.floatsPerComponent * 4)
        let n = tokens * dim
        var out = [Float](repeating: 0, count: 2 * layers * n)
        for enc in KVEncoding.allCases {
            var e = EncodedKV(b, encoding: enc)
            let t0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<reps { e = EncodedKV(b, encoding: enc) }
            let t1 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<reps {
                out.withUnsafeMutableBufferPointer { p in
                    for l in 0..<layers {
                        e.decode(.k, layer: l, into: p.baseAddress! + l * n)
                        e.decode(.v, layer: l, into: p.baseAddress! + (layers + l) * n)
                    }
                }
            }
            let t2 = DispatchTime.now().uptimeNanoseconds
            let enc_s = Double(t1 - t0) / 1e9 / Double(reps), dec_s = Double(t2 - t1) / 1e9 / Double(reps)
            print(String(format: "[kvcache %@] %@: %d B/token; encode %.0f MB/s, decode %.0f MB/s (f32 side), %.2f ms per %d-token chunk",
                         build, enc.description, e.byteCount / tokens, f32Bytes / enc_s / 1e6, f32Bytes / dec_s / 1e6,
                         dec_s * 1e3, tokens))
            XCTAssertEqual(e.byteCount, tokens * enc.bytesPerToken(layers: layers, kvDim: dim))
            let ref = e.decode()
            XCTAssertEqual(Array(out[0..<(layers * n)]), ref.k)
            XCTAssertEqual(Array(out[(layers * n)...]), ref.v)
        }
    }
}
