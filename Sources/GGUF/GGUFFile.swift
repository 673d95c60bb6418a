#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A GGUF file (v2/v3), memory-mapped read-only. Every offset, count and length is validated
/// against the file size before memory is touched: a damaged file gives a `GGUFError`, never a crash.
///
/// Layout (little-endian): magic "GGUF", version u32, tensor count u64, metadata count u64,
/// metadata (key string, type u32, value), tensor infos (name, n_dims u32, dims u64[n], type u32,
/// offset u64), padding to `general.alignment` (default 32), tensor data.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    public let dataOffset: Int
    public let fileSize: Int
    private let tensorIndex: [String: Int]
    private let mapping: UnsafeRawBufferPointer

    /// Limits that reject absurd headers before any allocation is made from them.
    public static let maxTensors = 1 << 20
    public static let maxMetadata = 1 << 20
    public static let maxDims = 4

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw GGUFError.io("cannot open '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GGUFError.io("cannot stat '\(path)'") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw GGUFError.io("'\(path)' is not a regular file") }
        let size = Int(st.st_size)
        guard size >= 24 else { throw GGUFError.truncated("file is \(size) bytes, too small for a GGUF header") }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw GGUFError.io("cannot memory-map '\(path)'")
        }
        let buffer = UnsafeRawBufferPointer(start: base, count: size)
        do {
            var parser = GGUFParser(buffer)
            let parsed = try parser.parse()
            self.mapping = buffer
            self.fileSize = size
            self.version = parsed.version
            self.metadata = parsed.metadata
            self.metadataKeys = parsed.keys
            self.tensors = parsed.tensors
            self.alignment = parsed.alignment
            self.dataOffset = parsed.dataOffset
            var index: [String: Int] = [:]
            for (i, t) in parsed.tensors.enumerated() { index[t.name] = i }
            self.tensorIndex = index
        } catch {
            munmap(base, size)
            throw error
        }
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: mapping.baseAddress), mapping.count) }

    public func tensor(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// The raw bytes of a tensor, inside the mapping. Valid while this file is alive.
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: mapping[(dataOffset + tensor.offset)..<(dataOffset + tensor.offset + tensor.byteCount)])
    }

    /// The tensor's values as float32, dequantised. Row-major, innermost dimension `dims[0]`.
    public func floats(of tensor: GGUFTensorInfo) throws -> [Float] {
        let n = tensor.elementCount
        return try [Float](unsafeUninitializedCapacity: n) { out, count in
            try Dequant.toFloat(tensor.type, data(of: tensor), count: n, into: out.baseAddress!)
            count = n
        }
    }

    // MARK: typed metadata accessors

    public func string(_ key: String) -> String? {
        if case .string(let s)? = metadata[key] { return s }
        return nil
    }
    public func int(_ key: String) -> Int? { metadata[key]?.intValue }
    public func float(_ key: String) -> Float? { metadata[key]?.floatValue }
    public func bool(_ key: String) -> Bool? {
        if case .bool(let b)? = metadata[key] { return b }
        return metadata[key]?.intValue.map { $0 != 0 }
    }
    public func strings(_ key: String) -> [String]? {
        guard case .array(let a)? = metadata[key] else { return nil }
        var out: [String] = []
        out.reserveCapacity(a.count)
        for v in a { guard case .string(let s) = v else { return nil }; out.append(s) }
        return out
    }
    public func ints(_ key: String) -> [Int]? {
        guard case .array(let a)? = metadata[key] else { return nil }
        var out: [Int] = []
        out.reserveCapacity(a.count)
        for v in a { guard let i = v.intValue else { return nil }; out.append(i) }
        return out
    }
    public func floats(_ key: String) -> [Float]? {
        guard case .array(let a)? = metadata[key] else { return nil }
        var out: [Float] = []
        out.reserveCapacity(a.count)
        for v in a { guard let f = v.floatValue else { return nil }; out.append(f) }
        return out
    }
}

