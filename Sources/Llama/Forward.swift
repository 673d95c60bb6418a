import CBLAS
import Foundation

/// Runs the model for one engine: holds its thread budget. The model (weights) is shared.
public final class LlamaContext: @unchecked Sendable {
    public let model: LlamaModel
    public var threads: Int
    public var config: LlamaConfig { model.config }

    private let scratch = Scratch()
    private var poolStorage: WorkerPool?
    /// Worker threads for `threads`, made on first use and remade when `threads` changes.
    private var pool: WorkerPool {
        if let p = poolStorage, p.threads == threads { return p }
        poolStorage = WorkerPool(threads: threads)
        return poolStorage!
    }

    public init(model: LlamaModel, threads: Int) {
        self.model = model
        self.threads = max(1, threads)
        // BLAS stays single-threaded; we split each product across our own workers.
        kvduel_blas_set_threads(1)
    }

    public enum LogitRows: Sendable { case none, last, all }

    /// How one-token batches are computed. `.automatic` runs a single token through the decode
    /// path (matrix-vector over the quantised blocks); `.batched` always uses the prefill path (float32
    /// sgemm), so a prompt token gets the same numbers however the prompt was split.
    public enum Path: Sendable { case automatic, batched }

    /// CacheBlend's selective recompute, folded into one forward pass.
    ///
    /// Some rows of the batch are *candidates*: tokens whose K/V were loaded from the store and
    /// re-positioned, already sitting in their cache slots. Every row runs through the layers up to
    /// and including the last check layer; at each check layer, before a candidate's fresh K/V
    /// overwrite its loaded K/V, their squared deviation is added to the candidate's score. After the
    /// last check layer only the fresh rows, the `keep` highest-scoring candidates and the
    /// `alwaysKeep` rows go on; the other candidates keep their loaded K/V in the later layers.
    public struct BlendPlan: Sendable {
        public var candidates: [Int]        // batch rows whose K/V were loaded
        public var checkLayers: [Int]       // e.g. [1, 2, 3]
        public var keep: Int                // candidates to recompute in every layer
        public var alwaysKeep: Set<Int>     // candidate rows recomputed regardless (segment starts)
        public init(candidates: [Int], checkLayers: [Int], keep: Int, alwaysKeep: Set<Int> = []) {
            self.candidates = candidates
            self.checkLayers = checkLayers
            self.keep = keep
            self.alwaysKeep = alwaysKeep
        }
    }

