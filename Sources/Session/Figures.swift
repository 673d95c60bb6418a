import DuelCore
import Engine

/// The figures of each finished turn, read from a log's events (never recomputed).
public struct TurnFigures: Sendable, Hashable {
    public var turn: Int
    public var question: String
    /// Stats of each engine's answer, when it finished.
    public var cached: RequestStats?
    public var baseline: RequestStats?
    /// The last RSS sample at the end of the turn (0 = none).
    public var rssBytes: Int
    /// The turn started from cold (first turn, or after a reset).
    public var cold: Bool
    /// Seconds since the start when the turn completed.
    public var t: Double

    /// Baseline TTFT / cached TTFT.
    public var speedup: Double? {
        guard let c = cached?.ttftSeconds, let b = baseline?.ttftSeconds, c > 0 else { return nil }
        return b / c
    }
}

/// Collects `TurnFigures` from actions as they are reduced: from a log, or live as an `ActionSink`
/// (the live re-run compares the two). The actions go through the reducer, so a question counts
/// as asked exactly when the app took it.
public final class TurnCollector: ActionSink {
    public private(set) var turns: [TurnFigures] = []
    private var state: AppState
    private var cached: RequestStats?, baseline: RequestStats?
    private var cold = true
    private var t0: Double?

    public init(config: DuelConfig) {
        state = AppState(config: config, now: 0, loading: true)
    }

    public func observe(_ action: Action, at now: Double) {
        if t0 == nil { t0 = now }
        add(action, t: now - t0!)
    }

    public func add(_ action: Action, t: Double) {
        guard ReplayPlayer.isReplayed(action) else { return }
        let wasPending = state.pendingQuestion != nil
        let completed = state.turnsCompleted
        reduce(&state, .tick(now: t))
        reduce(&state, action)
        switch action {
        case .answerFinished(let p, let stats, _):
            if p == .cached { cached = stats } else { baseline = stats }
        case .resetRequested:
            cold = true
        default: break
        }
        if !wasPending && state.pendingQuestion != nil {
            cached = nil
            baseline = nil
        }
        if state.turnsCompleted > completed, let q = state.history.last?.question {
            turns.append(TurnFigures(turn: turns.count + 1, question: q, cached: cached, baseline: baseline,
                                     rssBytes: state.rssBytes, cold: cold, t: t))
            cold = false
        }
    }
}

extension SessionLog {
    /// One entry per completed turn, in order.
    public var turns: [TurnFigures] {
        let c = TurnCollector(config: header.config)
        for e in events { c.add(e.action, t: e.t) }
        return c.turns
    }
}
