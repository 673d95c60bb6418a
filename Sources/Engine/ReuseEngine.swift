import Foundation
import KVCache
import Llama
import Tokenizer

/// Hands a non-Sendable reference to another thread that touches a disjoint part of it.
struct UncheckedBox<T>: @unchecked Sendable { let value: T; init(_ v: T) { value = v } }

/// The cached engine. For each part of the prompt, in order of preference:
///
/// 1. **Exact prefix reuse**: the longest token prefix already held, from the previous turn's
///    live cache or from the store's chain of chunks (key = hash(parent, chunk tokens)).
/// 2. **Segment reuse (CacheBlend)**: a document or earlier turn whose tokens are stored but which
///    now sits elsewhere is loaded, its keys re-rotated to the new positions (RoPE delta), and a
///    share of its tokens — those whose K/V deviate most on the check layers — recomputed.
/// 3. **Compute the rest** in one batched forward at the true positions.
///
/// Afterwards it finishes the answer's KV for the next turn and stores this request's chunks and segments.
public final class ReuseEngine: InferenceEngine {
    public struct Options: Sendable {
        /// Share of reused-segment tokens recomputed (CacheBlend). 0 = none, 1 = all.
        public var recomputeRatio = 0.10
        /// Layers whose K/V deviation chooses the tokens to recompute.
        public var checkLayers = [1, 2, 3]
        /// The first tokens of every reused segment are always recomputed.
        public var segmentHeadTokens = 4
        /// Segments shorter than this are computed, not looked up.
        public var minSegmentTokens = 16
        public var encoding: KVEncoding = .int8
        public var ramBytes = 512 << 20
        public var diskDirectory: String?
        public var diskBytes = 2 << 30
        public var chunkSize = 256
        /// Store tiers after RAM and disk, in order (e.g. a remote tier shared with other instances).
        public var lowerTiers: [any KVTier] = []
        /// How a stored prefix in a slow tier (disk, remote) is brought in.
        public var loadStrategy: LoadStrategy = .cake
        /// Reads from the disk tier pass this link (`--disk-bandwidth`); nil = unthrottled.
        public var diskThrottle: Throttle?
        public init() {}
    }

    public let label = "cached"
    public let options: Options
    public let store: TieredStore
    public private(set) var cumulative = RequestStats()
    let core: EngineCore

    /// The previous request's context: prompt, answer and turn suffix.
    private var live: KVState
    /// Slots `0..<liveExact` hold KV exactly as a prefill of those tokens computes it, at
    /// positions 0..<liveExact. Beyond it KV is blended (approximate) and never reused as exact.
    private var liveExact = 0

    public init(model: LlamaModel, tokenizer: Tokenizer, threads: Int, options: Options = Options()) throws {
        self.options = options
        core = EngineCore(model: model, tokenizer: tokenizer, threads: threads)
        let c = model.config
        store = try TieredStore(.init(fingerprint: Self.storeFingerprint(model),
                                      layers: c.layers, kvDim: c.kvDim, encoding: options.encoding,
                                      ramCapacityBytes: options.ramBytes, diskDirectory: options.diskDirectory,
                                      diskCapacityBytes: options.diskBytes, chunkSize: options.chunkSize,
                                      diskThrottle: options.diskThrottle),
                                lowerTiers: options.lowerTiers)
        live = KVState(config: c)
    }

    /// The fingerprint the store keys this model's KV with (a remote tier must use the same).
    public static func storeFingerprint(_ model: LlamaModel) -> ModelFingerprint {
        ModelFingerprint(components: [model.fingerprint])
    }

    public var memory: MemoryStats {
        var m = MemoryStats()
        m.liveKVBytes = live.bytes
        m.storeTiers = store.stats.tiers
        return m
    }

    public var storeTiers: [TierStats] { store.stats.tiers }

    public func reset() {
        store.clear(wipeDisk: true)
        live.clear()
        liveExact = 0
        cumulative = RequestStats()
    }

    public func cacheState(of tokens: [Int32]) -> SegmentCacheState {
        store.contains(store.segmentKey(for: tokens)) ? .cached : .notCached
    }

