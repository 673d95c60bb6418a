// Cache keys. Every key is derived from the model fingerprint, so KV computed by another model
// (other weights, other shapes, other file) can never match.
//
//   root              = H("kvduel.prefix.root.v1", fingerprint)
//   prefix chunk i    = H("kvduel.prefix.v1", key of chunk i-1 (root for i = 0), tokens of chunk i)
//   segment           = H("kvduel.segment.v1", fingerprint, context or none, segment tokens)
//
// H is `StableHasher` (typed, length-prefixed fields) finalised with `Digest128`. The chain makes a
// prefix chunk key name the whole token prefix up to the end of that chunk, as in vLLM's
// `hash_block_tokens` and LMCache's `ChunkedTokenDatabase`. Unlike LMCache, the last partial chunk
// gets a key too (with its real token count), so prompts shorter than one chunk are reusable.
// A segment key names a token run on its own, wherever it sits: positions are not part of it.

/// Identity of the model whose KV is stored. Build it from whatever pins the weights down:
/// architecture, dimensions, a digest of the tensor table, the file size.
public struct ModelFingerprint: Hashable, Sendable, CustomStringConvertible {
    public let digest: Digest128

    public init(digest: Digest128) {
        self.digest = digest
    }

    /// Fingerprint of an ordered list of strings, e.g. `["llama", "layers=30", "kvDim=192", "size=…"]`.
    public init(components: [String]) {
        var h = StableHasher(domain: "kvduel.fingerprint.v1")
        h.combine(components.count)
        for c in components { h.combine(c) }
        digest = h.finalize()
    }

    /// Fingerprint from typed fields fed to a hasher, e.g. `{ $0.combine("llama"); $0.combine(30) }`.
    public init(_ build: (inout StableHasher) -> Void) {
        var h = StableHasher(domain: "kvduel.fingerprint.v1")
        build(&h)
        digest = h.finalize()
    }

    public var description: String { digest.shortHex }
}

/// The key the stores use. Two keys are equal when kind and digest are; `parent` is metadata
/// (for a prefix chunk it is fixed by the digest anyway) that lets a store list the stored
/// children of a chunk, which is how a partial tail chunk is found again (`TieredStore.matchPrefix`).
public struct CacheKey: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: UInt8, Sendable {
        case prefixChunk = 1
        case segment = 2

        var letter: Character { self == .prefixChunk ? "p" : "s" }
    }

    public let kind: Kind
    public let digest: Digest128
    /// Key of the previous chunk (or the root) for a prefix chunk; `.zero` for a segment.
    public let parent: Digest128
    /// Tokens the entry must hold, when the key knows it (typed keys do; a key rebuilt from a file
    /// name does not). Metadata like `parent`: a tier checks a stored entry's declared token count
    /// against it before reading the body, so a crafted header cannot make it read gigabytes.
    public let tokenCount: Int?

    public init(kind: Kind, digest: Digest128, parent: Digest128 = .zero, tokenCount: Int? = nil) {
        self.kind = kind
        self.digest = digest
        self.parent = kind == .segment ? .zero : parent
        self.tokenCount = tokenCount
    }

    public static func == (a: CacheKey, b: CacheKey) -> Bool {
        a.kind == b.kind && a.digest == b.digest
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind)
        hasher.combine(digest)
    }

    /// e.g. `p:1a2b3c4d5e6f`.
    public var description: String { "\(kind.letter):\(digest.shortHex)" }
}

/// Anything that names a store entry.
public protocol CacheKeyConvertible {
    var cacheKey: CacheKey { get }
}

extension CacheKey: CacheKeyConvertible {
    public var cacheKey: CacheKey { self }
}

/// Key of one chunk of a token prefix: `digest = H(parent, tokens[tokenRange])`.
public struct PrefixChunkKey: Hashable, Sendable, CacheKeyConvertible, CustomStringConvertible {
    public let digest: Digest128
    /// Key of the previous chunk; the root key for the first chunk.
    public let parent: Digest128
    /// Position of this chunk in its chain (0 = first).
    public let index: Int
    /// The tokens this chunk covers in the token array the chain was computed for.
    public let tokenRange: Range<Int>

