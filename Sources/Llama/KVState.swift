import Foundation

/// The KV cache of one sequence, explicit per layer and per slot.
///
/// Slots `0..<count` are occupied. Slot `i` holds the K and V of `tokens[i]` computed at
/// position `positions[i]`. Attention masks by position (a query at position p sees every slot
/// whose position is ≤ p), so slots may hold any positions: the reuse engine composes caches
/// out of pieces and moves them.
///
/// **K is stored after RoPE.** Attention reads it as is, which keeps decode cheap, and moving a
/// run of keys from position p to q is one delta rotation R(q − p) (rotations compose:
/// R(q) = R(q − p)·R(p)), which `shift(_:by:)` applies. Storing K before RoPE would make moving
/// free but would cost a rotation of every cached key at every step.
public final class KVState: @unchecked Sendable {
    public let config: LlamaConfig
    public private(set) var count = 0
    public private(set) var capacity = 0
    public private(set) var positions: [Int32] = []
    public private(set) var tokens: [Int32] = []
    private var k: [UnsafeMutablePointer<Float>] = []   // per layer: [capacity, kvDim]
    private var v: [UnsafeMutablePointer<Float>] = []   // per layer: [capacity, kvDim]

    public init(config: LlamaConfig, capacity: Int = 256) {
        self.config = config
        reserve(capacity)
    }

    deinit { for p in k + v { p.deallocate() } }

    public var kvDim: Int { config.kvDim }
    /// Bytes of K and V held for the occupied slots (float32).
    public var bytes: Int { count * config.kvBytesPerTokenF32 }

    public func keys(layer: Int) -> UnsafeMutablePointer<Float> { k[layer] }
    public func values(layer: Int) -> UnsafeMutablePointer<Float> { v[layer] }

    public func reserve(_ n: Int) {
        guard n > capacity else { return }
        let newCap = max(n, capacity * 2, 16)
        let d = kvDim
        func grow(_ old: [UnsafeMutablePointer<Float>]) -> [UnsafeMutablePointer<Float>] {
            (0..<config.layers).map { l in
                let p = UnsafeMutablePointer<Float>.allocate(capacity: newCap * d)
                // Zeroed: a slot claimed but not yet computed must never hold NaN bit patterns
                // (masked attention weights are 0, and 0 · NaN is NaN).
                p.initialize(repeating: 0, count: newCap * d)
                if l < old.count { p.update(from: old[l], count: count * d); old[l].deallocate() }
                return p
            }
        }
        k = grow(k)
        v = grow(v)
        capacity = newCap
    }

    /// Claims `tokens.count` new slots at the end; their K/V are written by the next forward pass
    /// (or by `write`). Returns the slot range.
    @discardableResult
    public func append(tokens newTokens: [Int32], positions newPositions: [Int32]) -> Range<Int> {
        precondition(newTokens.count == newPositions.count)
        reserve(count + newTokens.count)
        let r = count..<(count + newTokens.count)
        tokens += newTokens
        positions += newPositions
        count += newTokens.count
        return r
    }

    /// Relabels an occupied slot (used when a forward pass overwrites it).
    public func setSlot(_ i: Int, token: Int32, position: Int32) {
        precondition(i < count)
        tokens[i] = token
        positions[i] = position
    }

    /// Drops slots in `range`; later slots move down and keep their positions.
    public func remove(_ range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        guard !range.isEmpty else { return }
        let d = kvDim, tail = count - range.upperBound
        for l in 0..<config.layers {
            (k[l] + range.lowerBound * d).update(from: k[l] + range.upperBound * d, count: tail * d)
            (v[l] + range.lowerBound * d).update(from: v[l] + range.upperBound * d, count: tail * d)
        }
        tokens.removeSubrange(range)
        positions.removeSubrange(range)
        count -= range.count
    }

    public func truncate(to n: Int) { if n < count { remove(n..<count) } }
    public func clear() { truncate(to: 0) }

    public func copy() -> KVState {
        let c = KVState(config: config, capacity: max(count, 16))
        c.copy(from: self, slots: 0..<count)
        return c
    }