public struct GGUFTensorInfo: Sendable, Hashable {
    public let name: String
    /// Dimensions as GGUF stores them: `dims[0]` is the innermost (contiguous) one.
    public let dims: [Int]
    public let type: GGMLType
    /// Offset from the start of the tensor data section.
    public let offset: Int
    public var elementCount: Int { dims.reduce(1, *) }
    public var byteCount: Int { type.byteCount(elements: elementCount) }
    /// Rows × columns view for a matrix: columns = dims[0].
    public var rows: Int { elementCount / max(dims.first ?? 1, 1) }
    public var columns: Int { dims.first ?? 1 }
}

public indirect enum GGUFValue: Sendable, Hashable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    case array([GGUFValue])

    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): return Int(v)
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }
    public var floatValue: Float? {
        switch self {
        case .float32(let v): return v
        case .float64(let v): return Float(v)
        default: return intValue.map(Float.init)
        }
    }
}

public enum GGUFError: Error, CustomStringConvertible, Equatable {
    case io(String)
    case badMagic(String)
    case unsupportedVersion(UInt32)
    case truncated(String)
    case invalid(String)
    case unsupportedType(String)
    case unsupportedModel(String)

    /// One line, naming the problem.
    public var description: String {
        switch self {
        case .io(let s): return s
        case .badMagic(let m): return "not a GGUF file (magic is \(m), expected 'GGUF')"
        case .unsupportedVersion(let v): return "unsupported GGUF version \(v) (supported: 2, 3)"
        case .truncated(let s): return "truncated GGUF file: \(s)"
        case .invalid(let s): return "invalid GGUF file: \(s)"
        case .unsupportedType(let s): return "unsupported tensor type: \(s)"
        case .unsupportedModel(let s): return "unsupported model: \(s)"
        }
    }
}

/// Bounds-checked little-endian reader over the mapping.
struct GGUFParser {
    let buf: UnsafeRawBufferPointer
    var pos = 0
    init(_ buf: UnsafeRawBufferPointer) { self.buf = buf }

