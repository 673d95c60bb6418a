import KVCache
import Llama
import Tokenizer

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
                                      diskCapacityBytes: options.diskBytes, chunkSize: options.chunkSize),
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

    // MARK: - generate

    public func generate(_ request: EngineRequest, cancel: CancelFlag?,
                         onEvent: (EngineEvent) -> Void) throws -> GenerationResult {
        let start = request.submittedAt ?? EngineCore.now()
        let prompt = try core.validate(request)
        let config = core.model.config
        onEvent(.started(promptTokens: prompt.count))
        // Another kvduel sharing the disk directory may have wiped it (its Ctrl-R): forget those
        // entries first, so the match and the disk meter are true.
        store.disk?.dropVanishedEntries()
        var stats = RequestStats()
        stats.promptTokens = prompt.count
        stats.recomputeRatio = options.recomputeRatio
        let storeBefore = store.stats

        // ---- 1. prefix: live context or stored chunk chain ----
        // The live context matches exactly up to `liveExact`; past it (after a blended turn) its
        // KV is the previous turn's blend, reused as is and counted as blended, not exact.
        var liveMatch = 0
        let liveTokens = live.tokens
        while liveMatch < min(live.count, prompt.count) && liveTokens[liveMatch] == prompt[liveMatch] { liveMatch += 1 }
        // Tiers that are not local (a shared server) are asked once, in one batch, for every chunk
        // the live context does not cover and every segment that could be reused.
        if store.tiers.contains(where: { !$0.isLocal }) {
            let covered = min(liveMatch, liveExact)
            var keys = store.prefixKeys(for: prompt).filter { $0.tokenRange.upperBound > covered }.map(\.cacheKey)
            var end = 0
            for seg in request.segments {
                end += seg.tokens.count
                // Segments inside the live context's exact match can never be reused as segments.
                if end > covered && isReusable(seg, endsBefore: end < prompt.count) {
                    keys.append(store.segmentKey(for: seg.tokens).cacheKey)
                }
            }
            store.prefetch(keys)
        }
        defer { store.clearPrefetched() }
        let match = store.matchPrefix(tokens: prompt)
        // Which tier each reused run came from (index into `store.tiers`; the live context is RAM).
        var prefixSources: [(range: Range<Int>, tier: Int)] = []
        var prefix = 0
        var rewriteChunksFrom = Int.max
        var exactLimit = Int.max       // prefix tokens past this are approximate
        // The live context (float32) first; the stored chain (in the store's encoding) only
        // extends it: chunks it already covers are not loaded.
        let liveExactMatch = min(liveMatch, liveExact)
        let work = live
        if liveMatch > 0 && liveMatch >= match.tokenCount {
            work.truncate(to: liveMatch)
            prefix = liveMatch
            exactLimit = liveExact
            prefixSources.append((0..<prefix, 0))
        } else {
            work.truncate(to: liveExactMatch)
            prefix = liveExactMatch
            prefixSources.append((0..<prefix, 0))
            for key in match.keys where key.tokenRange.upperBound > prefix {
                guard let (entry, tier) = store.lookup(key), entry.tokenCount == key.tokenCount else {
                    // Damaged (now deleted); the chunks after it are rewritten after this request.
                    rewriteChunksFrom = key.tokenRange.lowerBound
                    break
                }
                load(entry, tokens: Array(prompt[key.tokenRange]), into: work, from: prefix - key.tokenRange.lowerBound)
                prefixSources.append((prefix..<key.tokenRange.upperBound, tier))
                prefix = key.tokenRange.upperBound
            }
        }
        // A prefix that ends inside a stored segment (e.g. two documents sharing their first
        // header tokens) backs off to the segment's start, so the segment is reused whole.
        var segStart = 0
        for seg in request.segments {
            let segEnd = segStart + seg.tokens.count
            if segStart < prefix && prefix < segEnd {
                if isReusable(seg, endsBefore: segEnd < prompt.count) && store.contains(store.segmentKey(for: seg.tokens)) {
                    prefix = segStart
                    work.truncate(to: prefix)
                }
                break
            }
            segStart = segEnd
        }
        // The last prompt token is always computed: its logits give the first token.
        if prefix == prompt.count {
            prefix -= 1
            work.truncate(to: prefix)
        }
        work.reserve(prompt.count + request.maxTokens + request.turnSuffix.count + 1)

        // ---- 2. segments after the prefix: reuse (blend) or compute ----
        var candidates: [Int] = []          // batch rows with loaded KV
        var segmentHeads = Set<Int>()
        var blendedSegments = Set<Int>()    // segment indices
        var segmentSources: [(rows: Range<Int>, tier: Int)] = []   // rows relative to `prefix`
        var offset = 0
        for (si, seg) in request.segments.enumerated() {
            let a = offset, b = offset + seg.tokens.count
            offset = b
            guard b > prefix else { continue }
            let from = max(a, prefix)
            if from == a, isReusable(seg, endsBefore: b < prompt.count), let (entry, tier) = store.lookup(store.segmentKey(for: seg.tokens)), entry.tokenCount == seg.tokens.count {
                let slots = load(entry, tokens: seg.tokens, into: work)
                segmentSources.append(((slots.lowerBound - prefix)..<(slots.upperBound - prefix), tier))
                work.shift(slots, by: Int32(a) - entry.positions[0])
                blendedSegments.insert(si)
                for r in slots { candidates.append(r - prefix) }
                for r in slots.prefix(options.segmentHeadTokens) { segmentHeads.insert(r - prefix) }
            } else {
                work.append(tokens: Array(prompt[from..<b]), positions: (from..<b).map { Int32($0) })
            }
        }
        precondition(work.count == prompt.count && work.positions.last == Int32(prompt.count - 1))
        stats.lookupSeconds = store.stats.lookupSeconds - storeBefore.lookupSeconds
        stats.loadSeconds = store.stats.loadSeconds - storeBefore.loadSeconds

        // ---- 3. one batched forward over everything not reused exactly ----
        let t0 = EngineCore.now()
        let rows = Array(prefix..<prompt.count)
        var logits: [Float]
        var recomputed: [Int] = []
        if candidates.isEmpty {
            logits = prefill(rows: rows, prompt: prompt, cache: work, onEvent: onEvent)
        } else if options.recomputeRatio <= 0 {
            // Pure reuse: only the fresh rows run.
            let candidateSet = Set(candidates)
            let fresh = rows.indices.filter { !candidateSet.contains($0) }.map { rows[$0] }
            logits = core.ctx.forward(tokens: fresh.map { prompt[$0] }, positions: fresh.map { Int32($0) },
                                      cache: work, slots: fresh)
        } else {
            let keep = Int((options.recomputeRatio * Double(candidates.count)).rounded())
            // Check layers must leave later layers to skip work in (a shallow model may have none).
            let checks = options.checkLayers.filter { $0 < config.layers - 1 }
            let plan = LlamaContext.BlendPlan(candidates: candidates, checkLayers: checks,
                                              keep: keep, alwaysKeep: segmentHeads)
            logits = core.ctx.forward(tokens: rows.map { prompt[$0] }, positions: rows.map { Int32($0) },
                                      cache: work, slots: rows, blend: plan, recomputed: &recomputed)
            stats.checkedTokens = candidates.count
        }
        onEvent(.prefillProgress(done: prompt.count, total: prompt.count))
        stats.prefillSeconds = EngineCore.seconds(t0, EngineCore.now())
        let exactPrefix = min(prefix, exactLimit)
        stats.reusedExact = exactPrefix
        stats.recomputed = recomputed.count
        stats.reusedBlended = (prefix - exactPrefix)
            + (options.recomputeRatio <= 0 ? candidates.count : candidates.count - recomputed.count)
        stats.computedFresh = prompt.count - prefix - candidates.count
        var hitTokens = Array(repeating: 0, count: store.tiers.count)
        for (r, tier) in prefixSources { hitTokens[tier] += r.clamped(to: 0..<prefix).count }
        let recomputedRows = options.recomputeRatio <= 0 ? Set<Int>() : Set(recomputed)
        for (r, tier) in segmentSources { hitTokens[tier] += r.filter { !recomputedRows.contains($0) }.count }

        // ---- decode ----
        let d = core.decode(from: logits, cache: work, request: request, start: start, cancel: cancel, onEvent: onEvent)
        stats.ttftSeconds = d.ttft
        stats.decodeSeconds = d.decodeSeconds
        stats.generatedTokens = d.tokens.count + (d.endedWithEOG ? 1 : 0)
        var result = core.result(d, stats: stats, request: request, cache: work, promptCount: prompt.count)

        // ---- after the answer: finish encoding it for the next turn, store chunks and segments ----
        // The kernels compute a token's KV the same whether it is decoded or prefilled in a batch,
        // so the answer's KV left in the cache by decoding (or by scoring) is already exactly what
        // the baseline's prefill of the next prompt computes. Only the rest of the answer + turn
        // suffix (at least the last sampled token, which was never fed back) runs now.
        let t1 = EngineCore.now()
        let firstApproximate = min(exactPrefix < prefix ? exactPrefix : prompt.count,
                                   candidates.isEmpty ? prompt.count : prefix + candidates[0])
        let tail = d.tokens + request.turnSuffix
        var kept = 0
        let heldTokens = work.tokens, heldPositions = work.positions
        while kept < tail.count && prompt.count + kept < work.count
                && heldTokens[prompt.count + kept] == tail[kept]
                && heldPositions[prompt.count + kept] == Int32(prompt.count + kept) { kept += 1 }
        work.truncate(to: prompt.count + kept)
        let encoded = cancel?.isCancelled != true
        if encoded && kept < tail.count {
            core.ctx.forward(tokens: Array(tail[kept...]), positions: (kept..<tail.count).map { Int32(prompt.count + $0) },
                             cache: work, logits: .none)
        }
        live = work
        liveExact = firstApproximate == prompt.count ? work.count : firstApproximate
        // The prompt's own chain too (its partial tail differs from prompt + answer's), so the
        // same short prompt asked again, after a restart or a new conversation, is found.
        storeChunks(upTo: min(prompt.count, liveExact), rewriteFrom: rewriteChunksFrom)
        storeChunks(upTo: liveExact, rewriteFrom: rewriteChunksFrom)
        storeSegments(request.segments, skipping: blendedSegments, answer: encoded ? tail : nil)
        stats.postAnswerSeconds = EngineCore.seconds(t1, EngineCore.now())

        let after = store.stats
        stats.kvBytesLive = live.bytes
        stats.tiers = after.tiers.indices.map { i in
            let a = after.tiers[i], b = storeBefore.tiers[i]
            var t = TierFigures(name: a.name)
            t.hitTokens = hitTokens[i]
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

    /// Documents and earlier turns of enough tokens, not at the very end, can be reused as segments.
    private func isReusable(_ seg: PromptSegment, endsBefore: Bool) -> Bool {
        guard endsBefore, seg.tokens.count >= options.minSegmentTokens else { return false }
        switch seg.role {
        case .document, .history: return true
        case .system, .question: return false
        }
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

    // MARK: - store

    /// Appends a stored entry's KV (at its stored positions) to `cache`; returns the slots.
    /// Appends a stored entry's KV from token `skip` on (at its stored positions) to `cache`.
    @discardableResult
    private func load(_ entry: EncodedKV, tokens: [Int32], into cache: KVState, from skip: Int = 0) -> Range<Int> {
        let positions = entry.positions
        let r = cache.append(tokens: Array(tokens[skip...]), positions: Array(positions[skip...]))
        let d = cache.kvDim
        var tk = [Float](repeating: 0, count: entry.tokenCount * d), tv = tk
        tk.withUnsafeMutableBufferPointer { kb in
            tv.withUnsafeMutableBufferPointer { vb in
                for l in 0..<cache.config.layers {
                    entry.decode(.k, layer: l, into: kb.baseAddress!)
                    entry.decode(.v, layer: l, into: vb.baseAddress!)
                    cache.write(layer: l, slot: r.lowerBound, k: kb.baseAddress! + skip * d, v: vb.baseAddress! + skip * d, count: r.count)
                }
            }
        }
        return r
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
