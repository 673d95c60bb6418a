import CKernels
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
///
/// **K and V are held as IEEE half precision (f16)**, as llama.cpp's default cache type: attention
/// reads half the bytes, which is what long-context decode spends its time on. The API speaks
/// float32 and converts at the boundary (`kv_f32_to_f16`, round to nearest even; back exactly), so
/// a value read and written back is unchanged, and every forward pass (prefill or decode) reads the
/// same rounded K/V from here.
public final class KVState: @unchecked Sendable {
    public let config: LlamaConfig
    public private(set) var count = 0
    public private(set) var capacity = 0
    public private(set) var positions: [Int32] = []
    public private(set) var tokens: [Int32] = []
    // Per layer, one plane per K/V head: [kvHeads][capacity][headDim]. A head's keys (and values)
    // for consecutive slots are contiguous, so attention streams them without striding over the
    // other heads. The API below speaks in rows of kvDim = kvHeads·headDim values per slot.
    private var k: [UnsafeMutablePointer<UInt16>] = []
    private var v: [UnsafeMutablePointer<UInt16>] = []
    /// One anonymous mapping holds every plane: K of each layer, then V of each layer.
    private var mapping: (base: UnsafeMutableRawPointer, bytes: Int)?

    public init(config: LlamaConfig, capacity: Int = 256) {
        self.config = config
        reserve(capacity)
    }

    deinit { if let m = mapping { munmap(m.base, m.bytes) } }

    public var kvDim: Int { config.kvDim }
    /// Bytes of K and V held for the occupied slots (f16).
    public var bytes: Int { count * config.kvBytesPerTokenF16 }

    /// K/V head `head` of a layer: `[capacity, headDim]` f16 bit patterns, slot `i` at
    /// `i * headDim`. Valid until the next call that changes the capacity.
    public func keys(layer: Int, head: Int) -> UnsafeMutablePointer<UInt16> { k[layer] + head * capacity * config.headDim }
    public func values(layer: Int, head: Int) -> UnsafeMutablePointer<UInt16> { v[layer] + head * capacity * config.headDim }

    public func reserve(_ n: Int) {
        guard n > capacity else { return }
        let newCap = max(n, capacity * 2, 16)
        let dh = config.headDim, heads = config.kvHeads, layers = config.layers, oldCap = capacity
        let plane = heads * newCap * dh          // UInt16s per layer, for K or for V
        // Fresh anonymous pages read as zero (+0.0: a slot claimed but not yet computed must never
        // hold NaN bit patterns; masked attention weights are 0, and 0 · NaN is NaN), and the
        // kernel zeroes each page when it is first written. So claiming room for a long prompt
        // costs nothing up front (Cake's I/O side starts at once); the rows written pay for
        // their pages. (calloc would memset again once the allocator reuses a freed block.)
        let bytes = 2 * layers * plane * MemoryLayout<UInt16>.stride
        let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let raw, Int(bitPattern: raw) != -1 else {   // MAP_FAILED
            fatalError("KVState: cannot map \(bytes) bytes for \(newCap) slots")
        }
        let base = raw.assumingMemoryBound(to: UInt16.self)
        let newK = (0..<layers).map { base + $0 * plane }
        let newV = (0..<layers).map { base + (layers + $0) * plane }
        for l in 0..<layers where !k.isEmpty {
            for h in 0..<heads {
                (newK[l] + h * newCap * dh).update(from: k[l] + h * oldCap * dh, count: count * dh)
                (newV[l] + h * newCap * dh).update(from: v[l] + h * oldCap * dh, count: count * dh)
            }
        }
        if let m = mapping { munmap(m.base, m.bytes) }
        mapping = (raw, bytes)
        k = newK
        v = newV
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
        let dh = config.headDim, tail = count - range.upperBound
        for l in 0..<config.layers {
            for h in 0..<config.kvHeads {
                let kh = keys(layer: l, head: h), vh = values(layer: l, head: h)
                (kh + range.lowerBound * dh).update(from: kh + range.upperBound * dh, count: tail * dh)
                (vh + range.lowerBound * dh).update(from: vh + range.upperBound * dh, count: tail * dh)
            }
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
        let dh = config.headDim
        let dst = append(tokens: Array(other.tokens[slots]), positions: Array(other.positions[slots]))
        for l in 0..<config.layers {
            for h in 0..<config.kvHeads {
                (keys(layer: l, head: h) + dst.lowerBound * dh).update(from: other.keys(layer: l, head: h) + slots.lowerBound * dh, count: slots.count * dh)
                (values(layer: l, head: h) + dst.lowerBound * dh).update(from: other.values(layer: l, head: h) + slots.lowerBound * dh, count: slots.count * dh)
            }
        }
    }

    /// Reads K and V of `slots` in one layer, as [slots.count, kvDim] floats each (exact: every
    /// f16 value is a float).
    public func read(layer: Int, slots: Range<Int>) -> (k: [Float], v: [Float]) {
        precondition(slots.lowerBound >= 0 && slots.upperBound <= count)
        let dh = config.headDim, d = kvDim, n = slots.count
        var kOut = [Float](repeating: 0, count: n * d), vOut = kOut
        kOut.withUnsafeMutableBufferPointer { kb in
            vOut.withUnsafeMutableBufferPointer { vb in
                for h in 0..<config.kvHeads {
                    let kh = keys(layer: layer, head: h), vh = values(layer: layer, head: h)
                    for (i, s) in slots.enumerated() {
                        kv_f16_to_f32(kh + s * dh, kb.baseAddress! + i * d + h * dh, dh)
                        kv_f16_to_f32(vh + s * dh, vb.baseAddress! + i * d + h * dh, dh)
                    }
                }
            }
        }
        return (kOut, vOut)
    }

    /// Writes K and V ([n, kvDim] floats each) into slots starting at `slot` in one layer, rounded
    /// to f16 (to nearest even). Values read from a cache come back unchanged.
    public func write(layer: Int, slot: Int, k newK: UnsafePointer<Float>, v newV: UnsafePointer<Float>, count n: Int) {
        precondition(slot >= 0 && slot + n <= count)
        let dh = config.headDim, stride = kvDim
        for h in 0..<config.kvHeads {
            let kh = keys(layer: layer, head: h), vh = values(layer: layer, head: h)
            for i in 0..<n {
                kv_f32_to_f16(newK + i * stride + h * dh, kh + (slot + i) * dh, dh)
                kv_f32_to_f16(newV + i * stride + h * dh, vh + (slot + i) * dh, dh)
            }
        }
    }

    /// Σ over K and V of (new − held)² for one slot of one layer: how far freshly computed K/V
    /// (rows of kvDim floats, before rounding to f16) deviate from what the slot holds.
    public func squaredDeviation(layer: Int, slot: Int, k newK: UnsafePointer<Float>, v newV: UnsafePointer<Float>) -> Float {
        let dh = config.headDim
        var d: Float = 0
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * dh) { t in
            let kh = t.baseAddress!, vh = t.baseAddress! + dh
            for h in 0..<config.kvHeads {
                kv_f16_to_f32(keys(layer: layer, head: h) + slot * dh, kh, dh)
                kv_f16_to_f32(values(layer: layer, head: h) + slot * dh, vh, dh)
                for i in 0..<dh {
                    let dk = newK[h * dh + i] - kh[i], dv = newV[h * dh + i] - vh[i]
                    d += dk * dk + dv * dv
                }
            }
        }
        return d
    }