    public init(digest: Digest128, parent: Digest128, index: Int, tokenRange: Range<Int>) {
        self.digest = digest
        self.parent = parent
        self.index = index
        self.tokenRange = tokenRange
    }

    public var tokenCount: Int { tokenRange.count }
    public var cacheKey: CacheKey { CacheKey(kind: .prefixChunk, digest: digest, parent: parent, tokenCount: tokenCount) }
    public var description: String { "p:\(digest.shortHex)[\(tokenRange.lowerBound)..<\(tokenRange.upperBound)]" }
}

public enum PrefixKeys {
    /// LMCache's default chunk size.
    public static let defaultChunkSize = 256

    /// The parent of the first chunk.
    public static func root(_ fingerprint: ModelFingerprint) -> Digest128 {
        var h = StableHasher(domain: "kvduel.prefix.root.v1")
        h.combine(fingerprint.digest)
        return h.finalize()
    }

    /// Digest of one chunk given its parent key.
    public static func chunkDigest(parent: Digest128, tokens: some Collection<Int32>) -> Digest128 {
        var h = StableHasher(domain: "kvduel.prefix.v1")
        h.combine(parent)
        h.combine(tokens: tokens)
        return h.finalize()
    }

    /// Keys of every chunk of `tokens`, `chunkSize` tokens each, the last one possibly shorter.
    /// Empty for an empty array. A `chunkSize` below 1 is treated as 1.
    public static func chain(tokens: [Int32], fingerprint: ModelFingerprint,
                             chunkSize: Int = defaultChunkSize) -> [PrefixChunkKey] {
        chain(tokens: tokens, root: root(fingerprint), chunkSize: chunkSize)
    }

    /// As `chain(tokens:fingerprint:chunkSize:)`, from a precomputed root.
    public static func chain(tokens: [Int32], root: Digest128,
                             chunkSize: Int = defaultChunkSize) -> [PrefixChunkKey] {
        let size = max(1, chunkSize)
        var keys: [PrefixChunkKey] = []
        keys.reserveCapacity((tokens.count + size - 1) / size)
        var parent = root
        var start = 0
        while start < tokens.count {
            let end = min(start + size, tokens.count)
            let d = chunkDigest(parent: parent, tokens: tokens[start..<end])
            keys.append(PrefixChunkKey(digest: d, parent: parent, index: keys.count, tokenRange: start..<end))
            parent = d
            start = end
        }
        return keys
    }
}

/// Key of a token run stored on its own (a document, the system prompt), independent of where it
/// sits in a prompt. `context` optionally pins what the segment's KV was computed after, e.g. the
/// digest of the system prompt (`SegmentKey.context(tokens:)`), for a store that keeps
/// "document as seen after system prompt S" apart from "document alone".
public struct SegmentKey: Hashable, Sendable, CacheKeyConvertible, CustomStringConvertible {
    public let digest: Digest128
    public let tokenCount: Int
    public let context: Digest128?

    public init(fingerprint: ModelFingerprint, tokens: some Collection<Int32>, context: Digest128? = nil) {
        var h = StableHasher(domain: "kvduel.segment.v1")
        h.combine(fingerprint.digest)
        if let context {
            h.combine(UInt64(1))
            h.combine(context)
        } else {
            h.combine(UInt64(0))
        }
        h.combine(tokens: tokens)
        digest = h.finalize()
        tokenCount = tokens.count
        self.context = context
    }

    /// A context digest for a token run (e.g. the system prompt a segment was computed after).
    public static func context(tokens: some Collection<Int32>) -> Digest128 {
        var h = StableHasher(domain: "kvduel.segment.context.v1")
        h.combine(tokens: tokens)
        return h.finalize()
    }

    public var cacheKey: CacheKey { CacheKey(kind: .segment, digest: digest, tokenCount: tokenCount) }
    public var description: String { "s:\(digest.shortHex)(\(tokenCount))" }
}
