import Engine

/// Turns a key into the actions it means in this state (nil/empty: the key does nothing).
public func actions(for key: Key, in state: AppState) -> [Action] {
    if state.showHelp {
        // Any key closes the overlay; quit keys still quit.
        if key == .ctrl("c") || key == .ctrl("q") { return [.quitRequested] }
        return [.helpToggled]
    }
    guard let command = Keymap.command(for: key, focus: state.focus, inputIsEmpty: state.input.isEmpty) else {
        if state.focus == .input, case .char(let c) = key { return [.inputEdited(.insert(String(c)))] }
        return []
    }
    let sel = state.selectedBlock
    let hasBlocks = !state.blocks.isEmpty
    switch command {
    case .submit: return [.questionSubmitted(state.input.text)]
    case .switchFocus: return [.focusChanged(state.focus == .input ? .panel : .input)]
    case .selectPrevious: return hasBlocks && sel > 0 ? [.blockSelected(sel - 1)] : []
    case .selectNext: return hasBlocks && sel < state.blocks.count - 1 ? [.blockSelected(sel + 1)] : []
    case .moveBlockUp: return hasBlocks && sel > 0 ? [.blockMoved(from: sel, to: sel - 1)] : []
    case .moveBlockDown: return hasBlocks && sel < state.blocks.count - 1 ? [.blockMoved(from: sel, to: sel + 1)] : []
    case .toggleBlock: return hasBlocks ? [.blockToggled(id: state.blocks[sel].id)] : []
    case .help: return [.helpToggled]
    case .breakdown: return [.breakdownToggled]
    case .resetCold: return [.resetRequested]
    case .newConversation: return [.newConversationRequested]
    case .quit: return [.quitRequested]
    case .historyPrevious: return [.historyBrowsed(older: true)]
    case .historyNext: return [.historyBrowsed(older: false)]
    case .cursorLeft: return [.inputEdited(.left)]
    case .cursorRight: return [.inputEdited(.right)]
    case .cursorHome: return [.inputEdited(.home)]
    case .cursorEnd: return [.inputEdited(.end)]
    case .deleteBackward: return [.inputEdited(.backspace)]
    case .deleteForward: return [.inputEdited(.deleteForward)]
    case .deleteWordBackward: return [.inputEdited(.deleteWordBackward)]
    case .deleteToStart: return [.inputEdited(.deleteToStart)]
    case .deleteToEnd: return [.inputEdited(.deleteToEnd)]
    case .scrollUp: return [.scrolled(lines: 10)]
    case .scrollDown: return [.scrolled(lines: -10)]
    case .dropMarker:
        let label = state.input.text.trimmingWhitespace()
        return label.isEmpty ? [.markerDropped(label: nil)]
            : [.markerDropped(label: label), .inputEdited(.replaceAll(""))]
    case .replayPause, .replayStep, .replayNextMarker, .replayFaster, .replaySlower, .replayQuit:
        return []   // replay keys: `Keymap.replayCommand` handles them in `kvduel replay`
    }
}