    /// Drops the previous turn's live context (a new conversation); the store is kept.
    public func forgetLiveContext() {
        live.clear()
        liveExact = 0
    }

    // MARK: - generate: plan, execute, persist

    public func generate(_ request: EngineRequest, cancel: CancelFlag?,
                         onEvent: (EngineEvent) -> Void) throws -> GenerationResult {
        let engineStart = EngineCore.now()
        let start = request.submittedAt ?? engineStart
        let prompt = try core.validate(request)
        onEvent(.started(promptTokens: prompt.count))
        var stats = RequestStats()
        stats.promptTokens = prompt.count
        stats.recomputeRatio = options.recomputeRatio
        stats.breakdown.tokenize = EngineCore.seconds(start, engineStart)
        let storeBefore = store.stats

        // ---- plan: what is reused from where, what is computed ----
        let (plan, match) = makePlan(request, prompt: prompt, breakdown: &stats.breakdown)
        defer { store.clearPrefetched() }

        // ---- execute: load and compute ----
        var x = execute(plan, match: match, request: request, prompt: prompt, stats: &stats, onEvent: onEvent)

        // ---- decode ----
        let d = core.decode(from: x.logits, cache: x.work, request: request, start: start, cancel: cancel, onEvent: onEvent)
        stats.ttftSeconds = d.ttft
        stats.breakdown.close(ttft: d.ttft)
        stats.decodeSeconds = d.decodeSeconds
        stats.generatedTokens = d.tokens.count + (d.endedWithEOG ? 1 : 0)
        var result = core.result(d, stats: stats, request: request, cache: x.work, promptCount: prompt.count)

        // ---- persist: finish the answer's KV for the next turn, store chunks and segments ----
        let t1 = EngineCore.now()
        persist(&x, decoded: d, request: request, prompt: prompt, cancelled: cancel?.isCancelled == true)
        stats.postAnswerSeconds = EngineCore.seconds(t1, EngineCore.now())

        let after = store.stats
        stats.kvBytesLive = live.bytes
        stats.tiers = after.tiers.indices.map { i in
            let a = after.tiers[i], b = storeBefore.tiers[i]
            var t = TierFigures(name: a.name)
            t.hitTokens = x.hitTokens[i]
            t.storeBytes = a.bytes
            t.bytesRead = a.bytesRead - b.bytesRead
            t.bytesWritten = a.bytesWritten - b.bytesWritten
            t.roundTrips = a.roundTrips - b.roundTrips
            t.readSeconds = a.readSeconds - b.readSeconds
            t.rejectedEntries = a.rejectedEntries
            t.writeErrors = a.writeErrors
            t.droppedWrites = a.droppedWrites
            t.state = a.state
            return t
        }
        stats.evictions = after.evictions
        result.stats = stats
        cumulative.accumulate(stats)
        onEvent(.finished(stats))
        return result
    }

    // MARK: plan