    /// The transformer over a batch of tokens.
    ///
    /// `tokens[t]` sits at `positions[t]`. Its K/V go into `cache` at `slots[t]` (existing slots
    /// are overwritten and relabelled), or at new slots appended to the cache when `slots` is nil.
    /// Each query attends to every cache slot whose position is ≤ its own.
    /// Returns logits [rows, V] for the rows asked for (with a blend plan, `.all` means the rows
    /// that ran to the end, in batch order).
    @discardableResult
    public func forward(tokens: [Int32], positions: [Int32], cache: KVState, slots: [Int]? = nil,
                        logits: LogitRows = .last, path: Path = .automatic, blend: BlendPlan? = nil,
                        recomputed: UnsafeMutablePointer<[Int]>? = nil) -> [Float] {
        let c = config, w = model.weights
        var T = tokens.count
        precondition(T > 0 && positions.count == T)
        let D = c.dim, KV = c.kvDim, F = c.ffnDim

        // Slots this batch writes.
        var slotIndex: [Int]
        if let slots {
            precondition(slots.count == T)
            for t in 0..<T { cache.setSlot(slots[t], token: tokens[t], position: positions[t]) }
            slotIndex = slots
        } else {
            slotIndex = Array(cache.append(tokens: tokens, positions: positions))
        }

        let buf = scratch.claim(T: T, config: c)
        let pool = self.pool
        // q, k, v are column blocks of one [T, QKV] matrix; gate and up of one [T, 2F] matrix.
        let QKV = D + 2 * KV, F2 = 2 * F
        let x = buf.x, xn = buf.xn, q = buf.qkv, k = buf.qkv + D, v = buf.qkv + D + KV
        let att = buf.att, tmp = buf.tmp, gate = buf.gu, up = buf.gu + F   // [T,D] [T,D] [T,2F]

        let rope = RoPE(config: c)
        var pos = positions
        var table = rope.table(positions: pos)                          // [T, ropeDim/2]
        for t in 0..<T { w.embed(tokens[t], into: x + t * D) }

        // Blend bookkeeping: which batch row each current row came from, and candidate scores.
        var rowOrigin = Array(0..<T)
        var deviation = [Float](repeating: 0, count: T)
        let isCandidate: [Bool] = {
            var m = [Bool](repeating: false, count: T)
            for r in blend?.candidates ?? [] { m[r] = true }
            return m
        }()
        let lastCheck = blend?.checkLayers.max() ?? -1
        // Until the rows are narrowed (which needs a check layer before the last layer), every
        // candidate is recomputed, and reported so.
        recomputed?.pointee = blend?.candidates ?? []

        let decode = path == .automatic
        for l in 0..<c.layers {
            let L = w.layers[l]
            // ---- attention block ----
            for t in 0..<T { Kernels.rmsnorm(x + t * D, L.attnNorm, xn + t * D, dim: D, eps: c.normEps) }
            if T == 1 && decode {
                gemvMany(xn, dim: D, [(L.qq, q), (L.qk, k), (L.qv, v)])
            } else {
                Kernels.matmul(xn, rows: T, L.wqkv, buf.qkv, pool: pool)
            }
            let checking = blend?.checkLayers.contains(l) ?? false
            let Kc = cache.keys(layer: l), Vc = cache.values(layer: l)
            for t in 0..<T {
                rope.apply(q + t * QKV, heads: c.heads, table: table, row: t)
                rope.apply(k + t * QKV, heads: c.kvHeads, table: table, row: t)
                if checking && isCandidate[rowOrigin[t]] {
                    // Deviation of the fresh K/V from the loaded K/V still in the slot.
                    let s = slotIndex[t]
                    var d: Float = 0
                    for i in 0..<KV {
                        let dk = k[t * QKV + i] - Kc[s * KV + i], dv = v[t * QKV + i] - Vc[s * KV + i]
                        d += dk * dk + dv * dv
                    }
                    deviation[rowOrigin[t]] += d
                }
                // K (rotated) and V into the cache.
                cache.write(layer: l, slot: slotIndex[t], k: k + t * QKV, v: v + t * QKV, count: 1)
            }
            attention(q: q, ldq: QKV, positions: pos, cache: cache, layer: l, out: att)
            if T == 1 && decode { gemvMany(att, dim: D, [(L.qo, tmp)]) } else { Kernels.matmul(att, rows: T, L.wo, tmp, pool: pool) }
            for i in 0..<(T * D) { x[i] += tmp[i] }

            // ---- feed-forward block (SwiGLU) ----
            for t in 0..<T { Kernels.rmsnorm(x + t * D, L.ffnNorm, xn + t * D, dim: D, eps: c.normEps) }
            if T == 1 && decode {
                gemvMany(xn, dim: D, [(L.qGate, gate), (L.qUp, up)])
            } else {
                Kernels.matmul(xn, rows: T, L.wGateUp, buf.gu, pool: pool)
            }
            // gate = silu(gate) · up, row by row
            if T == 1 { Kernels.siluMul(gate, up, F) } else {
                parallelRanges(T, pool: pool) { rows in
                    for t in rows { Kernels.siluMul(gate + t * F2, up + t * F2, F) }
                }
            }
            if T == 1 && decode { gemvMany(gate, dim: F, [(L.qDown, tmp)]) } else { Kernels.matmul(gate, rows: T, lda: F2, L.wDown, tmp, pool: pool) }
            for i in 0..<(T * D) { x[i] += tmp[i] }

            // ---- CacheBlend: after the last check layer, keep only the rows worth recomputing ----
            if let plan = blend, l == lastCheck, l < c.layers - 1 {
                let ranked = plan.candidates.sorted { deviation[$0] > deviation[$1] }
                var keepRow = [Bool](repeating: false, count: T)
                for r in ranked.prefix(max(0, plan.keep)) { keepRow[r] = true }
                for r in plan.alwaysKeep { keepRow[r] = true }
                for r in 0..<T where !isCandidate[r] { keepRow[r] = true }
                let kept = (0..<T).filter { keepRow[$0] }
                recomputed?.pointee = kept.filter { isCandidate[$0] }
                // Compact the surviving rows to the front (kept is increasing, so in place is safe).
                for (i, r) in kept.enumerated() where i != r {
                    (x + i * D).update(from: x + r * D, count: D)
                }
                rowOrigin = kept
                slotIndex = kept.map { slotIndex[$0] }
                pos = kept.map { positions[$0] }
                table = rope.table(positions: pos)
                T = kept.count
            }
        }

        // ---- output head: logits for the rows asked for ----
        let rows: [Int]
        switch logits {
        case .none: return []
        case .last: rows = [T - 1]
        case .all: rows = Array(0..<T)
        }
        let V = c.vocabSize
        return [Float](unsafeUninitializedCapacity: rows.count * V) { out, n in
            for (i, t) in rows.enumerated() {
                Kernels.rmsnorm(x + t * D, w.outputNorm, xn, dim: D, eps: c.normEps)
                gemvMany(xn, dim: D, [(w.output, out.baseAddress! + i * V)])
            }
            n = rows.count * V
        }
    }

