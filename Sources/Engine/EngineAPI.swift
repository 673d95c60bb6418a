import KVCache
@_exported import struct KVCache.TierStats

// The contract both panes' engines implement. A request is an ordered list of segments, each
// carrying its own token ids, so the cached and the baseline engine see exactly the same prompt.

/// One part of a prompt: system prompt, a context document, an earlier turn, or the new question.
public struct PromptSegment: Sendable, Hashable {
    public enum Role: Sendable, Hashable {
        case system
        case document(id: String)
        case history
        case question
    }
    public var role: Role
    public var tokens: [Int32]
    public init(role: Role, tokens: [Int32]) {
        self.role = role
        self.tokens = tokens
    }
}

public struct Sampling: Sendable, Hashable {
    public var temperature: Float = 0   // 0 = greedy
    public var topK: Int = 0            // 0 = off
    public var topP: Float = 1          // 1 = off
    public var seed: UInt64 = 0
    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }
    public static let greedy = Sampling()
}

public struct EngineRequest: Sendable {
    public var segments: [PromptSegment]
    public var maxTokens: Int
    public var sampling: Sampling
    /// When the request was submitted (`DispatchTime` nanoseconds), before tokenising: TTFT counts
    /// from here. nil: from the call to `generate`.
    public var submittedAt: UInt64?
    /// Tokens that close an assistant turn in the chat format (ChatML: `<|im_end|>`, `\n`). The
    /// cached engine completes the answer's KV with these after answering, so the next turn, whose history
    /// holds exactly these tokens, reuses them.
    public var turnSuffix: [Int32]
    /// Return the logits of every step of the engine's own answer (and its stop token),
    /// teacher-forced through the batched path after generating (for quality measurements).
    public var collectLogits: Bool
    /// After generating, score this continuation teacher-forced from the same prompt cache and
    /// return its per-step logits (the bench's answer KL). Not timed into TTFT.
    public var teacherForce: [Int32]?

    public init(segments: [PromptSegment], maxTokens: Int, sampling: Sampling = .greedy,
                submittedAt: UInt64? = nil, turnSuffix: [Int32] = [], collectLogits: Bool = false,
                teacherForce: [Int32]? = nil) {
        self.segments = segments
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.submittedAt = submittedAt
        self.turnSuffix = turnSuffix
        self.collectLogits = collectLogits
        self.teacherForce = teacherForce
    }
    public var promptTokens: [Int32] { segments.flatMap(\.tokens) }
}

/// Per-request statistics. Every token of the prompt is counted in exactly one of
/// `reusedExact`, `reusedBlended`, `recomputed`, `computedFresh`.
public struct RequestStats: Sendable, Hashable {
    public var promptTokens = 0
    public var reusedExact = 0        // KV taken as is from a stored prefix (exact)
    public var reusedBlended = 0      // KV taken from a stored segment, re-positioned, not recomputed
    public var recomputed = 0         // tokens of reused segments recomputed (CacheBlend)
    public var computedFresh = 0      // tokens with no stored KV, computed by prefill
    public var generatedTokens = 0
    public var ttftSeconds = 0.0
    public var lookupSeconds = 0.0
    public var loadSeconds = 0.0
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    public var kvBytesLive = 0        // KV bytes of the current context
    /// Per store tier, fastest first (RAM, disk, remote): where the reused tokens came from, and
    /// each tier's traffic. Empty for an engine without a store.
    public var tiers: [TierFigures] = []
    public var evictions = 0
    public var recomputeRatio = 0.0   // setting in force
    /// Reused-segment tokens run through the early check layers to choose what to recompute.
    public var checkedTokens = 0
    /// Time after the answer spent re-encoding it for the next turn (not part of TTFT).
    public var postAnswerSeconds = 0.0
    /// Where the time to first token went; its parts add up to `ttftSeconds`.
    public var breakdown = TTFTBreakdown()
    /// For a turn whose stored prefix was loaded and computed at once (Cake): the meeting point.
    public var cake: CakeSplit?

    public init() {}

    /// Tokens whose KV was not computed for this request: exact plus blended (recomputed excluded).
    public var reusedTokens: Int { reusedExact + reusedBlended }
    /// hit rate = reused tokens / prompt tokens, in 0...1.
    public var hitRate: Double { promptTokens == 0 ? 0 : Double(reusedTokens) / Double(promptTokens) }
    public var decodeTokensPerSecond: Double {
        decodeSeconds > 0 && generatedTokens > 1 ? Double(generatedTokens - 1) / decodeSeconds : 0
    }

    /// The figures of the tier named `name` ("ram", "disk", "remote"), if the engine has one.
    public subscript(tier name: String) -> TierFigures? {
        get { tiers.first { $0.name == name } }
        set {
            if let i = tiers.firstIndex(where: { $0.name == name }) {
                if let newValue { tiers[i] = newValue } else { tiers.remove(at: i) }
            } else if let newValue {
                tiers.append(newValue)
            }
        }
    }