    /// Asks the tiers what they hold (one round trip per shared tier) and plans the request.
    /// Time here is the breakdown's lookup, except a batched read of stored bodies (strategy
    /// `load` on a shared tier), which is that tier's load.
    private func makePlan(_ request: EngineRequest, prompt: [Int32], breakdown: inout TTFTBreakdown) -> (ReusePlan, PrefixMatch) {
        let t0 = EngineCore.now()
        // Another kvduel sharing the disk directory may have wiped it (its Ctrl-R): forget those
        // entries first, so the match and the disk meter are true.
        store.disk?.dropVanishedEntries()
        var bodySeconds = 0.0
        if let remote = store.tiers.firstIndex(where: { !$0.isLocal }) {
            // Tiers that are not local are asked once, in one batch, for every chunk the live
            // context does not cover and every segment that could be reused. Strategy `load` reads
            // the bodies at once; `cake` only asks what is there (its I/O side reads chunk by
            // chunk); `compute` does not ask for chunks.
            var liveMatch = 0
            let lt = live.tokens
            while liveMatch < min(lt.count, prompt.count) && lt[liveMatch] == prompt[liveMatch] { liveMatch += 1 }
            let covered = min(liveMatch, liveExact)
            let chunkKeys = store.prefixKeys(for: prompt).filter { $0.tokenRange.upperBound > covered }.map(\.cacheKey)
            var segmentKeys: [CacheKey] = []
            var end = 0
            for seg in request.segments {
                end += seg.tokens.count
                if end > covered && ReusePlan.isReusable(seg, endsBefore: end < prompt.count, minTokens: options.minSegmentTokens) {
                    segmentKeys.append(store.segmentKey(for: seg.tokens).cacheKey)
                }
            }
            let tb = EngineCore.now()
            // One round trip: `load` reads the chain's bodies at once; `cake` only asks what is
            // there (its I/O side reads chunk by chunk). Segments are only asked about: the plan
            // reads the ones it blends. `compute` reuses nothing from a slow tier.
            switch options.loadStrategy {
            case .load: store.prefetch(chunkKeys, probing: segmentKeys)
            case .cake: store.prefetch([], probing: chunkKeys + segmentKeys)
            case .compute: break
            }
            if options.loadStrategy == .load {
                bodySeconds = EngineCore.seconds(tb, EngineCore.now())
                breakdown.addLoad(bodySeconds, tier: store.tiers[remote].name)
            }
        }
        let match = store.matchPrefix(tokens: prompt)
        let chain = match.keys.map { (tokens: $0.tokenRange, tier: store.tierIndex(of: $0) ?? 0) }
        let segments = request.segments
        let plan = ReusePlan.make(.init(segments: segments, liveTokens: live.tokens, liveExact: liveExact,
                                        storedChain: chain,
                                        segmentTier: { si in
                                            let t = self.store.tierIndex(of: self.store.segmentKey(for: segments[si].tokens))
                                            // Compute-only: a segment in a slow tier is computed too.
                                            return self.options.loadStrategy == .compute && (t ?? 0) > 0 ? nil : t
                                        },
                                        minSegmentTokens: options.minSegmentTokens, strategy: options.loadStrategy))
        breakdown.lookup += max(0, EngineCore.seconds(t0, EngineCore.now()) - bodySeconds)
        return (plan, match)
    }

    // MARK: execute

    /// What `execute` leaves for decoding and `persist`.
    private struct Execution {
        var work: KVState
        var logits: [Float]
        /// Reused tokens per tier (index into `store.tiers`).
        var hitTokens: [Int]
        /// Prompt tokens from here on hold approximate (blended) KV.
        var approximateFrom: Int
        /// Segments whose KV was reused (not stored again).
        var blendedSegments: Set<Int>
        /// Stored chunks from this token on are rewritten (they were found damaged or missing).
        var rewriteChunksFrom: Int
    }