    // MARK: - pieces

    /// Decode: several matrix-vector products over one activation in one
    /// parallel region (their rows split evenly across the workers).
    private func gemvMany(_ x: UnsafePointer<Float>, dim: Int, _ jobs: [(QMatrix, UnsafeMutablePointer<Float>)]) {
        let sums = scratch.sums
        let mats = jobs.map(\.0)
        if mats.contains(where: { $0.format == .q4_1 }) { sums.compute(x, count: dim) }
        let total = mats.reduce(0) { $0 + $1.rows }
        parallelRanges(total, pool: pool, align: 8, chunks: 4) { range in
            var base = 0
            for (i, m) in mats.enumerated() {
                let lo = max(range.lowerBound - base, 0), hi = min(range.upperBound - base, m.rows)
                if lo < hi { Kernels.gemv(m, x, sums, rows: lo..<hi, out: jobs[i].1) }
                base += m.rows
            }
        }
    }

    /// Causal-by-position attention of the batch's queries over the whole cache (GQA).
    /// Query row t, head h is at `qp + t * ldq + h * Dh`.
    private func attention(q qp: UnsafeMutablePointer<Float>, ldq: Int, positions: [Int32], cache: KVState, layer: Int, out: UnsafeMutablePointer<Float>) {
        let c = config
        let T = positions.count, D = c.dim, KV = c.kvDim, Dh = c.headDim, G = c.groupSize
        let n = cache.count
        let scale = 1 / Float(Dh).squareRoot()
        let K = cache.keys(layer: layer), V = cache.values(layer: layer)
        let slotPos = cache.positions
        let op = SendablePointer(out)
        let pool = self.pool
        do {
            slotPos.withUnsafeBufferPointer { spb in
                positions.withUnsafeBufferPointer { ppb in
                    let sp = spb.baseAddress!, pp = ppb.baseAddress!
                    if T == 1 {
                        // Decode: one query per head, plain dot products.
                        let qpos = pp[0]
                        parallelRanges(c.heads, pool: pool) { heads in
                            var scores = [Float](repeating: 0, count: n)
                            scores.withUnsafeMutableBufferPointer { s in
                                for h in heads {
                                    let g = h / G, qh = qp + h * Dh
                                    for j in 0..<n {
                                        s[j] = sp[j] <= qpos ? Kernels.dot(qh, K + j * KV + g * Dh, Dh) * scale : -.infinity
                                    }
                                    Kernels.softmaxInPlace(s.baseAddress!, n)
                                    let o = op.p + h * Dh
                                    for i in 0..<Dh { o[i] = 0 }
                                    for j in 0..<n where s[j] > 0 { Kernels.axpy(s[j], V + j * KV + g * Dh, o, Dh) }
                                }
                            }
                        }
                        return
                    }
                    // Prefill: per head and block of queries, scores = Q·Kᵀ via sgemm, mask, softmax, ·V.
                    let block = 128
                    let blocks = (T + block - 1) / block
                    parallelRanges(c.heads * blocks, pool: pool) { items in
                        var scores = [Float](repeating: 0, count: block * n)
                        scores.withUnsafeMutableBufferPointer { sb in
                            let s = sb.baseAddress!
                            for item in items {
                                let h = item / blocks, b = item % blocks
                                let t0 = b * block, t1 = min(T, t0 + block), m = t1 - t0
                                let g = h / G
                                // Keys beyond the last slot any query here can see are skipped.
                                var maxPos = Int32.min
                                for t in t0..<t1 { maxPos = max(maxPos, pp[t]) }
                                var kEnd = n
                                while kEnd > 0 && sp[kEnd - 1] > maxPos { kEnd -= 1 }
                                guard kEnd > 0 else { continue }
                                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(kEnd), Int32(Dh),
                                            scale, qp + t0 * ldq + h * Dh, Int32(ldq), K + g * Dh, Int32(KV),
                                            0, s, Int32(kEnd))
                                for i in 0..<m {
                                    let row = s + i * kEnd, qpos = pp[t0 + i]
                                    // Softmax over the keys up to the last visible one only, so the
                                    // sum runs in the same order whatever else is in the batch:
                                    // a token's numbers do not depend on how the prompt was split.
                                    var vEnd = kEnd
                                    while vEnd > 0 && sp[vEnd - 1] > qpos { vEnd -= 1 }
                                    for j in 0..<vEnd where sp[j] > qpos { row[j] = -.infinity }
                                    Kernels.softmaxInPlace(row, vEnd)
                                    for j in vEnd..<kEnd { row[j] = 0 }
                                }
                                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(Dh), Int32(kEnd),
                                            1, s, Int32(kEnd), V + g * Dh, Int32(KV),
                                            0, op.p + t0 * D + h * Dh, Int32(D))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Work buffers of one context, grown to the largest batch seen and reused.
final class Scratch {
    private var capacityT = 0
    private var storage: UnsafeMutablePointer<Float>?
    var sums = BlockSums(capacity: 32)
    struct Buffers { let x, xn, qkv, att, tmp, gu: UnsafeMutablePointer<Float> }
    private var buffers: Buffers?

    func claim(T: Int, config c: LlamaConfig) -> Buffers {
        if T > capacityT || buffers == nil {
            storage?.deallocate()
            let cap = max(T, 1)
            let per = 5 * c.dim + 2 * c.kvDim + 2 * c.ffnDim
            let p = UnsafeMutablePointer<Float>.allocate(capacity: cap * per)
            p.initialize(repeating: 0, count: cap * per)
            var off = 0
            func take(_ w: Int) -> UnsafeMutablePointer<Float> { defer { off += cap * w }; return p + off }
            buffers = Buffers(x: take(c.dim), xn: take(c.dim), qkv: take(c.dim + 2 * c.kvDim),
                              att: take(c.dim), tmp: take(c.dim), gu: take(2 * c.ffnDim))
            storage = p
            capacityT = cap
            if sums.sums.count < max(c.dim, c.ffnDim) / 32 {
                sums.deallocate()
                sums = BlockSums(capacity: max(c.dim, c.ffnDim))
            }
        }
        return buffers!
    }

    deinit {
        storage?.deallocate()
        sums.deallocate()
    }
}
