import Foundation
import GGUF

/// A loaded model: config, weights and identity. Immutable and shared by all engines.
public final class LlamaModel: @unchecked Sendable {
    public let file: GGUFFile
    public let config: LlamaConfig
    public let weights: LlamaWeights
    /// Identifies these exact numbers: a SHA-256 of the whole file combined with the kernel path
    /// and a format version (`ModelIdentity`). Cache keys include it, so KV from another model,
    /// another file (one changed byte is enough) or other kernels never matches.
    public let fingerprint: String
    public let identity: ModelIdentity

    /// Loads the file. `identityMemoDirectory` (the kvduel cache directory) remembers the file's
    /// digest so the next load of the unchanged file skips hashing; nil hashes every time.
    /// `progress` gets the weights' loaded fraction, `fingerprintProgress` the hashed fraction.
    public init(path: String, identityMemoDirectory: String? = nil, progress: ((Double) -> Void)? = nil,
                fingerprintProgress: ((Double) -> Void)? = nil) throws {
        let file = try GGUFFile(path: path)
        self.file = file
        config = try LlamaConfig(gguf: file)
        weights = try LlamaWeights(file: file, config: config, progress: progress)
        identity = try ModelIdentity.of(path: path, memoDirectory: identityMemoDirectory, progress: fingerprintProgress)
        fingerprint = "\(config.architecture)-\(config.layers)x\(config.dim)-" + identity.digest.prefix(32)
    }

    public var fileSize: Int { file.fileSize }
    public var parameterCount: Int { file.tensors.reduce(0) { $0 + $1.elementCount } }
}