/// The only place state changes. Pure: time comes in through `.tick(now:)`.
@discardableResult
public func reduce(_ state: inout AppState, _ action: Action) -> [Effect] {
    switch action {
    case .questionSubmitted(let raw):
        let q = raw.trimmingWhitespace()
        guard !q.isEmpty else { return [] }
        if state.loading != nil { state.notice = "The model is still loading."; return [] }
        if state.fatalError != nil { return [] }
        if state.turnInFlight {
            state.notice = "Still answering: wait for both answers (Ctrl-N starts over)."
            return []
        }
        if state.questionHistory.last != q { state.questionHistory.append(q) }
        state.historyCursor = nil
        state.historyDraft = ""
        state.input = LineEditor()
        state.notice = nil
        state.scroll = 0
        state.pendingQuestion = q
        for p in PaneID.allCases {
            state[p].transcript.append(.user(q))
            state[p].transcript.append(.answer("", complete: false))
            state[p].phase = p == .baseline && state.info.schedule == .alternate ? .queued : .waiting(since: state.now)
            state[p].prefill = nil
        }
        return [.startTurn(TurnRequest(system: state.systemPrompt, documents: state.promptDocuments,
                                       history: state.history, question: q,
                                       maxTokens: state.maxTokens, sampling: state.sampling))]

    case .focusChanged(let f):
        state.focus = f
    case .blockSelected(let i):
        if !state.blocks.isEmpty { state.selectedBlock = min(max(0, i), state.blocks.count - 1) }
    case .blockMoved(let from, let to):
        guard state.blocks.indices.contains(from), state.blocks.indices.contains(to), from != to else { return [] }
        let b = state.blocks.remove(at: from)
        state.blocks.insert(b, at: to)
        state.selectedBlock = to
    case .blockToggled(let id):
        if let i = state.blocks.firstIndex(where: { $0.id == id }) {
            state.blocks[i].included.toggle()
            state.selectedBlock = i
        }
    case .helpToggled:
        state.showHelp.toggle()
    case .breakdownToggled:
        state.showBreakdown.toggle()
    case .inputEdited(let edit):
        state.input.apply(edit)
        state.historyCursor = nil
    case .historyBrowsed(let older):
        let h = state.questionHistory
        guard !h.isEmpty else { return [] }
        if older {
            if let c = state.historyCursor {
                state.historyCursor = max(0, c - 1)
            } else {
                state.historyDraft = state.input.text
                state.historyCursor = h.count - 1
            }
            state.input.apply(.replaceAll(h[state.historyCursor!]))
        } else {
            guard let c = state.historyCursor else { return [] }
            if c + 1 < h.count {
                state.historyCursor = c + 1
                state.input.apply(.replaceAll(h[c + 1]))
            } else {
                state.historyCursor = nil
                state.input.apply(.replaceAll(state.historyDraft))
            }
        }
    case .scrolled(let lines):
        state.scroll = max(0, state.scroll + lines)
    case .resetRequested:
        if state.loading != nil { return [] }
        endTurnEarly(&state, note: nil)
        state.history = []
        for p in PaneID.allCases {
            state[p].transcript.append(.note("— reset to cold: history cleared; KV store wiped in RAM and on disk (every kvduel sharing this cache directory loses it too) —"))
            state[p].lastStats = nil
            state[p].cumulative = RequestStats()
            state[p].ttftHistory = []
            state[p].phase = .idle
        }
        for i in state.blocks.indices { state.blocks[i].cache = .notCached }
        state.divergence = nil
        state.notice = "Reset: engines cold; KV wiped in RAM and on disk (shared cache dir too)."
        return [.resetEngines]
    case .newConversationRequested:
        let wasBusy = state.turnInFlight
        endTurnEarly(&state, note: nil)
        state.history = []
        for p in PaneID.allCases {
            state[p].transcript.append(.note("— new conversation: history cleared, caches kept —"))
            state[p].phase = .idle
        }
        state.notice = nil
        return wasBusy ? [.cancelTurn] : []
    case .markerDropped(let label):
        state.markerCount += 1
        state.notice = "● marker \(state.markerCount)" + (label.map { ": " + $0 } ?? "")
    case .quitRequested:
        state.quitting = true
        return state.turnInFlight ? [.cancelTurn, .quit] : [.quit]

    case .resized(let c, let r):
        state.cols = max(0, c)
        state.rows = max(0, r)
    case .tick(let now):
        state.now = now
    case .rssSampled(let bytes):
        state.rssBytes = bytes
    case .storeSampled(let tiers):
        state.storeTiers = tiers

    case .loadingProgress(let f, let m):
        state.loading = LoadingState(fraction: min(1, max(0, f)), message: m)
    case .loaded:
        state.loading = nil
    case .loadFailed(let m):
        state.loading = nil
        state.fatalError = m

    case .engineStarted(let p):
        if state[p].phase == .queued { state[p].phase = .waiting(since: state.now) }
    case .prefillProgress(let p, let done, let total):
        state[p].prefill = (done, total)
    case .firstTokenArrived(let p, let ttft):
        state[p].phase = .streaming(ttft: ttft, since: state.now, tokens: 0)
    case .tokenArrived(let p, let text):
        if case .streaming(let t, let s, let n) = state[p].phase {
            state[p].phase = .streaming(ttft: t, since: s, tokens: n + 1)
        }
        if case .answer(let s, let done)? = state[p].transcript.last, !done {
            state[p].transcript[state[p].transcript.count - 1] = .answer(s + text, complete: false)
        }
    case .answerFinished(let p, let stats, let cumulative):
        state[p].phase = .finished
        state[p].lastStats = stats
        state[p].cumulative = cumulative
        state[p].ttftHistory.append(stats.ttftSeconds)
        state[p].prefill = nil
        if case .answer(let s, _)? = state[p].transcript.last {
            state[p].transcript[state[p].transcript.count - 1] = .answer(s, complete: true)
        }
        state[p].transcript.append(.turnStats(stats))
    case .engineFailed(let p, let message):
        state[p].phase = .failed(message)
        state[p].transcript.append(.note("error: \(message)"))
    case .divergenceMeasured(let d):
        state.divergence = d
        state.divergenceTurn = state.turnsCompleted + 1
    case .answerTokensKnown(let tokens):
        state.pendingAnswerTokens = tokens
    case .turnCompleted:
        guard let q = state.pendingQuestion else { return [] }
        let failed = PaneID.allCases.contains { if case .failed = state[$0].phase { return true } else { return false } }
        if failed {
            // Both engines get the same history; a turn either could not answer (e.g. a question
            // longer than the context) is left out, so the next question starts from the same
            // conversation as this one did.
            state.pendingQuestion = nil
            state.pendingAnswerTokens = nil
            state.notice = "That question failed and was left out of the conversation."
            return []
        }
        let answer = state[.baseline].lastAnswer ?? ""
        state.history.append(Turn(question: q, answer: answer, answerTokens: state.pendingAnswerTokens))
        state.pendingQuestion = nil
        state.pendingAnswerTokens = nil
        state.turnsCompleted += 1
    case .cacheStatesUpdated(let states):
        for i in state.blocks.indices {
            if let s = states[state.blocks[i].id] { state.blocks[i].cache = s }
        }
    case .blockTokenCounts(let counts):
        for i in state.blocks.indices {
            if let n = counts[state.blocks[i].id] { state.blocks[i].tokenCount = n }
        }
    case .enginesReset(let cumulative):
        state[.cached].cumulative = cumulative
        for i in state.blocks.indices { state.blocks[i].cache = .notCached }
    }
    return []
}

/// Abandons the turn in flight, marking unfinished answers as cut short.
private func endTurnEarly(_ state: inout AppState, note: String?) {
    guard state.turnInFlight else { return }
    state.pendingQuestion = nil
    for p in PaneID.allCases {
        if case .answer(let s, false)? = state[p].transcript.last {
            state[p].transcript[state[p].transcript.count - 1] = .answer(s + " [stopped]", complete: true)
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
