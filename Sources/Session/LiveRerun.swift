import DuelCore
import Foundation

/// `kvduel replay FILE --live`: the person's recorded actions, fed to the real engines again.
///
/// Actions keep their recorded spacing (gaps capped at `maxGap`), but a question, reset or new
/// chat waits until both engines are idle, since the live engines take their own time. Resizes
/// are left out (the terminal is live). Any key hands control back.
public final class LiveRerun: ActionSource {
    public let actions: [SessionEvent]
    public let maxGap: Double
    public private(set) var index = 0
    public private(set) var isActive = true
    private var lastEmit: Double?
    private var lastT = 0.0

    public init(log: SessionLog, maxGap: Double = 1.5) {
        actions = log.events.filter {
            guard $0.action.origin == .person else { return false }
            switch $0.action {
            case .quitRequested, .helpToggled, .breakdownToggled: return false
            default: return true
            }
        }
        self.maxGap = maxGap
        if actions.isEmpty { isActive = false }
    }

    public func handBack() { isActive = false }

    /// Every recorded action has been sent.
    public var isFinished: Bool { index >= actions.count }

    public func poll(_ state: AppState, now: Double) -> [Action] {
        guard isActive, index < actions.count, state.loading == nil, state.fatalError == nil else { return [] }
        let e = actions[index]
        let gap = min(maxGap, max(0, e.t - lastT))
        if let last = lastEmit, now - last < gap { return [] }
        switch e.action {
        case .questionSubmitted, .resetRequested, .newConversationRequested:
            if state.turnInFlight || state.panes.contains(where: \.isBusy) { return [] }
        default: break
        }
        index += 1
        lastEmit = now
        lastT = e.t
        if index == actions.count { isActive = false }
        return [e.action]
    }
}

/// Recorded and live TTFT per turn, side by side (rows for every turn either side has).
public func compareTTFT(recorded: [TurnFigures], live: [TurnFigures]) -> [TTFTComparison] {
    (0..<max(recorded.count, live.count)).map { i in
        let r = i < recorded.count ? recorded[i] : nil
        let l = i < live.count ? live[i] : nil
        return TTFTComparison(turn: i + 1,
                              recorded: (r?.cached?.ttftSeconds, r?.baseline?.ttftSeconds),
                              live: (l?.cached?.ttftSeconds, l?.baseline?.ttftSeconds))
    }
}