    private func execute(_ plan: ReusePlan, match: PrefixMatch, request: EngineRequest, prompt: [Int32],
                         stats: inout RequestStats, onEvent: (EngineEvent) -> Void) -> Execution {
        let config = core.model.config
        let work = live
        work.truncate(to: plan.live)
        work.reserve(prompt.count + request.maxTokens + request.turnSuffix.count + 1)
        var hitTokens = Array(repeating: 0, count: store.tiers.count)
        hitTokens[0] += plan.live
        var exactTokens = plan.liveExact
        var computeRows: [Int] = []                 // prompt rows the final forward computes
        var candidates: [Int] = []                  // loaded segment rows (CacheBlend candidates)
        var candidateTier: [Int: Int] = [:]
        var segmentHeads = Set<Int>()
        var blended = Set<Int>()
        var rewriteFrom = Int.max
        var approximateFrom = plan.live > plan.liveExact ? plan.liveExact : prompt.count
        var bd = stats.breakdown

        func placeholders(_ r: Range<Int>) {
            work.append(tokens: Array(prompt[r]), positions: r.map { Int32($0) })
        }

        for step in plan.steps {
            switch step {
            case .load(let c):
                let t = EngineCore.now()
                let key = match.keys[c.key]
                let slots = work.count..<(work.count + c.tokens.count)
                placeholders(c.tokens)
                if let (entry, tier) = store.lookup(key), Self.write(entry, rows: c.skip..<(c.skip + c.tokens.count), at: slots, positions: c.tokens, into: work, ctx: core.ctx) {
                    hitTokens[tier] += c.tokens.count
                    exactTokens += c.tokens.count
                    bd.addLoad(EngineCore.seconds(t, EngineCore.now()), tier: store.tiers[tier].name)
                } else {
                    // Damaged (now deleted) or gone: compute it, and rewrite the chain from here.
                    rewriteFrom = min(rewriteFrom, key.tokenRange.lowerBound)
                    computeRows += c.tokens
                    bd.lookup += EngineCore.seconds(t, EngineCore.now())
                }
            case .cake(let chunks):
                let outcome = cake(chunks, match: match, prompt: prompt, work: work, onEvent: onEvent)
                for (tier, n) in outcome.loadedPerTier { hitTokens[tier] += n }
                exactTokens += outcome.loaded.count
                rewriteFrom = min(rewriteFrom, outcome.rewriteFrom)
                bd.computeNew += outcome.computeSeconds
                bd.addLoad(outcome.waitSeconds, tier: outcome.tier)
                bd.overlappedLoad += outcome.overlappedSeconds
                stats.cake = CakeSplit(computed: outcome.computed, loaded: outcome.loaded, tier: outcome.tier)
            case .blend(let b):
                let t = EngineCore.now()
                let seg = request.segments[b.segment]
                let slots = work.count..<(work.count + b.tokens.count)
                if let (entry, tier) = store.lookup(store.segmentKey(for: seg.tokens)), entry.tokenCount == seg.tokens.count,
                   let p0 = entry.positions.first, entry.positions == (0..<entry.tokenCount).map({ p0 + Int32($0) }) {
                    work.append(tokens: seg.tokens, positions: entry.positions)
                    _ = Self.write(entry, rows: 0..<entry.tokenCount, at: slots, positions: nil, into: work, ctx: core.ctx)
                    let t2 = EngineCore.now()
                    bd.addLoad(EngineCore.seconds(t, t2), tier: store.tiers[tier].name)
                    work.shift(slots, by: Int32(b.tokens.lowerBound) - p0)
                    bd.rerotate += EngineCore.seconds(t2, EngineCore.now())
                    blended.insert(b.segment)
                    for r in slots { candidates.append(r); candidateTier[r] = tier }
                    for r in slots.prefix(options.segmentHeadTokens) { segmentHeads.insert(r) }
                    approximateFrom = min(approximateFrom, b.tokens.lowerBound)
                } else {
                    placeholders(b.tokens)
                    computeRows += b.tokens
                    bd.lookup += EngineCore.seconds(t, EngineCore.now())
                }
            case .compute(let r):
                placeholders(r)
                computeRows += r
            }
        }
        precondition(work.count == prompt.count && work.positions.last == Int32(prompt.count - 1))

        // ---- one batched forward over everything not reused exactly ----
        let t0 = EngineCore.now()
        var logits: [Float]
        var recomputed: [Int] = []
        computeRows.sort()
        if candidates.isEmpty {
            logits = prefill(rows: computeRows, prompt: prompt, cache: work, onEvent: onEvent)
            bd.computeNew += EngineCore.seconds(t0, EngineCore.now())
        } else if options.recomputeRatio <= 0 {
            // Pure reuse: only the fresh rows run.
            logits = core.ctx.forward(tokens: computeRows.map { prompt[$0] }, positions: computeRows.map { Int32($0) },
                                      cache: work, slots: computeRows)
            bd.computeNew += EngineCore.seconds(t0, EngineCore.now())
        } else {
            let rows = (computeRows + candidates).sorted()
            let batchIndex = Dictionary(uniqueKeysWithValues: rows.enumerated().map { ($1, $0) })
            let keep = Int((options.recomputeRatio * Double(candidates.count)).rounded())
            // Check layers must leave later layers to skip work in (a shallow model may have none).
            let checks = options.checkLayers.filter { $0 < config.layers - 1 }
            let blendPlan = LlamaContext.BlendPlan(candidates: candidates.map { batchIndex[$0]! }, checkLayers: checks,
                                                   keep: keep, alwaysKeep: Set(segmentHeads.map { batchIndex[$0]! }))
            var checkEnd = t0
            let lastCheck = checks.max() ?? -1
            logits = core.ctx.forward(tokens: rows.map { prompt[$0] }, positions: rows.map { Int32($0) },
                                      cache: work, slots: rows, blend: blendPlan, recomputed: &recomputed,
                                      layerDone: { if $0 == lastCheck { checkEnd = EngineCore.now() }; return true })
            recomputed = recomputed.map { rows[$0] }
            stats.checkedTokens = candidates.count
            // One pass, several roles: its time is shared by row count (see TTFTBreakdown).
            let t1 = EngineCore.now()
            let checkPart = EngineCore.seconds(t0, checkEnd), rest = EngineCore.seconds(checkEnd, t1)
            let fresh = Double(computeRows.count), cand = Double(candidates.count), rec = Double(recomputed.count)
            bd.blendCheck += checkPart * cand / max(1, fresh + cand)
            bd.computeNew += checkPart * fresh / max(1, fresh + cand) + rest * fresh / max(1, fresh + rec)
            bd.recompute += rest * rec / max(1, fresh + rec)
        }
        onEvent(.prefillProgress(done: prompt.count, total: prompt.count))
        stats.prefillSeconds = EngineCore.seconds(t0, EngineCore.now())
        stats.breakdown = bd
        stats.lookupSeconds = bd.lookup
        stats.loadSeconds = bd.loadTotal

        let recomputedRows = options.recomputeRatio <= 0 ? Set<Int>() : Set(recomputed)
        for r in candidates where !recomputedRows.contains(r) { hitTokens[candidateTier[r]!] += 1 }
        stats.reusedExact = exactTokens
        stats.recomputed = recomputedRows.count
        stats.reusedBlended = (plan.live - plan.liveExact) + candidates.count - recomputedRows.count
        stats.computedFresh = prompt.count - stats.reusedExact - stats.reusedBlended - stats.recomputed
        return Execution(work: work, logits: logits, hitTokens: hitTokens, approximateFrom: approximateFrom,
                         blendedSegments: blended, rewriteChunksFrom: rewriteFrom)
    }