    /// Store bytes in RAM / on disk after the request.
    public var storeBytesRAM: Int {
        get { self[tier: "ram"]?.storeBytes ?? 0 }
        set { var t = self[tier: "ram"] ?? TierFigures(name: "ram"); t.storeBytes = newValue; self[tier: "ram"] = t }
    }
    public var storeBytesDisk: Int {
        get { self[tier: "disk"]?.storeBytes ?? 0 }
        set { var t = self[tier: "disk"] ?? TierFigures(name: "disk"); t.storeBytes = newValue; self[tier: "disk"] = t }
    }
}

/// The time to first token, split by what it was spent on. The parts add up to the TTFT:
/// `other` is what the named parts leave (sampling the first token, bookkeeping, scheduling).
///
/// Work that runs at the same time as other work (Cake's I/O thread loading from the back while
/// the compute side prefills from the front) is counted once, on the critical path: loading time
/// hidden behind compute is in `overlappedLoadSeconds`, which is not one of the parts.
/// Inside one batched forward pass that mixes roles (CacheBlend: check layers over loaded and new
/// rows, then recomputed and new rows), the pass's time is shared between the roles by row count.
public struct TTFTBreakdown: Sendable, Hashable, Codable {
    /// From submission to the engine's start: tokenising the turn (and waiting for the engine).
    public var tokenize = 0.0
    /// Hashing the prompt's chunks and segments and asking the tiers what they hold.
    public var lookup = 0.0
    /// Reading stored KV and decoding it into the live cache, per tier (fastest first), on the
    /// critical path. Parallel to `RequestStats.tiers`.
    public var load: [TierSeconds] = []
    /// RoPE re-rotation of reused segments' keys to their new positions.
    public var rerotate = 0.0
    /// CacheBlend's check layers: choosing which reused tokens to recompute.
    public var blendCheck = 0.0
    /// Recomputing the chosen reused tokens.
    public var recompute = 0.0
    /// Prefill of the tokens with no stored KV (and of a stored prefix the engine chose to compute).
    public var computeNew = 0.0
    /// What the parts above leave of the TTFT.
    public var other = 0.0
    /// Loading that ran beside compute and so is not on the critical path (not one of the parts).
    public var overlappedLoad = 0.0

    public struct TierSeconds: Sendable, Hashable, Codable {
        public var tier: String
        public var seconds: Double
        public init(tier: String, seconds: Double) { self.tier = tier; self.seconds = seconds }
    }

    public init() {}

    public var loadTotal: Double { load.reduce(0) { $0 + $1.seconds } }
    /// The named parts, without `other`.
    public var measured: Double { tokenize + lookup + loadTotal + rerotate + blendCheck + recompute + computeNew }
    /// The sum of all parts: equals the TTFT once `close(ttft:)` has run.
    public var total: Double { measured + other }

    /// Sets `other` so that the parts add up to `ttft` (never below 0: if measured parts exceed
    /// the TTFT by clock granularity, `other` is 0).
    public mutating func close(ttft: Double) { other = max(0, ttft - measured) }

    public mutating func addLoad(_ seconds: Double, tier: String) {
        if let i = load.firstIndex(where: { $0.tier == tier }) { load[i].seconds += seconds }
        else { load.append(TierSeconds(tier: tier, seconds: seconds)) }
    }

    /// Named parts with their seconds, in display order (load per tier), `other` last.
    public var parts: [(name: String, seconds: Double)] {
        var p: [(String, Double)] = [("tokenize", tokenize), ("lookup", lookup)]
        for l in load { p.append(("load " + l.tier, l.seconds)) }
        p += [("re-rotate", rerotate), ("blend check", blendCheck), ("recompute", recompute),
              ("compute new", computeNew), ("other", other)]
        return p
    }

    public mutating func accumulate(_ b: TTFTBreakdown) {
        tokenize += b.tokenize; lookup += b.lookup; rerotate += b.rerotate; blendCheck += b.blendCheck
        recompute += b.recompute; computeNew += b.computeNew; other += b.other; overlappedLoad += b.overlappedLoad
        for l in b.load { addLoad(l.seconds, tier: l.tier) }
    }
}

/// Where Cake's two sides met in a turn's stored prefix: the compute side prefilled `computed`
/// from the front, the I/O side loaded `loaded` from the back (token ranges of the prompt).
public struct CakeSplit: Sendable, Hashable, Codable {
    public var computed: Range<Int>
    public var loaded: Range<Int>
    /// The tier the loaded chunks came from ("remote", "disk").
    public var tier: String
    public init(computed: Range<Int>, loaded: Range<Int>, tier: String) {
        self.computed = computed
        self.loaded = loaded
        self.tier = tier
    }
}

/// How the cached engine gets a stored prefix that sits in a slow tier (disk, remote).
public enum LoadStrategy: String, Sendable, Hashable, CaseIterable, Codable {
    /// Compute from the front while an I/O thread loads from the back; stop where they meet.
    case cake
    /// Load every stored chunk (one batched read), compute only what is not stored.
    case load
    /// Ignore the slow tiers' chunks and prefill them (RAM and the live context are still used).
    case compute
}

