import Engine

/// One context block in the panel, in prompt order.
public struct Block: Sendable, Hashable {
    public var document: Document
    public var tokenCount: Int?
    public var included: Bool
    public var cache: SegmentCacheState
    public var id: String { document.id }
    public init(document: Document, tokenCount: Int? = nil, included: Bool = true,
                cache: SegmentCacheState = .notCached) {
        self.document = document
        self.tokenCount = tokenCount
        self.included = included
        self.cache = cache
    }
}

public enum TranscriptEntry: Sendable, Hashable {
    case user(String)
    case answer(String, complete: Bool)
    /// A dim one-liner: errors, separators.
    case note(String)
    /// The numbers of a finished answer, shown under it.
    case turnStats(RequestStats)
}

public enum PanePhase: Sendable, Hashable {
    case idle
    /// `alternate` schedule: waiting for the other engine to finish first.
    case queued
    /// Question sent, no first token yet; TTFT ticks live from `since`.
    case waiting(since: Double)
    case streaming(ttft: Double, since: Double, tokens: Int)
    case finished
    case failed(String)
}

public struct PaneState: Sendable, Hashable {
    public var transcript: [TranscriptEntry] = []
    public var phase: PanePhase = .idle
    /// Prefill progress of the current request, when the engine reports it.
    public var prefill: (done: Int, total: Int)? {
        get { prefillDone.map { ($0, prefillTotal) } }
        set { prefillDone = newValue?.done; prefillTotal = newValue?.total ?? 0 }
    }
    private var prefillDone: Int?
    private var prefillTotal = 0
    /// Statistics of the last finished request.
    public var lastStats: RequestStats?
    /// The engine's totals since the last reset.
    public var cumulative = RequestStats()
    /// TTFT of each finished turn, oldest first.
    public var ttftHistory: [Double] = []
    public init() {}

    /// The text of the newest answer entry.
    public var lastAnswer: String? {
        for e in transcript.reversed() {
            if case .answer(let s, _) = e { return s }
        }
        return nil
    }

    public var isBusy: Bool {
        switch phase {
        case .queued, .waiting, .streaming: return true
        default: return false
        }
    }
}

public struct LoadingState: Sendable, Hashable {
    public var fraction: Double
    public var message: String
    public init(fraction: Double, message: String) {
        self.fraction = fraction
        self.message = message
    }
}

/// The whole UI state, as a value. Only `reduce` changes it.
public struct AppState: Sendable, Hashable {
    public var info: SessionInfo
    public var systemPrompt: String
    public var maxTokens: Int
    public var sampling: Sampling
    /// Non-nil while the model loads.
    public var loading: LoadingState?
    public var fatalError: String?
    public var cols: Int
    public var rows: Int
    /// Injected clock, seconds (monotonic); set by `.tick`.
    public var now: Double
    public var rssBytes: Int = 0
    /// The cached engine's store tiers, sampled about once a second (sizes, remote state).
    public var storeTiers: [TierStats] = []
    public var focus: Focus = .input
    public var showHelp = false
    /// Each pane shows its last TTFT split into parts under its meters.
    public var showBreakdown = false
    public var input = LineEditor()
    public var questionHistory: [String] = []
    /// Index into `questionHistory` while browsing with ↑/↓; nil when editing a fresh line.
    public var historyCursor: Int?
    public var historyDraft = ""
    public var blocks: [Block]
    public var selectedBlock = 0
    public var panes: [PaneState] = [PaneState(), PaneState()]
    /// The conversation sent to both engines, built from the baseline's answers.
    public var history: [Turn] = []
    public var pendingQuestion: String?
    /// Token ids of the baseline's answer to the pending question, once known.
    public var pendingAnswerTokens: [Int32]?
    /// The answer check of the last turn both engines finished (kept until the next one arrives).
    public var divergence: Divergence?
    /// The turn (1-based) `divergence` belongs to.
    public var divergenceTurn = 0
    /// Transcript scroll, in lines back from the newest.
    public var scroll = 0
    /// One-line notice shown above the input line.
    public var notice: String?
    public var turnsCompleted = 0
    public var quitting = false
    /// Markers dropped so far (for replays).
    public var markerCount = 0
    /// How this screen came about (live, recording, replay, live re-run). Set by the loop that runs
    /// the screen, like the terminal size it draws at; never recorded.
    public var chrome = SessionChrome()

