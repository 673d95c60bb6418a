/// KV for `tokenCount` consecutive tokens, all layers, as f32.
///
/// Layout: `k[(layer * tokenCount + token) * kvDim + i]`, `v` likewise. `positions[token]` is the
/// position that token's K was rotated (RoPE) at.
public struct KVBlock: Sendable, Equatable {
    public var layers: Int
    public var tokenCount: Int
    public var kvDim: Int
    public var positions: [Int32]
    public var k: [Float]
    public var v: [Float]

    public init(layers: Int, tokenCount: Int, kvDim: Int, positions: [Int32], k: [Float], v: [Float]) {
        self.layers = layers
        self.tokenCount = tokenCount
        self.kvDim = kvDim
        self.positions = positions
        self.k = k
        self.v = v
        if !isWellFormed {
            fatalError("KVBlock: \(layers)x\(tokenCount)x\(kvDim) needs \(tokenCount) positions and "
                + "\(layers * tokenCount * kvDim) floats per component; got \(positions.count), \(k.count), \(v.count)")
        }
    }

    /// A block of zeros, positions `firstPosition...`.
    public static func zeros(layers: Int, tokenCount: Int, kvDim: Int, firstPosition: Int32 = 0) -> KVBlock {
        let n = layers * tokenCount * kvDim
        return KVBlock(layers: layers, tokenCount: tokenCount, kvDim: kvDim,
                       positions: (0..<tokenCount).map { firstPosition + Int32($0) },
                       k: [Float](repeating: 0, count: n), v: [Float](repeating: 0, count: n))
    }

    /// Floats in `k` (and in `v`).
    public var floatsPerComponent: Int { layers * tokenCount * kvDim }

    /// Whether the array sizes agree with the shape. The public fields can be edited freely;
    /// encoders and stores check this before touching memory.
    public var isWellFormed: Bool {
        guard layers > 0, tokenCount > 0, kvDim > 0 else { return false }
        let (n, o1) = layers.multipliedReportingOverflow(by: tokenCount)
        let (m, o2) = n.multipliedReportingOverflow(by: kvDim)
        return !o1 && !o2 && positions.count == tokenCount && k.count == m && v.count == m
    }

    /// Index of element 0 of `token`'s row in `layer`, in `k` or `v`.
    @inline(__always)
    public func offset(layer: Int, token: Int) -> Int { (layer * tokenCount + token) * kvDim }

    /// The tokens in `tokens` (a sub-range of `0..<tokenCount`), all layers.
    public func slice(tokens r: Range<Int>) -> KVBlock {
        guard r.lowerBound >= 0, r.upperBound <= tokenCount, !r.isEmpty else {
            fatalError("KVBlock.slice: \(r) outside 0..<\(tokenCount) or empty")
        }
        if r == 0..<tokenCount { return self }
        let n = layers * r.count * kvDim
        var nk: [Float] = []
        var nv: [Float] = []
        nk.reserveCapacity(n)
        nv.reserveCapacity(n)
        for l in 0..<layers {
            let a = offset(layer: l, token: r.lowerBound)
            let b = offset(layer: l, token: r.upperBound)
            nk.append(contentsOf: k[a..<b])
            nv.append(contentsOf: v[a..<b])
        }
        return KVBlock(layers: layers, tokenCount: r.count, kvDim: kvDim,
                       positions: Array(positions[r]), k: nk, v: nv)
    }

    /// The blocks one after the other along the token axis; nil when empty or the shapes differ.
    public static func concatenate(_ blocks: [KVBlock]) -> KVBlock? {
        guard let first = blocks.first else { return nil }
        if blocks.count == 1 { return first }
        let layers = first.layers, kvDim = first.kvDim
        guard blocks.allSatisfy({ $0.layers == layers && $0.kvDim == kvDim }) else { return nil }
        let tokens = blocks.reduce(0) { $0 + $1.tokenCount }
        let n = layers * tokens * kvDim
        var nk: [Float] = []
        var nv: [Float] = []
        var pos: [Int32] = []
        nk.reserveCapacity(n)
        nv.reserveCapacity(n)
        pos.reserveCapacity(tokens)
        for l in 0..<layers {
            for b in blocks {
                let a = b.offset(layer: l, token: 0)
                let e = b.offset(layer: l, token: b.tokenCount)
                nk.append(contentsOf: b.k[a..<e])
                nv.append(contentsOf: b.v[a..<e])
            }
        }
        for b in blocks { pos.append(contentsOf: b.positions) }
        return KVBlock(layers: layers, tokenCount: tokens, kvDim: kvDim, positions: pos, k: nk, v: nv)
    }
}
