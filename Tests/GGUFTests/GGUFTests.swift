import Foundation
import GGUF
import TestSupport
import XCTest

final class GGUFTests: XCTestCase {
    func tmp(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvduel-gguf-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let p = tmp(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    func testParsesMetadataOfEveryType() throws {
        var w = GGUFWriter()
        w.set("a.u8", .u8(200)); w.set("a.i8", .i8(-5)); w.set("a.u16", .u16(60000)); w.set("a.i16", .i16(-300))
        w.set("a.u32", .u32(4_000_000_000)); w.set("a.i32", .i32(-70000)); w.set("a.f32", .f32(1.5))
        w.set("a.bool", .bool(true)); w.set("a.str", .string("héllo ✓")); w.set("a.u64", .u64(1 << 40))
        w.set("a.i64", .i64(-(1 << 40))); w.set("a.f64", .f64(2.25))
        w.set("a.strs", .strings(["x", "", "東京"])); w.set("a.ints", .i32s([1, -2, 3])); w.set("a.floats", .f32s([0.5, -1]))
        w.addTensor("t", dims: [32, 2], data: (0..<64).map(Float.init))
        let f = try GGUFFile(path: try write(w.bytes(), "types.gguf"))
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.int("a.u8"), 200)
        XCTAssertEqual(f.int("a.i8"), -5)
        XCTAssertEqual(f.int("a.u16"), 60000)
        XCTAssertEqual(f.int("a.i16"), -300)
        XCTAssertEqual(f.int("a.u32"), 4_000_000_000)
        XCTAssertEqual(f.int("a.i32"), -70000)
        XCTAssertEqual(f.float("a.f32"), 1.5)
        XCTAssertEqual(f.bool("a.bool"), true)
        XCTAssertEqual(f.string("a.str"), "héllo ✓")
        XCTAssertEqual(f.int("a.u64"), 1 << 40)
        XCTAssertEqual(f.int("a.i64"), -(1 << 40))
        XCTAssertEqual(f.float("a.f64"), 2.25)
        XCTAssertEqual(f.strings("a.strs"), ["x", "", "東京"])
        XCTAssertEqual(f.ints("a.ints"), [1, -2, 3])
        XCTAssertEqual(f.floats("a.floats"), [0.5, -1])
        XCTAssertEqual(f.metadataKeys.first, "a.u8")
        let t = try XCTUnwrap(f.tensor("t"))
        XCTAssertEqual(t.dims, [32, 2])
        XCTAssertEqual(t.rows, 2)
        XCTAssertEqual(try f.floats(of: t), (0..<64).map(Float.init))
    }

    func testRespectsAlignment() throws {
        var w = GGUFWriter()
        w.alignment = 64
        w.addTensor("a", dims: [32], data: Array(repeating: 1, count: 32))
        w.addTensor("b", dims: [32], data: Array(repeating: 2, count: 32))
        let f = try GGUFFile(path: try write(w.bytes(), "align.gguf"))
        XCTAssertEqual(f.alignment, 64)
        XCTAssertEqual(f.dataOffset % 64, 0)
        XCTAssertEqual(try f.floats(of: f.tensor("b")!), Array(repeating: 2, count: 32))
    }

    func testDequantisesWriterFormats() throws {
        var rng = TestRNG(seed: 3)
        let x = (0..<256).map { _ in rng.uniform() * 4 - 2 }
        var w = GGUFWriter()
        w.addTensor("f16", dims: [256], type: .f16, data: x)
        w.addTensor("q8", dims: [256], type: .q8_0, data: x)
        w.addTensor("q41", dims: [256], type: .q4_1, data: x)
        let f = try GGUFFile(path: try write(w.bytes(), "quant.gguf"))
        for (name, tol) in [("f16", Float(2e-3)), ("q8", 2.0 / 127), ("q41", 4.0 / 15 / 2 + 2e-3)] {
            let y = try f.floats(of: f.tensor(name)!)
            let err = zip(x, y).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(err, tol, "\(name): max error \(err)")
        }
    }

    // Independent transcriptions of ggml's k-quant layouts, checked against Dequant on random blocks.
    func testKQuantsMatchIndependentReference() throws {
        var rng = TestRNG(seed: 11)
        func randomBlock(_ n: Int, halfAt: [Int]) -> [UInt8] {
            var b = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            for o in halfAt {  // keep the f16 scales finite and small
                let h = Float16(Float(rng.uniform()) * 0.1).bitPattern
                b[o] = UInt8(h & 0xff); b[o + 1] = UInt8(h >> 8)
            }
            return b
        }
        func f16(_ b: [UInt8], _ o: Int) -> Float { Float(Float16(bitPattern: UInt16(b[o]) | UInt16(b[o + 1]) << 8)) }
        func scaleMin(_ s: ArraySlice<UInt8>, _ j: Int) -> (Float, Float) {
            let q = Array(s)
            if j < 4 { return (Float(q[j] & 63), Float(q[j + 4] & 63)) }
            return (Float((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4)), Float((q[j + 4] >> 4) | ((q[j] >> 6) << 4)))
        }
        // Q4_K: d, dmin, scales[12], qs[128]; sub-block s uses low nibbles for even s, high for odd.
        let q4k = randomBlock(144, halfAt: [0, 2])
        var want4 = [Float](repeating: 0, count: 256)
        for i in 0..<256 {
            let sub = i / 32, chunk = i / 64, l = i % 32
            let byte = q4k[16 + chunk * 32 + l]
            let q = sub % 2 == 0 ? byte & 0xF : byte >> 4
            let (sc, m) = scaleMin(q4k[4..<16], sub)
            want4[i] = f16(q4k, 0) * sc * Float(q) - f16(q4k, 2) * m
        }
        // Q6_K: ql[128], qh[64], scales[16] (int8), d.
        let q6k = randomBlock(210, halfAt: [208])
        var want6 = [Float](repeating: 0, count: 256)
        for i in 0..<256 {
            let half = i / 128, j = i % 128, quarter = j / 32, l = j % 32
            let ql = q6k[half * 64 + l + (quarter % 2) * 32]
            let low = quarter < 2 ? ql & 0xF : ql >> 4
            let high = (q6k[128 + half * 32 + l] >> (2 * UInt8(quarter))) & 3
            let q = Int(low | (high << 4)) - 32
            let sc = Float(Int8(bitPattern: q6k[192 + half * 8 + quarter * 2 + l / 16]))
            want6[i] = f16(q6k, 208) * sc * Float(q)
        }
        for (type, block, want) in [(GGMLType.q4_K, q4k, want4), (.q6_K, q6k, want6)] {
            var got = [Float](repeating: 0, count: 256)
            try block.withUnsafeBytes { raw in
                try got.withUnsafeMutableBufferPointer { try Dequant.toFloat(type, raw, count: 256, into: $0.baseAddress!) }
            }
            for i in 0..<256 where abs(got[i] - want[i]) > 1e-4 * max(1, abs(want[i])) {
                XCTFail("\(type) element \(i): got \(got[i]), want \(want[i])")
                break
            }
        }
    }

    func testTruncatedAtEveryHeaderOffsetFailsCleanly() throws {
        let good = TinyModel.writer().bytes()
        // Every cut inside the header and at a sample of points in the data.
        var cuts = Array(0..<min(good.count, 600))
        cuts += stride(from: 600, to: good.count, by: max(1, good.count / 200)).map { $0 }
        for n in cuts {
            let p = try write(Array(good.prefix(n)), "trunc.gguf")
            XCTAssertThrowsError(try GGUFFile(path: p), "cut at \(n) of \(good.count) was accepted") { e in
                let msg = "\(e)"
                XCTAssertFalse(msg.contains("\n"), "multi-line error: \(msg)")
            }
        }
    }

    func testNamedErrors() throws {
        var bytes = TinyModel.writer().bytes()
        bytes[0] = UInt8(ascii: "X")
        XCTAssertThrowsError(try GGUFFile(path: try write(bytes, "magic.gguf"))) { e in
            XCTAssertTrue("\(e)".contains("not a GGUF file"), "\(e)")
        }
        bytes = TinyModel.writer().bytes()
        bytes[4] = 9
        XCTAssertThrowsError(try GGUFFile(path: try write(bytes, "version.gguf"))) { e in
            XCTAssertEqual("\(e)", "unsupported GGUF version 9 (supported: 2, 3)")
        }
        bytes = TinyModel.writer().bytes()
        bytes[8] = 0xff; bytes[9] = 0xff; bytes[10] = 0xff; bytes[15] = 0x7f  // tensor count
        XCTAssertThrowsError(try GGUFFile(path: try write(bytes, "count.gguf"))) { e in
            XCTAssertTrue("\(e)".contains("tensor count"), "\(e)")
        }
        XCTAssertThrowsError(try GGUFFile(path: tmp("does-not-exist.gguf"))) { e in
            XCTAssertTrue("\(e)".contains("cannot open"), "\(e)")
        }
        XCTAssertThrowsError(try GGUFFile(path: try write([], "empty.gguf"))) { e in
            XCTAssertTrue("\(e)".contains("too small"), "\(e)")
        }
    }

    func testUnknownTensorTypeIsNamed() throws {
        var w = GGUFWriter()
        w.addTensor("t", dims: [32], data: Array(repeating: 0, count: 32))
        var bytes = w.bytes()
        // The tensor's type id follows its name, n_dims and dims: find "t" + u32(1) + u64(32).
        let needle: [UInt8] = [1, 0, 0, 0, 0, 0, 0, 0, UInt8(ascii: "t"), 1, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0]
        let at = try XCTUnwrap((0..<(bytes.count - needle.count)).first { Array(bytes[$0..<($0 + needle.count)]) == needle })
        bytes[at + needle.count] = 99
        XCTAssertThrowsError(try GGUFFile(path: try write(bytes, "type.gguf"))) { e in
            XCTAssertTrue("\(e)".contains("type id 99"), "\(e)")
        }
    }

    /// Hundreds of mutated files (bit flips, byte runs, huge counts, truncations): the loader must
    /// either accept the file or throw a GGUFError; it must never crash or hang.
    func testMutatedFilesNeverCrashTheLoader() throws {
        let good = TinyModel.writer(type: .q8_0).bytes()
        var rng = TestRNG(seed: 99)
        var accepted = 0, rejected = 0
        for i in 0..<600 {
            var b = good
            switch i % 5 {
            case 0:  // bit flips, biased to the header
                for _ in 0..<(1 + rng.below(4)) {
                    let pos = rng.below(4) == 0 ? rng.below(b.count) : rng.below(min(b.count, 2048))
                    b[pos] ^= UInt8(1) << UInt8(rng.below(8))
                }
            case 1:  // a run of 0xff (huge lengths and counts)
                let pos = rng.below(min(b.count, 2048)), n = 1 + rng.below(8)
                for j in pos..<min(b.count, pos + n) { b[j] = 0xff }
            case 2:  // truncation
                b = Array(b.prefix(rng.below(b.count)))
            case 3:  // random bytes at a random place
                let pos = rng.below(min(b.count, 4096))
                for j in pos..<min(b.count, pos + 16) { b[j] = UInt8(truncatingIfNeeded: rng.next()) }
            default:  // a plausible but huge u64 somewhere in the header
                let pos = rng.below(min(b.count - 8, 2048))
                let v = UInt64(1) << UInt64(30 + rng.below(33))
                for j in 0..<8 { b[pos + j] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(j))) }
            }
            let p = try write(b, "fuzz.gguf")
            do {
                let f = try GGUFFile(path: p)
                // Accepted files must also dequantise every tensor without trouble.
                for t in f.tensors where t.type.isSupported { _ = try f.floats(of: t) }
                accepted += 1
            } catch is GGUFError {
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 300, "most mutations should be caught (accepted \(accepted))")
    }
}
