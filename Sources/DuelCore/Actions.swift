import Engine

/// Something that happened. Recording these and feeding them back into `reduce` replays a session
/// (`ActionCoding.swift` writes them as `[kind, payload]`; `origin` says who did it).
public enum Action: Sendable, Hashable {
    // The person.
    case questionSubmitted(String)
    case focusChanged(Focus)
    case blockSelected(Int)
    case blockMoved(from: Int, to: Int)
    case blockToggled(id: String)
    case helpToggled
    /// The TTFT breakdown under each pane's meters was shown or hidden.
    case breakdownToggled
    case inputEdited(LineEditor.Edit)
    case historyBrowsed(older: Bool)
    case scrolled(lines: Int)
    case resetRequested
    case newConversationRequested
    case quitRequested
    /// A marker for replays and exports (pause points, chapter marks), with an optional label.
    case markerDropped(label: String?)

    // The terminal and the clock.
    case resized(cols: Int, rows: Int)
    case tick(now: Double)
    case rssSampled(bytes: Int)
    /// The cached engine's store tiers, sampled (the remote tier's state changes between requests).
    case storeSampled(tiers: [TierStats])

    // Loading.
    case loadingProgress(fraction: Double, message: String)
    case loaded
    case loadFailed(String)

    // The engines (delivered by the session controller).
    /// The engine began this request (with `alternate`, the baseline starts after the cached side).
    case engineStarted(pane: PaneID)
    case prefillProgress(pane: PaneID, done: Int, total: Int)
    case firstTokenArrived(pane: PaneID, ttft: Double)
    case tokenArrived(pane: PaneID, text: String)
    case answerFinished(pane: PaneID, stats: RequestStats, cumulative: RequestStats)
    case engineFailed(pane: PaneID, message: String)
    case divergenceMeasured(Divergence)
    /// The baseline's answer as token ids: the history keeps them, so the next prompt holds exactly
    /// the tokens the engines produced.
    case answerTokensKnown([Int32])
    /// Both answers are in; the turn joins the history (with the baseline's answer).
    case turnCompleted
    case cacheStatesUpdated([String: SegmentCacheState])
    case blockTokenCounts([String: Int])
    case enginesReset(cumulative: RequestStats)
}

/// Who caused an action: the person (or a script acting for them), an engine, or the clock and terminal.
public enum ActionOrigin: String, Sendable, Hashable, Codable {
    case person, engine, clock
}

extension Action {
    public var origin: ActionOrigin {
        switch self {
        case .questionSubmitted, .focusChanged, .blockSelected, .blockMoved, .blockToggled, .helpToggled, .breakdownToggled,
             .inputEdited, .historyBrowsed, .scrolled, .resetRequested, .newConversationRequested,
             .quitRequested, .markerDropped:
            return .person
        case .resized, .tick, .rssSampled:
            return .clock
        case .loadingProgress, .loaded, .loadFailed, .engineStarted, .prefillProgress, .firstTokenArrived,
             .tokenArrived, .answerFinished, .engineFailed, .divergenceMeasured, .answerTokensKnown,
             .turnCompleted, .cacheStatesUpdated, .blockTokenCounts, .enginesReset, .storeSampled:
            return .engine
        }
    }
}

/// Sees every action the app loop reduces, on the UI thread, with the loop's clock (a recorder).
public protocol ActionSink: AnyObject {
    func observe(_ action: Action, at now: Double)
}

/// Supplies actions on the person's behalf (autoplay, a live re-run). Polled once per loop turn
/// with the state and the injected clock.
public protocol ActionSource: AnyObject {
    /// Actions to reduce now.
    func poll(_ state: AppState, now: Double) -> [Action]
    /// False once the source is done or the person took over; the keyboard then drives alone.
    var isActive: Bool { get }
    /// A key arrived from the person: the source stops and control goes back to them.
    func handBack()
}

/// What the reducer asks the outside world to do.
public enum Effect: Sendable, Hashable {
    case startTurn(TurnRequest)
    case cancelTurn
    case resetEngines
    case quit
}

/// One question for both engines, with the exact context it is asked in.
public struct TurnRequest: Sendable, Hashable {
    public var system: String
    public var documents: [Document]
    public var history: [Turn]
    public var question: String
    public var maxTokens: Int
    public var sampling: Sampling
    public init(system: String, documents: [Document], history: [Turn], question: String,
                maxTokens: Int, sampling: Sampling = .greedy) {
        self.system = system
        self.documents = documents
        self.history = history
        self.question = question
        self.maxTokens = maxTokens
        self.sampling = sampling
    }
}
