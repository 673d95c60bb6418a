import Foundation
import GGUF

/// A loaded model: config, weights and identity. Immutable and shared by all engines.
public final class LlamaModel: @unchecked Sendable {
    public let file: GGUFFile
    public let config: LlamaConfig
    public let weights: LlamaWeights
    /// Identifies these exact weights: architecture, shapes, tensor layout and sampled tensor bytes.
    /// Cache keys include it, so KV from another model or file never matches.
    public let fingerprint: String

    public init(path: String, progress: ((Double) -> Void)? = nil) throws {
        let file = try GGUFFile(path: path)
        self.file = file
        config = try LlamaConfig(gguf: file)
        weights = try LlamaWeights(file: file, config: config, progress: progress)
        fingerprint = Self.fingerprint(of: file, config: config)
    }

    public var fileSize: Int { file.fileSize }
    public var parameterCount: Int { file.tensors.reduce(0) { $0 + $1.elementCount } }

    static func fingerprint(of file: GGUFFile, config: LlamaConfig) -> String {
        var h = FNV64()
        h.add("\(config.architecture)|\(config.layers)|\(config.dim)|\(config.heads)|\(config.kvHeads)|\(config.ffnDim)|\(config.vocabSize)|\(config.ropeBase)|\(file.fileSize)")
        for t in file.tensors {
            h.add("\(t.name)|\(t.type.rawValue)|\(t.dims)|\(t.offset)")
            // Sample the tensor's bytes at its start, middle and end.
            let d = file.data(of: t)
            for start in [0, d.count / 2, max(0, d.count - 64)] {
                h.add(bytes: UnsafeRawBufferPointer(rebasing: d[start..<min(d.count, start + 64)]))
            }
        }
        return "\(config.architecture)-\(config.layers)x\(config.dim)-" + String(h.value, radix: 16)
    }
}

struct FNV64 {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(bytes: UnsafeRawBufferPointer) {
        for b in bytes { value = (value ^ UInt64(b)) &* 0x100_0000_01b3 }
    }
    mutating func add(_ s: String) {
        var s = s
        s.withUTF8 { add(bytes: UnsafeRawBufferPointer($0)) }
        value = value &* 0x100_0000_01b3   // a zero byte ends each string: ("ab","c") ≠ ("a","bc")
    }
}
