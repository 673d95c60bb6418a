import CKernels
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

    /// Activations enter every matrix product as int8 per block of 32, as in llama.cpp. With
    /// `preciseActivations`, a second int8 pass over the rounding residual gives about 15 bits
    /// (close to float32 results, at about half the speed).
    public var preciseActivations = false
    public init(model: LlamaModel, threads: Int) {
        self.model = model
        self.threads = max(1, threads)
    }

    public enum LogitRows: Sendable { case none, last, all }


    /// CacheBlend's selective recompute, folded into one forward pass.
    ///
    /// Some rows of the batch are *candidates*: tokens whose K/V were loaded from the store and
    /// re-positioned, already sitting in their cache slots. At each check layer, before a
    /// candidate's fresh K/V overwrite its loaded K/V, their squared deviation is added to the
    /// candidate's score. The candidates are narrowed gradually, as CacheBlend does: every row runs
    /// through the first check layer; after the i-th of m check layers the (m − i)·`keep`
    /// highest-scoring candidates go on, so the last check layer leaves `keep`, ranked by deviation
    /// summed over all check layers. Fresh rows and `alwaysKeep` rows always go on; dropped
    /// candidates keep their loaded K/V in the later layers.
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
    /// that ran to the end, in batch order). `layerDone(l)` runs after each layer; returning false
    /// ends the pass there (no logits).
    @discardableResult
    public func forward(tokens: [Int32], positions: [Int32], cache: KVState, slots: [Int]? = nil,
                        logits: LogitRows = .last, blend: BlendPlan? = nil,
                        recomputed: UnsafeMutablePointer<[Int]>? = nil,
                        layerDone: ((Int) -> Bool)? = nil) -> [Float] {
        let c = config, w = model.weights
        var T = tokens.count
        precondition(T > 0 && positions.count == T)
        let D = c.dim, Q = c.qDim, KV = c.kvDim, F = c.ffnDim

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
        let pool = self.pool, quant = scratch.quant
        // q, k, v are column blocks of one [T, QKV] matrix; gate and up of one [T, 2F] matrix.
        let QKV = Q + 2 * KV, F2 = 2 * F
        let x = buf.x, xn = buf.xn, q = buf.qkv, k = buf.qkv + Q, v = buf.qkv + Q + KV
        let att = buf.att, tmp = buf.tmp, gate = buf.gu, up = buf.gu + F   // [T,Q] [T,D] [T,2F]

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
        let checkOrder = (blend?.checkLayers ?? []).sorted()
        // Until the rows are narrowed (which needs a check layer before the last layer), every
        // candidate is recomputed, and reported so.
        recomputed?.pointee = blend?.candidates ?? []

        for l in 0..<c.layers {
            let L = w.layers[l]
            // ---- attention block ----
            eachRow(T) { t in Kernels.rmsnorm(x + t * D, L.attnNorm, xn + t * D, dim: D, eps: c.normEps) }
            Kernels.matmul(xn, rows: T, L.wqkv, buf.qkv, q: quant, pool: pool, precise: preciseActivations)     // [T, Q+2KV]
            // q, k, v += their biases (Qwen2), before RoPE.
            if let b = L.qkvBias {
                eachRow(T) { t in
                    let r = buf.qkv + t * QKV
                    for i in 0..<QKV { r[i] += b[i] }
                }
            }
            if checkOrder.contains(l) {
                for t in 0..<T {
                    rope.apply(q + t * QKV, heads: c.heads, table: table, row: t)
                    kv_round_f16(q + t * QKV, Q)   // queries in f16 (see kv_attend)
                    rope.apply(k + t * QKV, heads: c.kvHeads, table: table, row: t)
                    if isCandidate[rowOrigin[t]] {
                        // Deviation of the fresh K/V from the loaded K/V still in the slot.
                        deviation[rowOrigin[t]] += cache.squaredDeviation(layer: l, slot: slotIndex[t], k: k + t * QKV, v: v + t * QKV)
                    }
                    cache.write(layer: l, slot: slotIndex[t], k: k + t * QKV, v: v + t * QKV, count: 1)
                }
            } else {
                // Rows write distinct slots, so they can go in parallel.
                eachRow(T) { t in
                    rope.apply(q + t * QKV, heads: c.heads, table: table, row: t)
                    kv_round_f16(q + t * QKV, Q)   // queries in f16 (see kv_attend)
                    rope.apply(k + t * QKV, heads: c.kvHeads, table: table, row: t)
                    cache.write(layer: l, slot: slotIndex[t], k: k + t * QKV, v: v + t * QKV, count: 1)   // K (rotated) and V
                }
            }
            // Last layer: every row's K/V is in the cache now; only the rows whose logits are
            // asked for need the rest (llama.cpp skips the others the same way).
            if l == c.layers - 1 && logits != .all {
                guard logits == .last else { break }
                if T > 1 {
                    q.update(from: q + (T - 1) * QKV, count: Q)
                    x.update(from: x + (T - 1) * D, count: D)
                    pos = [pos[T - 1]]
                    T = 1
                }
            }
            attention(q: q, ldq: QKV, positions: pos, cache: cache, layer: l, out: att)
            Kernels.matmul(att, rows: T, L.wo, tmp, q: quant, pool: pool, precise: preciseActivations)          // [T, Q] → [T, D]

            // ---- feed-forward block (SwiGLU), after the residual ----
            eachRow(T) { t in
                for i in (t * D)..<((t + 1) * D) { x[i] += tmp[i] }
                Kernels.rmsnorm(x + t * D, L.ffnNorm, xn + t * D, dim: D, eps: c.normEps)
            }
            Kernels.matmul(xn, rows: T, L.wGateUp, buf.gu, q: quant, pool: pool, precise: preciseActivations)   // [T, 2F]
            // gate = silu(gate) · up, row by row
            eachRow(T) { t in Kernels.siluMul(gate + t * F2, up + t * F2, F) }
            Kernels.matmul(gate, rows: T, lda: F2, L.wDown, tmp, q: quant, pool: pool, precise: preciseActivations) // [T, D]
            eachRow(T) { t in for i in (t * D)..<((t + 1) * D) { x[i] += tmp[i] } }

            // ---- CacheBlend: after each check layer, keep fewer rows worth recomputing ----
            if let plan = blend, l < c.layers - 1, let stage = checkOrder.firstIndex(of: l) {
                let target = max(0, plan.keep) * (checkOrder.count - stage)
                let ranked = rowOrigin.filter { isCandidate[$0] }.sorted { deviation[$0] > deviation[$1] }
                var keepOrigin = Set(ranked.prefix(target))
                keepOrigin.formUnion(plan.alwaysKeep)
                // Current rows that go on (increasing, so compacting in place is safe).
                let kept = (0..<T).filter { !isCandidate[rowOrigin[$0]] || keepOrigin.contains(rowOrigin[$0]) }
                for (i, r) in kept.enumerated() where i != r {
                    (x + i * D).update(from: x + r * D, count: D)
                }
                rowOrigin = kept.map { rowOrigin[$0] }
                slotIndex = kept.map { slotIndex[$0] }
                pos = rowOrigin.map { positions[$0] }
                table = rope.table(positions: pos)
                T = kept.count
                recomputed?.pointee = rowOrigin.filter { isCandidate[$0] }
            }
            // The caller may stop the pass here (Cake: the rows' KV arrived from the store
            // meanwhile); the rows' later layers are then left for the caller to fill.
            if let layerDone, !layerDone(l) { return [] }
        }

        // ---- output head: logits for the rows asked for ----
        let rows: [Int]
        switch logits {
        case .none: return []
        case .last: rows = [T - 1]
        case .all: rows = Array(0..<T)
        }
        let V = c.vocabSize
        for (i, t) in rows.enumerated() { Kernels.rmsnorm(x + t * D, w.outputNorm, xn + i * D, dim: D, eps: c.normEps) }
        return [Float](unsafeUninitializedCapacity: rows.count * V) { out, n in
            Kernels.matmul(xn, rows: rows.count, w.output, out.baseAddress!, q: quant, pool: pool, precise: preciseActivations)   // [rows, V]
            n = rows.count * V
        }
    }

    /// `body(i)` for `i` in `0..<count`, split across this context's workers (inline with one thread).
    public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        parallelRanges(count, pool: pool) { r in for i in r { body(i) } }
    }

    // MARK: - pieces

    /// `body(t)` for every row of a batch: split across the workers for batches of 8 or more rows
    /// (each row's arithmetic is the same either way), inline for decode-sized batches.
    @inline(__always)
    private func eachRow(_ T: Int, _ body: (Int) -> Void) {
        if T < 8 { for t in 0..<T { body(t) }; return }
        parallelRanges(T, pool: pool) { rows in for t in rows { body(t) } }
    }

    /// Causal-by-position attention of the batch's queries over the whole cache (GQA).
    /// Query row t, head h is at `qp + t * ldq + h * Dh`. Each (query, head) pair is one work item
    /// for `kv_attend`, whose result does not depend on the batch: a token's numbers are the same
    /// prefilled alone, in any batch, or decoded.
    private func attention(q qp: UnsafeMutablePointer<Float>, ldq: Int, positions: [Int32], cache: KVState, layer: Int, out: UnsafeMutablePointer<Float>) {
        let c = config
        let T = positions.count, Q = c.qDim, Dh = c.headDim, G = c.groupSize, H = c.heads
        let n = cache.count
        let scale = 1 / Float(Dh).squareRoot()
        let slotPos = cache.positions
        // Keys a query can see end at the last slot whose position is ≤ its own.
        // With suffixMin[e] = min(slotPos[e..<n]) (non-decreasing in e), that end is the first e
        // with suffixMin[e] > position: a binary search instead of a walk back from the end.
        var suffixMin = [Int32](repeating: .max, count: n + 1)
        for e in stride(from: n - 1, through: 0, by: -1) { suffixMin[e] = min(slotPos[e], suffixMin[e + 1]) }
        let visible = positions.map { p -> Int32 in
            var lo = 0, hi = n
            while lo < hi { let mid = (lo + hi) / 2; if suffixMin[mid] > p { hi = mid } else { lo = mid + 1 } }
            return Int32(lo)
        }
        if T <= 2 && pool.threads > 1 && n >= 256 && Dh % 16 == 0 {
            decodeAttention(q: qp, ldq: ldq, positions: positions, visible: visible, cache: cache, layer: layer, scale: scale, out: out)
            return
        }
        // Work items: (tokens t0..<t1, K/V group g, its query heads h0..<h1). Every query head of
        // an item reads the group's K/V chunk by chunk, converted from f16 once per item.
        // For a batch: blocks of up to 8 queries × the heads of one group, so each K/V chunk serves
        // up to 8·G query heads; the blocks are shared out as they come. For one or two tokens
        // (decode): the H query heads split evenly over the threads, cut at group boundaries, so
        // the work is balanced and a thread reads (and converts) each group it needs once.
        struct Item { let t0, t1, g, h0, h1: Int }
        var items: [Item] = []
        var tasks: [Range<Int>] = []   // for decode: the items of each thread
        let groups = H / G
        if T <= 2 {
            let parts = min(pool.threads, H)
            for part in 0..<parts {
                let start = items.count
                var h = H * part / parts
                let end = H * (part + 1) / parts
                while h < end {
                    let g = h / G, e = min(end, (g + 1) * G)
                    items.append(Item(t0: 0, t1: T, g: g, h0: h, h1: e))
                    h = e
                }
                tasks.append(start..<items.count)
            }
        } else {
            for t0 in stride(from: 0, to: T, by: 8) {
                for g in 0..<groups { items.append(Item(t0: t0, t1: min(T, t0 + 8), g: g, h0: g * G, h1: (g + 1) * G)) }
            }
        }
        let maxHeads = items.map { ($0.t1 - $0.t0) * ($0.h1 - $0.h0) }.max() ?? 1
        let op = SendablePointer(out), q = SendablePointer(qp)
        slotPos.withUnsafeBufferPointer { spb in
            positions.withUnsafeBufferPointer { ppb in
                visible.withUnsafeBufferPointer { vb in
                    let sp = spb.baseAddress!, pp = ppb.baseAddress!, vis = vb.baseAddress!
                    let run = { (range: Range<Int>) in
                        let ldScores = max(n, 1)
                        let scores = UnsafeMutablePointer<Float>.allocate(capacity: maxHeads * ldScores)
                        defer { scores.deallocate() }
                        var qs: [UnsafePointer<Float>?] = [], outs: [UnsafeMutablePointer<Float>?] = []
                        var qpos: [Int32] = [], counts: [Int32] = []
                        for it in items[range] {
                            qs.removeAll(keepingCapacity: true); outs.removeAll(keepingCapacity: true)
                            qpos.removeAll(keepingCapacity: true); counts.removeAll(keepingCapacity: true)
                            for t in it.t0..<it.t1 {
                                for h in it.h0..<it.h1 {
                                    qs.append(UnsafePointer(q.p + t * ldq + h * Dh))
                                    outs.append(op.p + t * Q + h * Dh)
                                    qpos.append(pp[t]); counts.append(vis[t])
                                }
                            }
                            kv_attend(Int32(qs.count), qs, qpos, counts, cache.keys(layer: layer, head: it.g),
                                      cache.values(layer: layer, head: it.g), Dh, sp,
                                      scale, Int32(Dh), scores, ldScores, outs)
                        }
                    }
                    if tasks.isEmpty {
                        parallelRanges(items.count, pool: pool) { run($0) }
                    } else if tasks.count == 1 {
                        run(tasks[0])
                    } else {
                        pool.run(tasks.count) { run(tasks[$0]) }
                    }
                }
            }
        }
    }

    /// Attention for one or two tokens over a long cache, in kv_attend's three phases, each shared
    /// out evenly over the threads, with a barrier between them:
    ///   scores  [T·H, n]: every thread takes a range of keys (a multiple of 8) for every group;
    ///   weights [T·H, n]: softmax of each query head's row, rows shared out;
    ///   values  [T, Q]:   for one token, every thread takes a share of the query heads (cut at
    ///                     group boundaries); for two, a range of output lanes (16 at a time).
    /// Each K row is read (and converted from f16) by one thread only. Values are split by heads
    /// rather than lanes for one token: a lane range is half of each 128-byte V row, and the
    /// prefetcher pulls the whole row into both cores anyway (in A/B runs on Zen 1, 70-73 against
    /// 67-76 tok/s at 2000 tokens). The bits are kv_attend's: only the division of the work differs.
    private func decodeAttention(q qp: UnsafeMutablePointer<Float>, ldq: Int, positions: [Int32], visible: [Int32],
                                 cache: KVState, layer: Int, scale: Float, out: UnsafeMutablePointer<Float>) {
        let c = config
        let T = positions.count, Q = c.qDim, Dh = c.headDim, G = c.groupSize, H = c.heads
        let n = cache.count, groups = H / G, perGroup = T * G
        let parts = pool.threads
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: T * H * n)   // [group][t·G + head in group][n]
        defer { scores.deallocate() }
        // Query rows of group g, in the order t·G + (h - g·G).
        var qs = [UnsafePointer<Float>?](), outs = [UnsafeMutablePointer<Float>?](), qpos = [Int32](), counts = [Int32]()
        for g in 0..<groups {
            for t in 0..<T {
                for h in g * G..<(g + 1) * G {
                    qs.append(UnsafePointer(qp + t * ldq + h * Dh))
                    outs.append(out + t * Q + h * Dh)
                    qpos.append(positions[t]); counts.append(visible[t])
                }
            }
        }
        let sp = SendablePointer(scores)
        cache.positions.withUnsafeBufferPointer { spb in
            qs.withUnsafeBufferPointer { qsb in
                outs.withUnsafeBufferPointer { ob in
                    qpos.withUnsafeBufferPointer { qpb in
                        counts.withUnsafeBufferPointer { cb in
                            let slotPos = spb.baseAddress!, qsp = qsb.baseAddress!, op = ob.baseAddress!
                            let qpp = qpb.baseAddress!, cp = cb.baseAddress!
                            pool.run(parts) { part in   // scores, by keys
                                let lo = n * part / parts / 8 * 8, hi = part == parts - 1 ? n : n * (part + 1) / parts / 8 * 8
                                for g in 0..<groups {
                                    let r = g * perGroup
                                    kv_attend_scores(Int32(perGroup), qsp + r, qpp + r, cp + r, cache.keys(layer: layer, head: g), Dh,
                                                     slotPos, scale, Int32(Dh), Int32(lo), Int32(hi), sp.p + r * n, n)
                                }
                            }
                            pool.run(parts) { part in   // weights, by query rows
                                for r in T * H * part / parts..<T * H * (part + 1) / parts { kv_attend_weights(sp.p + r * n, cp[r]) }
                            }
                            // Values, by units of (group, block of output lanes): a block is one
                            // cache line of f16 V (32 lanes) where the head allows. Each V value is
                            // read and converted by one thread, and the threads get equal shares
                            // (by query heads, 9 heads in 3 groups gave one thread 5 heads over 2
                            // groups' V).
                            let block = Dh % 32 == 0 ? 32 : 16, blocks = Dh / block, units = groups * blocks
                            let vparts = min(parts, units)
                            pool.run(vparts) { part in
                                var u = units * part / vparts
                                let end = units * (part + 1) / vparts
                                while u < end {
                                    let g = u / blocks, last = min(end, (g + 1) * blocks)   // this group's units here
                                    let r = g * perGroup
                                    kv_attend_values(Int32(perGroup), sp.p + r * n, n, cp + r, cache.values(layer: layer, head: g), Dh,
                                                     Int32(Dh), Int32((u % blocks) * block), Int32(((last - 1) % blocks + 1) * block), op + r)
                                    u = last
                                }
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
    let quant = QuantisedRows()
    struct Buffers { let x, xn, qkv, att, tmp, gu: UnsafeMutablePointer<Float> }
    private var buffers: Buffers?

    func claim(T: Int, config c: LlamaConfig) -> Buffers {
        if T > capacityT || buffers == nil {
            storage?.deallocate()
            let cap = max(T, 1)
            let per = 3 * c.dim + 2 * c.qDim + 2 * c.kvDim + 2 * c.ffnDim   // x, xn, tmp; qkv, att; gu
            let p = UnsafeMutablePointer<Float>.allocate(capacity: cap * per)
            p.initialize(repeating: 0, count: cap * per)
            var off = 0
            func take(_ w: Int) -> UnsafeMutablePointer<Float> { defer { off += cap * w }; return p + off }
            buffers = Buffers(x: take(c.dim), xn: take(c.dim), qkv: take(c.qDim + 2 * c.kvDim),
                              att: take(c.qDim), tmp: take(c.dim), gu: take(2 * c.ffnDim))
            storage = p
            capacityT = cap
        }
        return buffers!
    }

    deinit {
        storage?.deallocate()
    }
}