    /// Fresh rows only: prefill in ubatches with progress events.
    private func prefill(rows: [Int], prompt: [Int32], cache: KVState, onEvent: (EngineEvent) -> Void) -> [Float] {
        var logits: [Float] = []
        var i = 0
        while i < rows.count {
            let n = min(512, rows.count - i)
            let part = Array(rows[i..<(i + n)])
            logits = core.ctx.forward(tokens: part.map { prompt[$0] }, positions: part.map { Int32($0) },
                                      cache: cache, slots: part, logits: i + n == rows.count ? .last : .none)
            i += n
            onEvent(.prefillProgress(done: part.last! + 1, total: prompt.count))
        }
        return logits
    }

    // MARK: persist

    /// After the answer: finish encoding it for the next turn, keep the context live, store this
    /// request's chunks and segments, and make room for the next turn off its critical path.
    private func persist(_ x: inout Execution, decoded d: EngineCore.Decoded, request: EngineRequest, prompt: [Int32], cancelled: Bool) {
        // The kernels compute a token's KV the same whether it is decoded or prefilled in a batch,
        // so the answer's KV left in the cache by decoding (or by scoring) is already exactly what
        // the baseline's prefill of the next prompt computes. Only the rest of the answer + turn
        // suffix (at least the last sampled token, which was never fed back) runs now.
        let work = x.work
        let tail = d.tokens + request.turnSuffix
        var kept = 0
        let heldTokens = work.tokens, heldPositions = work.positions
        while kept < tail.count && prompt.count + kept < work.count
                && heldTokens[prompt.count + kept] == tail[kept]
                && heldPositions[prompt.count + kept] == Int32(prompt.count + kept) { kept += 1 }
        work.truncate(to: prompt.count + kept)
        let encoded = !cancelled
        if encoded && kept < tail.count {
            core.ctx.forward(tokens: Array(tail[kept...]), positions: (kept..<tail.count).map { Int32(prompt.count + $0) },
                             cache: work, logits: .none)
        }
        live = work
        liveExact = x.approximateFrom == prompt.count ? work.count : x.approximateFrom
        // The prompt's own chain too (its partial tail differs from prompt + answer's), so the
        // same short prompt asked again, after a restart or a new conversation, is found.
        storeChunks(upTo: min(prompt.count, liveExact), rewriteFrom: x.rewriteChunksFrom)
        storeChunks(upTo: liveExact, rewriteFrom: x.rewriteChunksFrom)
        storeSegments(request.segments, skipping: x.blendedSegments, answer: encoded ? tail : nil)
        // Room for a follow-up (a question and its answer), so the next turn does not grow the
        // cache (allocate, zero and copy every layer) on its critical path.
        live.reserve(live.count + 1024)
    }