    public init(config: DuelConfig, cols: Int = 160, rows: Int = 45, now: Double = 0, loading: Bool = true) {
        info = config.info
        systemPrompt = config.systemPrompt
        maxTokens = config.maxTokens
        sampling = config.sampling
        self.loading = loading ? LoadingState(fraction: 0, message: "Loading \(config.info.modelName)…") : nil
        self.cols = cols
        self.rows = rows
        self.now = now
        var blocks: [Block] = []
        if let order = config.initialOrder {
            let byID = Dictionary(config.documents.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            for id in order { if let d = byID[id] { blocks.append(Block(document: d, included: true)) } }
            for d in config.documents where !order.contains(d.id) { blocks.append(Block(document: d, included: false)) }
        } else {
            blocks = config.documents.map { Block(document: $0, included: true) }
        }
        self.blocks = blocks
    }

    public subscript(pane: PaneID) -> PaneState {
        get { panes[pane.rawValue] }
        set { panes[pane.rawValue] = newValue }
    }

    public var turnInFlight: Bool { pendingQuestion != nil }

    /// Included documents, in prompt order.
    public var promptDocuments: [Document] { blocks.filter(\.included).map(\.document) }

    /// Baseline TTFT / cached TTFT of the last turn both finished.
    public var speedup: Double? {
        guard let c = self[.cached].ttftHistory.last, let b = self[.baseline].ttftHistory.last,
              self[.cached].ttftHistory.count == self[.baseline].ttftHistory.count, c > 0 else { return nil }
        return b / c
    }

    /// Live TTFT of a pane: ticking while waiting, else the last final value.
    public func ttft(_ pane: PaneID) -> (seconds: Double, live: Bool)? {
        let p = self[pane]
        switch p.phase {
        case .waiting(let since): return (max(0, now - since), true)
        case .streaming(let t, _, _): return (t, false)
        default: return p.lastStats.map { ($0.ttftSeconds, false) }
        }
    }
}

/// What the screen says about the session around the duel: recording, replaying, re-running live.
public struct SessionChrome: Sendable, Hashable {
    public enum Mode: Sendable, Hashable {
        case live, replay, liveRerun
    }
    public var mode: Mode = .live
    /// `chat --record`: the top bar shows ● REC.
    public var recording = false
    /// `--autoplay` is driving (any key takes over).
    public var autoplay = false
    /// `kvduel replay`: the status line (position, length, speed, next marker).
    public var status: String?
    /// `replay --live` at the end: recorded and live TTFT per turn.
    public var comparison: [TTFTComparison]?
    public init() {}

    /// The top bar's tag, if any.
    public var badge: String? {
        switch mode {
        case .replay: return "▶ REPLAY"
        case .liveRerun: return recording ? "● REC · LIVE RE-RUN" : "⟳ LIVE RE-RUN"
        case .live:
            if recording { return autoplay ? "● REC · AUTOPLAY" : "● REC" }
            return autoplay ? "AUTOPLAY" : nil
        }
    }
}

/// One turn's TTFT as recorded and as measured again live (seconds; nil when not measured).
public struct TTFTComparison: Sendable, Hashable {
    public var turn: Int
    public var recorded: (cached: Double?, baseline: Double?)
    public var live: (cached: Double?, baseline: Double?)
    public init(turn: Int, recorded: (Double?, Double?), live: (Double?, Double?)) {
        self.turn = turn
        self.recorded = recorded
        self.live = live
    }
    public static func == (a: Self, b: Self) -> Bool {
        a.turn == b.turn && a.recorded == b.recorded && a.live == b.live
    }
    public func hash(into h: inout Hasher) {
        h.combine(turn); h.combine(recorded.cached); h.combine(recorded.baseline)
        h.combine(live.cached); h.combine(live.baseline)
    }
}