    /// Appends slots `slots` of `other` (K, V, tokens, positions) to this cache.
    public func copy(from other: KVState, slots: Range<Int>) {
        let d = kvDim
        let dst = append(tokens: Array(other.tokens[slots]), positions: Array(other.positions[slots]))
        for l in 0..<config.layers {
            (k[l] + dst.lowerBound * d).update(from: other.k[l] + slots.lowerBound * d, count: slots.count * d)
            (v[l] + dst.lowerBound * d).update(from: other.v[l] + slots.lowerBound * d, count: slots.count * d)
        }
    }

    /// Reads K and V of `slots` in one layer, as [slots.count, kvDim] each.
    public func read(layer: Int, slots: Range<Int>) -> (k: [Float], v: [Float]) {
        let d = kvDim
        return (Array(UnsafeBufferPointer(start: k[layer] + slots.lowerBound * d, count: slots.count * d)),
                Array(UnsafeBufferPointer(start: v[layer] + slots.lowerBound * d, count: slots.count * d)))
    }

    /// Writes K and V ([n, kvDim] each) into slots starting at `slot` in one layer.
    public func write(layer: Int, slot: Int, k newK: UnsafePointer<Float>, v newV: UnsafePointer<Float>, count n: Int) {
        precondition(slot >= 0 && slot + n <= count)
        let d = kvDim
        (k[layer] + slot * d).update(from: newK, count: n * d)
        (v[layer] + slot * d).update(from: newV, count: n * d)
    }

    /// Moves the slots in `range` by `delta` positions: their keys are re-rotated with RoPE by
    /// the delta angle and their positions updated. Values carry no position and are unchanged.
    public func shift(_ range: Range<Int>, by delta: Int32) {
        guard delta != 0, !range.isEmpty else { return }
        let rope = RoPE(config: config)
        let table = rope.table(positions: [delta])
        for l in 0..<config.layers {
            for s in range {
                rope.apply(k[l] + s * kvDim, heads: config.kvHeads, cos: table.cos, sin: table.sin)
            }
        }
        for s in range { positions[s] += delta }
    }
}

/// Rotary position embedding, llama.cpp's "normal" mode (adjacent pairs) or NEOX (half split).
struct RoPE {
    let headDim: Int
    let ropeDim: Int
    let neox: Bool
    let invFreq: [Double]   // [ropeDim / 2]

    init(config: LlamaConfig) {
        headDim = config.headDim
        ropeDim = config.ropeDim
        neox = config.ropeNeox
        invFreq = (0..<(config.ropeDim / 2)).map { i in
            pow(Double(config.ropeBase), -2 * Double(i) / Double(config.ropeDim))
        }
    }

    /// cos/sin of position × frequency, [positions.count, ropeDim / 2] each.
    func table(positions: [Int32]) -> (cos: [Float], sin: [Float]) {
        let h = ropeDim / 2
        var c = [Float](repeating: 0, count: positions.count * h)
        var s = c
        for (t, p) in positions.enumerated() {
            for i in 0..<h {
                let a = Double(p) * invFreq[i]
                c[t * h + i] = Float(Foundation.cos(a))
                s[t * h + i] = Float(Foundation.sin(a))
            }
        }
        return (c, s)
    }

    /// Rotates `heads` consecutive head vectors at `x` by the angles in the given table row.
    @inline(__always)
    func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let h = ropeDim / 2
        for head in 0..<heads {
            let p = x + head * headDim
            for i in 0..<h {
                let (a, b) = neox ? (i, i + h) : (2 * i, 2 * i + 1)
                let x0 = p[a], x1 = p[b]
                p[a] = x0 * cos[i] - x1 * sin[i]
                p[b] = x0 * sin[i] + x1 * cos[i]
            }
        }
    }

    func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, table: (cos: [Float], sin: [Float]), row: Int) {
        let h = ropeDim / 2
        table.cos.withUnsafeBufferPointer { c in
            table.sin.withUnsafeBufferPointer { s in
                apply(x, heads: heads, cos: c.baseAddress! + row * h, sin: s.baseAddress! + row * h)
            }
        }
    }
}
