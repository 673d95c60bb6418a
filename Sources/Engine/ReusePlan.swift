import KVCache

/// What the cached engine does with each token of a prompt, decided before any KV is loaded or
/// computed: `plan`, then `execute`, then `persist` (see `ReuseEngine.generate`).
///
/// The steps tile the prompt after the live part, in token order: `live + Σ step tokens = prompt`.
/// Slots equal prompt positions: slot `i` of the cache holds prompt token `i` at position `i`.
public struct ReusePlan: Equatable, Sendable {
    /// A stored prefix chunk (key = hash(parent, chunk tokens)) supplying prompt tokens `tokens`.
    public struct Chunk: Equatable, Sendable {
        /// Index into the matched chain of stored chunks (`PrefixMatch.keys`).
        public var key: Int
        /// Prompt tokens this chunk supplies (a sub-range of the stored chunk's when the live
        /// context holds its head, or when the last prompt token must be computed).
        public var tokens: Range<Int>
        /// Tokens at the start of the stored chunk that are not used.
        public var skip: Int
        /// Index in the store's tiers (0 = RAM) of the fastest tier holding it.
        public var tier: Int
        public init(key: Int, tokens: Range<Int>, skip: Int, tier: Int) {
            self.key = key
            self.tokens = tokens
            self.skip = skip
            self.tier = tier
        }
    }

    /// A stored segment (a document or an earlier turn) reused at a new place: re-rotated and
    /// partly recomputed (CacheBlend).
    public struct Blend: Equatable, Sendable {
        public var segment: Int        // index into the request's segments
        public var tokens: Range<Int>
        public var tier: Int
        public init(segment: Int, tokens: Range<Int>, tier: Int) {
            self.segment = segment
            self.tokens = tokens
            self.tier = tier
        }
    }

    public enum Step: Equatable, Sendable {
        /// Load a stored prefix chunk as is (exact).
        case load(Chunk)
        /// Stored prefix chunks in a slow tier: compute from the front while an I/O thread loads
        /// from the back; they stop where they meet (Cake).
        case cake([Chunk])
        /// Load a stored segment, move it, recompute a share of it.
        case blend(Blend)
        /// Prefill these tokens.
        case compute(Range<Int>)

        public var tokens: Range<Int> {
            switch self {
            case .load(let c): return c.tokens
            case .cake(let cs): return cs.first!.tokens.lowerBound..<cs.last!.tokens.upperBound
            case .blend(let b): return b.tokens
            case .compute(let r): return r
            }
        }
    }

    public var promptCount: Int
    /// Slots `0..<live` are kept from the previous turn's live context.
    public var live: Int
    /// Of those, the first `liveExact` hold exact KV; the rest is a previous turn's blend,
    /// reused as is (counted as blended).
    public var liveExact: Int
    public var steps: [Step]

    public init(promptCount: Int, live: Int, liveExact: Int, steps: [Step]) {
        self.promptCount = promptCount
        self.live = live
        self.liveExact = liveExact
        self.steps = steps
    }

    /// End of the reused prefix (live context and stored chunks).
    public var prefixEnd: Int {
        var end = live
        for s in steps {
            switch s {
            case .load, .cake: end = s.tokens.upperBound
            default: return end
            }
        }
        return end
    }

    /// Tokens in compute steps (not counting what Cake's compute side will take).
    public var computeTokens: Int { steps.reduce(0) { if case .compute(let r) = $1 { return $0 + r.count }; return $0 } }
}

extension ReusePlan {
    /// What the planner needs to know about the request, the live context and the store.
    public struct Input {
        public var segments: [PromptSegment]
        /// Tokens held by the previous turn's live context, and how many of them are exact.
        public var liveTokens: [Int32]
        public var liveExact: Int
        /// The longest stored prefix: its chunks' prompt token ranges and tiers, in order.
        public var storedChain: [(tokens: Range<Int>, tier: Int)]
        /// The tier of a reusable segment's stored KV (by segment index), nil when not stored.
        public var segmentTier: (Int) -> Int?
        public var minSegmentTokens: Int
        public var strategy: LoadStrategy

        public init(segments: [PromptSegment], liveTokens: [Int32], liveExact: Int,
                    storedChain: [(tokens: Range<Int>, tier: Int)], segmentTier: @escaping (Int) -> Int?,
                    minSegmentTokens: Int, strategy: LoadStrategy) {
            self.segments = segments
            self.liveTokens = liveTokens
            self.liveExact = liveExact
            self.storedChain = storedChain
            self.segmentTier = segmentTier
            self.minSegmentTokens = minSegmentTokens
            self.strategy = strategy
        }
    }