    struct Parsed {
        var version: UInt32
        var metadata: [String: GGUFValue]
        var keys: [String]
        var tensors: [GGUFTensorInfo]
        var alignment: Int
        var dataOffset: Int
    }

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        guard n >= 0, pos <= buf.count - n else {
            throw GGUFError.truncated("\(what()) at offset \(pos) runs past the end of the file (\(buf.count) bytes)")
        }
    }
    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let v = buf.loadUnaligned(fromByteOffset: pos, as: T.self)
        pos += MemoryLayout<T>.size
        return T(littleEndian: v)
    }
    mutating func count(_ what: @autoclosure () -> String, max: Int) throws -> Int {
        let v = try read(UInt64.self, what())
        guard v <= UInt64(max) else { throw GGUFError.invalid("\(what()) is \(v), more than the limit \(max)") }
        return Int(v)
    }
    mutating func string(_ what: @autoclosure () -> String) throws -> String {
        let len = try read(UInt64.self, "length of \(what())")
        guard len <= UInt64(buf.count - pos) else {
            throw GGUFError.truncated("\(what()) claims \(len) bytes at offset \(pos), past the end of the file")
        }
        let n = Int(len)
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: buf[pos..<(pos + n)]), as: UTF8.self)
        pos += n
        return s
    }

    mutating func value(type: UInt32, _ what: String, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try read(UInt8.self, what))
        case 1: return .int8(try read(Int8.self, what))
        case 2: return .uint16(try read(UInt16.self, what))
        case 3: return .int16(try read(Int16.self, what))
        case 4: return .uint32(try read(UInt32.self, what))
        case 5: return .int32(try read(Int32.self, what))
        case 6: return .float32(Float(bitPattern: try read(UInt32.self, what)))
        case 7:
            let b = try read(UInt8.self, what)
            guard b <= 1 else { throw GGUFError.invalid("\(what) has bool value \(b)") }
            return .bool(b == 1)
        case 8: return .string(try string(what))
        case 9:
            guard depth < 2 else { throw GGUFError.invalid("\(what) nests arrays too deeply") }
            let elemType = try read(UInt32.self, "array type of \(what)")
            let n = try read(UInt64.self, "array length of \(what)")
            // Every element takes at least one byte: a count past the remaining bytes is a lie.
            guard n <= UInt64(buf.count - pos) else {
                throw GGUFError.truncated("\(what) claims \(n) elements, more than the file holds")
            }
            var out: [GGUFValue] = []
            out.reserveCapacity(Int(n))
            for _ in 0..<Int(n) { out.append(try value(type: elemType, what, depth: depth + 1)) }
            return .array(out)
        case 10: return .uint64(try read(UInt64.self, what))
        case 11: return .int64(try read(Int64.self, what))
        case 12: return .float64(Double(bitPattern: try read(UInt64.self, what)))
        default: throw GGUFError.invalid("\(what) has unknown value type \(type)")
        }
    }

    mutating func parse() throws -> Parsed {
        let magic = try read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else {  // "GGUF" little-endian
            let bytes = withUnsafeBytes(of: magic.littleEndian) { Array($0) }
            let shown = bytes.allSatisfy { $0 >= 32 && $0 < 127 }
                ? "'" + String(decoding: bytes, as: UTF8.self) + "'"
                : bytes.map { String($0, radix: 16) }.joined(separator: " ")
            throw GGUFError.badMagic(shown)
        }
        let version = try read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(version) }
        let nTensors = try count("tensor count", max: GGUFFile.maxTensors)
        let nKV = try count("metadata count", max: GGUFFile.maxMetadata)

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        for i in 0..<nKV {
            let key = try string("metadata key #\(i)")
            let type = try read(UInt32.self, "type of metadata '\(key)'")
            let v = try value(type: type, "metadata '\(key)'")
            if metadata.updateValue(v, forKey: key) != nil { throw GGUFError.invalid("duplicate metadata key '\(key)'") }
            keys.append(key)
        }
        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.intValue, v > 0, v <= 1 << 16, v & (v - 1) == 0 else {
                throw GGUFError.invalid("general.alignment must be a power of two, got \(a)")
            }
            alignment = v
        }

        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(nTensors)
        var names = Set<String>()
        for i in 0..<nTensors {
            let name = try string("name of tensor #\(i)")
            let nd = try read(UInt32.self, "dimension count of tensor '\(name)'")
            guard nd >= 1, nd <= UInt32(GGUFFile.maxDims) else {
                throw GGUFError.invalid("tensor '\(name)' has \(nd) dimensions (1...\(GGUFFile.maxDims) allowed)")
            }
            var dims: [Int] = []
            var elements: UInt64 = 1
            for d in 0..<Int(nd) {
                let v = try read(UInt64.self, "dimension \(d) of tensor '\(name)'")
                guard v >= 1, v <= 1 << 40 else { throw GGUFError.invalid("tensor '\(name)' has dimension \(v)") }
                let (m, overflow) = elements.multipliedReportingOverflow(by: v)
                guard !overflow, m <= 1 << 40 else { throw GGUFError.invalid("tensor '\(name)' is absurdly large") }
                elements = m
                dims.append(Int(v))
            }
            let rawType = try read(UInt32.self, "type of tensor '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError.unsupportedType("tensor '\(name)' has type id \(rawType), which kvduel does not know")
            }
            guard dims[0] % type.blockSize == 0 else {
                throw GGUFError.invalid("tensor '\(name)' row of \(dims[0]) is not a multiple of \(type) block size \(type.blockSize)")
            }
            let offset = try read(UInt64.self, "offset of tensor '\(name)'")
            guard offset <= UInt64(Int.max / 2), offset % UInt64(alignment) == 0 else {
                throw GGUFError.invalid("tensor '\(name)' has misaligned or absurd offset \(offset)")
            }
            guard names.insert(name).inserted else { throw GGUFError.invalid("duplicate tensor name '\(name)'") }
            tensors.append(GGUFTensorInfo(name: name, dims: dims, type: type, offset: Int(offset)))
        }
        let dataOffset = (pos + alignment - 1) / alignment * alignment
        for t in tensors {
            let end = dataOffset + t.offset + t.byteCount
            guard end <= buf.count else {
                throw GGUFError.truncated("tensor '\(t.name)' ends at byte \(end), but the file has \(buf.count)")
            }
        }
        return Parsed(version: version, metadata: metadata, keys: keys, tensors: tensors,
                      alignment: alignment, dataOffset: dataOffset)
    }
}