    // MARK: - store

    /// Writes rows `rows` of a stored entry into `slots` of `cache` (already claimed), decoding
    /// the layers in parallel on `ctx`'s workers. With `positions`, the entry's stored positions
    /// for those rows must be exactly these (a chunk of the prefix chain); false, and nothing
    /// written, when they are not.
    static func write(_ entry: EncodedKV, rows: Range<Int>, at slots: Range<Int>, positions: Range<Int>?,
                      into cache: KVState, ctx: LlamaContext, parallel: Bool = true) -> Bool {
        precondition(rows.count == slots.count && rows.upperBound <= entry.tokenCount)
        if let positions {
            let stored = entry.positions
            for (r, p) in zip(rows, positions) where stored[r] != Int32(p) { return false }
        }
        let d = cache.kvDim, n = entry.tokenCount
        let box = UncheckedBox(cache)
        let layer = { (l: Int) in
            let k = UnsafeMutablePointer<Float>.allocate(capacity: 2 * n * d)
            defer { k.deallocate() }
            let v = k + n * d
            entry.decode(.k, layer: l, into: k)
            entry.decode(.v, layer: l, into: v)
            box.value.write(layer: l, slot: slots.lowerBound, k: k + rows.lowerBound * d, v: v + rows.lowerBound * d, count: rows.count)
        }
        if parallel { ctx.parallelFor(cache.config.layers, layer) } else { for l in 0..<cache.config.layers { layer(l) } }
        return true
    }

    private func block(_ slots: Range<Int>) -> KVBlock {
        let c = live.config, n = slots.count, d = c.kvDim
        var k = [Float](), v = [Float]()
        k.reserveCapacity(c.layers * n * d)
        v.reserveCapacity(c.layers * n * d)
        for l in 0..<c.layers {
            let (kl, vl) = live.read(layer: l, slots: slots)
            k += kl
            v += vl
        }
        return KVBlock(layers: c.layers, tokenCount: n, kvDim: d, positions: Array(live.positions[slots]), k: k, v: v)
    }

    /// Stores the chunk chain of the live context's first `n` tokens; chunks starting at or after
    /// `rewriteFrom` are written even if the index has them (they sat behind a damaged entry).
    private func storeChunks(upTo n: Int, rewriteFrom: Int = .max) {
        guard n > 0 else { return }
        for key in store.prefixKeys(for: Array(live.tokens[0..<n]))
        where key.tokenRange.lowerBound >= rewriteFrom || !store.contains(key) {
            store.put(key, block: block(key.tokenRange))
        }
    }

    private func storeSegments(_ segments: [PromptSegment], skipping blended: Set<Int>, answer: [Int32]?) {
        var offset = 0
        for (i, seg) in segments.enumerated() {
            let r = offset..<(offset + seg.tokens.count)
            offset = r.upperBound
            guard !blended.contains(i), seg.tokens.count >= options.minSegmentTokens else { continue }
            switch seg.role {
            case .document, .history:
                let key = store.segmentKey(for: seg.tokens)
                if !store.contains(key) { store.put(key, block: block(r)) }
            case .question:
                // The question with its answer is the next turn's history segment.
                if let answer, r.upperBound + answer.count <= live.count {
                    let tokens = seg.tokens + answer
                    let key = store.segmentKey(for: tokens)
                    if !store.contains(key) { store.put(key, block: block(r.lowerBound..<(r.upperBound + answer.count))) }
                }
            case .system:
                break
            }
        }
    }
}