    /// Documents and earlier turns of enough tokens, not at the very end, can be reused as segments.
    static func isReusable(_ seg: PromptSegment, endsBefore: Bool, minTokens: Int) -> Bool {
        guard endsBefore, seg.tokens.count >= minTokens else { return false }
        switch seg.role {
        case .document, .history: return true
        case .system, .question: return false
        }
    }

    /// The plan, in order of preference for each token:
    /// 1. the longest exact prefix: the live context, extended by stored chunks;
    /// 2. stored segments after it (blend);
    /// 3. compute the rest. The last prompt token is always computed (its logits give the first token).
    /// Stored chunks in a slow tier (index > 0) are loaded, computed, or both at once (Cake), as
    /// `strategy` says; chunks in RAM are always loaded.
    public static func make(_ input: Input) -> ReusePlan {
        let prompt = input.segments.flatMap(\.tokens)
        let n = prompt.count
        precondition(n > 0)

        // ---- 1. prefix: live context or stored chunk chain ----
        var liveMatch = 0
        let lt = input.liveTokens
        while liveMatch < min(lt.count, n) && lt[liveMatch] == prompt[liveMatch] { liveMatch += 1 }
        let chainEnd = input.storedChain.last?.tokens.upperBound ?? 0
        var live: Int
        var chunks: [Chunk] = []
        if liveMatch > 0 && liveMatch >= chainEnd {
            // The live context covers at least what the store has: take it all, blended tail included.
            live = liveMatch
        } else {
            // The exact part of the live context, extended by the stored chain (chunks it already
            // covers are not loaded).
            live = min(liveMatch, input.liveExact)
            for (i, c) in input.storedChain.enumerated() where c.tokens.upperBound > live {
                let from = max(c.tokens.lowerBound, live)
                chunks.append(Chunk(key: i, tokens: from..<c.tokens.upperBound, skip: from - c.tokens.lowerBound, tier: c.tier))
            }
        }
        var prefix = chunks.last?.tokens.upperBound ?? live

        func trim(to p: Int) {
            prefix = p
            live = min(live, p)
            chunks = chunks.compactMap { c in
                guard c.tokens.lowerBound < p else { return nil }
                var c = c
                c.tokens = c.tokens.lowerBound..<min(c.tokens.upperBound, p)
                return c
            }
        }
        // A prefix that ends inside a stored segment (e.g. two documents sharing their first
        // header tokens) backs off to the segment's start, so the segment is reused whole.
        var segStart = 0
        for (si, seg) in input.segments.enumerated() {
            let segEnd = segStart + seg.tokens.count
            if segStart < prefix && prefix < segEnd {
                if isReusable(seg, endsBefore: segEnd < n, minTokens: input.minSegmentTokens),
                   input.segmentTier(si) != nil {
                    trim(to: segStart)
                }
                break
            }
            segStart = segEnd
        }
        if prefix == n { trim(to: n - 1) }

        // ---- the strategy for chunks in slow tiers ----
        var steps: [Step] = []
        func addCompute(_ r: Range<Int>) {
            guard !r.isEmpty else { return }
            if case .compute(let last)? = steps.last, last.upperBound == r.lowerBound {
                steps[steps.count - 1] = .compute(last.lowerBound..<r.upperBound)
            } else {
                steps.append(.compute(r))
            }
        }
        switch input.strategy {
        case .load:
            steps += chunks.map { .load($0) }
        case .compute:
            for c in chunks { if c.tier == 0 { steps.append(.load(c)) } else { addCompute(c.tokens) } }
        case .cake:
            // From the first chunk in a slow tier to the end of the prefix: both sides at once.
            if let first = chunks.firstIndex(where: { $0.tier > 0 }) {
                steps += chunks[..<first].map { .load($0) }
                steps.append(.cake(Array(chunks[first...])))
            } else {
                steps += chunks.map { .load($0) }
            }
        }

        // ---- 2. segments after the prefix: reuse (blend) or compute ----
        var offset = 0
        for (si, seg) in input.segments.enumerated() {
            let a = offset, b = offset + seg.tokens.count
            offset = b
            guard b > prefix else { continue }
            let from = max(a, prefix)
            if from == a, isReusable(seg, endsBefore: b < n, minTokens: input.minSegmentTokens),
               let tier = input.segmentTier(si) {
                steps.append(.blend(Blend(segment: si, tokens: a..<b, tier: tier)))
            } else {
                addCompute(from..<b)
            }
        }
        return ReusePlan(promptCount: n, live: live, liveExact: min(live, input.liveExact), steps: steps)
    }
}