/// One store tier's part in a request (in `cumulative`: in all requests since the reset).
/// Traffic fields are this request's; `storeBytes`, the error counts and `state` are the tier's
/// totals / state after it.
public struct TierFigures: Sendable, Hashable, Codable {
    public var name: String
    /// Prompt tokens whose reused KV (exact or blended, recomputed excluded) came from this tier.
    /// The live context of the previous turn counts as "ram". Sums to `RequestStats.reusedTokens`.
    public var hitTokens = 0
    /// Bytes the tier holds after the request.
    public var storeBytes = 0
    /// Entry bytes read / written (remote: acknowledged by the server) during the request.
    public var bytesRead = 0
    public var bytesWritten = 0
    public var roundTrips = 0
    /// Read time on the request path, seconds (remote: the pipelined look-up).
    public var readSeconds = 0.0
    /// Totals since the tier opened: entries rejected (corrupt, truncated, foreign, bad MAC),
    /// failed writes, writes dropped (full queue, unreachable).
    public var rejectedEntries = 0
    public var writeErrors = 0
    public var droppedWrites = 0
    /// "ok", "unreachable", "retrying" for a tier with a connection; nil otherwise.
    public var state: String?

    public init(name: String) {
        self.name = name
    }
}

public enum EngineEvent: Sendable {
    case started(promptTokens: Int)
    case prefillProgress(done: Int, total: Int)
    case firstToken(ttftSeconds: Double)
    case token(id: Int32, text: String)
    case finished(RequestStats)
}

public enum SegmentCacheState: Sendable, Hashable {
    case cached
    case partial(Double)   // fraction of tokens held
    case notCached
}

public struct GenerationResult: Sendable {
    public var tokens: [Int32]
    public var text: String
    public var stats: RequestStats
    /// The end-of-generation token that stopped the answer, if one did.
    public var stopToken: Int32?
    /// Logits that produced the first token.
    public var firstTokenLogits: [Float]?
    /// Teacher-forced logits of every step of the answer (and its stop token), when `collectLogits` was set.
    public var stepLogits: [[Float]]?
    /// Teacher-forced logits of `teacherForce`, one array per token of it.
    public var teacherLogits: [[Float]]?
    public init(tokens: [Int32], text: String, stats: RequestStats, firstTokenLogits: [Float]? = nil,
                stepLogits: [[Float]]? = nil, teacherLogits: [[Float]]? = nil) {
        self.tokens = tokens
        self.text = text
        self.stats = stats
        self.firstTokenLogits = firstTokenLogits
        self.stepLogits = stepLogits
        self.teacherLogits = teacherLogits
    }
}

public enum EngineError: Error, CustomStringConvertible, Equatable {
    case emptyPrompt
    case promptTooLong(tokens: Int, maxTokens: Int, context: Int)
    case invalidToken(Int32)

    public var description: String {
        switch self {
        case .emptyPrompt: return "the prompt is empty"
        case .promptTooLong(let n, let m, let c):
            return "prompt of \(n) tokens plus \(m) to generate exceeds the model's context of \(c) tokens"
        case .invalidToken(let t): return "token id \(t) is outside the vocabulary"
        }
    }
}

/// Set from any thread to stop a generation early; the engine checks it between tokens.
public final class CancelFlag: @unchecked Sendable {
    private var value = false
    public init() {}
    public var isCancelled: Bool { value }
    public func cancel() { value = true }
}

public protocol InferenceEngine: AnyObject {
    /// "cached" or "baseline".
    var label: String { get }
    /// Runs one request on the calling thread, streaming events as they happen.
    func generate(_ request: EngineRequest, cancel: CancelFlag?,
                  onEvent: (EngineEvent) -> Void) throws -> GenerationResult
    /// Back to cold: drop every cached KV and all statistics.
    func reset()
    /// Whether this engine would reuse a segment with these tokens.
    func cacheState(of tokens: [Int32]) -> SegmentCacheState
    /// Sum over all requests since the last reset.
    var cumulative: RequestStats { get }
    /// KV bytes currently held: the live context and the store tiers.
    var memory: MemoryStats { get }
    /// The store's tiers now (thread-safe; the UI samples it for the remote tier's state).
    var storeTiers: [TierStats] { get }
}

public struct MemoryStats: Sendable, Hashable {
    public var liveKVBytes = 0
    /// One per store tier, fastest first.
    public var storeTiers: [TierStats] = []
    public init() {}

    public var storeRAMBytes: Int { storeTiers.first { $0.name == "ram" }?.bytes ?? 0 }
    public var storeDiskBytes: Int { storeTiers.first { $0.name == "disk" }?.bytes ?? 0 }
    public var storeRAMCapacity: Int { storeTiers.first { $0.name == "ram" }?.capacityBytes ?? 0 }
    /// Bytes held by every store tier together.
    public var storeBytes: Int { storeTiers.reduce(0) { $0 + $1.bytes } }
}

extension InferenceEngine {
    /// Engines that keep nothing between requests hold no KV memory outside a request.
    public var memory: MemoryStats { MemoryStats() }
    public var storeTiers: [TierStats] { [] }
}
