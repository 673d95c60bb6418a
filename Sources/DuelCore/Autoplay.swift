/// Plays a scenario in the live UI on the person's behalf (`chat --scenario FILE --autoplay`):
/// drops a marker, moves the blocks into the turn's order one visible step at a time, types the
/// question at a human pace, sends it, waits until both engines have finished (it watches the
/// state, never a fixed sleep), holds, and goes on. With `loop` it resets to cold after the last
/// turn and starts over. Any key hands control back (`handBack`).
///
/// Pure apart from its own progress: time comes in through `poll(_:now:)` (the injected clock).
public final class Autoplay: ActionSource {
    public struct Options: Sendable, Hashable {
        /// Characters typed per second.
        public var typingCPS: Double = 14
        /// Seconds between visible steps (focus, select, move, toggle, send).
        public var stepSeconds: Double = 0.35
        /// Seconds to hold after both answers, unless the turn says otherwise.
        public var hold: Double = 3
        /// Reset to cold after the last turn and start over.
        public var loop = false
        public init(typingCPS: Double = 14, stepSeconds: Double = 0.35, hold: Double = 3, loop: Bool = false) {
            self.typingCPS = typingCPS
            self.stepSeconds = stepSeconds
            self.hold = hold
            self.loop = loop
        }
    }

    enum Phase: Equatable {
        case waitReady, marker, arrange, typing(Int), submit, waitAnswers(before: Int), hold, done
    }

    public let scenario: Scenario
    public let options: Options
    public private(set) var turnIndex = 0
    /// Full passes through the scenario so far.
    public private(set) var loopsCompleted = 0
    public private(set) var isActive = true
    var phase: Phase = .waitReady
    private var nextAt = -Double.infinity

    public init(scenario: Scenario, options: Options = Options()) {
        self.scenario = scenario
        self.options = options
    }

    public func handBack() {
        isActive = false
        phase = .done
    }

    public func poll(_ state: AppState, now: Double) -> [Action] {
        guard isActive, now >= nextAt, turnIndex < scenario.turns.count else { return [] }
        if state.fatalError != nil { handBack(); return [] }
        let turn = scenario.turns[turnIndex]
        let step = options.stepSeconds
        switch phase {
        case .waitReady:
            if state.loading == nil && !state.turnInFlight && !state.panes.contains(where: \.isBusy) {
                phase = .marker
                nextAt = now + step
            }
            return []
        case .marker:
            phase = .arrange
            nextAt = now + step
            let label = turn.marker ?? "turn \(turnIndex + 1)"
            return [.markerDropped(label: label)]
        case .arrange:
            if let a = arrangeStep(state, target: turn.documents) {
                nextAt = now + step
                return [a]
            }
            phase = .typing(0)
            nextAt = now + step
            if !state.input.isEmpty { return [.inputEdited(.replaceAll(""))] }
            return []
        case .typing(let n):
            let chars = Array(turn.user)
            guard n < chars.count else {
                phase = .submit
                nextAt = now + step
                return []
            }
            phase = .typing(n + 1)
            nextAt = now + 1 / max(0.1, options.typingCPS)
            return [.inputEdited(.insert(String(chars[n])))]
        case .submit:
            phase = .waitAnswers(before: state.turnsCompleted)
            nextAt = now
            return [.questionSubmitted(state.input.text)]
        case .waitAnswers(let before):
            if state.turnsCompleted > before && !state.panes.contains(where: \.isBusy) {
                phase = .hold
                nextAt = now + (turn.hold ?? options.hold)
            } else if !state.turnInFlight && state.turnsCompleted == before {
                // The question was not taken (or the turn was abandoned): type it again.
                phase = .typing(0)
                nextAt = now + step
                return state.input.isEmpty ? [] : [.inputEdited(.replaceAll(""))]
            }
            return []
        case .hold:
            turnIndex += 1
            phase = .waitReady
            nextAt = now + step
            guard turnIndex == scenario.turns.count else { return [] }
            loopsCompleted += 1
            if options.loop {
                turnIndex = 0
                return [.resetRequested]
            }
            isActive = false
            phase = .done
            return []
        case .done:
            return []
        }
    }

    /// The next single visible step that brings the panel toward `target` (ids in prompt order,
    /// included; every other block excluded), or nil when the panel is there and focus is back
    /// on the input line.
    func arrangeStep(_ s: AppState, target: [String]) -> Action? {
        let ids = s.blocks.map(\.id)
        let wanted = target.filter { ids.contains($0) }
        func inPanel(_ a: Action) -> Action { s.focus == .panel ? a : .focusChanged(.panel) }
        for (i, id) in wanted.enumerated() {
            guard let j = s.blocks.firstIndex(where: { $0.id == id }) else { continue }
            if j != i {
                if s.selectedBlock != j { return inPanel(.blockSelected(j)) }
                return inPanel(j > i ? .blockMoved(from: j, to: j - 1) : .blockMoved(from: j, to: j + 1))
            }
            if !s.blocks[i].included {
                if s.selectedBlock != i { return inPanel(.blockSelected(i)) }
                return inPanel(.blockToggled(id: id))
            }
        }
        for i in wanted.count..<s.blocks.count where s.blocks[i].included {
            if s.selectedBlock != i { return inPanel(.blockSelected(i)) }
            return inPanel(.blockToggled(id: s.blocks[i].id))
        }
        return s.focus == .input ? nil : .focusChanged(.input)
    }
}