    /// Moves the slots in `range` by `delta` positions: their keys are re-rotated with RoPE by
    /// the delta angle (the model's own RoPE: its pairing, NEOX or normal, its frequency factors
    /// and scaling) and their positions updated. Values carry no position and are unchanged.
    /// Each key is rotated in float and rounded back to f16.
    public func shift(_ range: Range<Int>, by delta: Int32) {
        guard delta != 0, !range.isEmpty else { return }
        let rope = RoPE(config: config)
        let table = rope.table(positions: [delta])
        let dh = config.headDim
        withUnsafeTemporaryAllocation(of: Float.self, capacity: dh) { t in
            let x = t.baseAddress!
            for l in 0..<config.layers {
                for h in 0..<config.kvHeads {
                    let kh = keys(layer: l, head: h)
                    for s in range {
                        kv_f16_to_f32(kh + s * dh, x, dh)
                        rope.apply(x, heads: 1, cos: table.cos, sin: table.sin)
                        kv_f32_to_f16(x, kh + s * dh, dh)
                    }
                }
            }
        }
        for s in range { positions[s] += delta }
    }
}

/// Rotary position embedding, llama.cpp's "normal" mode (adjacent pairs) or NEOX (half split).
///
/// Pair i turns by the angle p · θᵢ with θᵢ = s · base^(−2i/ropeDim) / fᵢ, where fᵢ are Llama 3.x's
/// frequency factors (`rope_freqs.weight`, 1 without) and s the linear scaling (1 without).
/// Angles are linear in p, so R(q) = R(q − p)·R(p): the same θᵢ serve the forward pass and the
/// delta re-rotation of stored keys (`KVState.shift`).
struct RoPE {
    let headDim: Int
    let ropeDim: Int
    let neox: Bool
    let invFreq: [Double]   // θ, [ropeDim / 2]

    init(config: LlamaConfig) {
        headDim = config.headDim
        ropeDim = config.ropeDim
        neox = config.ropeNeox
        var theta = (0..<(config.ropeDim / 2)).map { i in
            pow(Double(config.ropeBase), -2 * Double(i) / Double(config.ropeDim))
        }
        // Only files that ask for it change θ (a model without factors keeps bitwise its angles).
        if let f = config.ropeFreqFactors {
            precondition(f.count == theta.count)
            for i in theta.indices { theta[i] /= Double(f[i]) }
        }
        if config.ropeFreqScale != 1 {
            for i in theta.indices { theta[i] *= Double(config.ropeFreqScale) }
        }
        invFreq = theta
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
    /// Pair i is (2i, 2i+1) in normal mode and (i, i + ropeDim/2) in NEOX mode.
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
