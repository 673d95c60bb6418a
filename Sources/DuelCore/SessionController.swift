import Foundation
import Engine

/// A thread-safe mailbox from engine threads to the UI thread.
public final class ActionQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Action] = []
    public init() {}

    public func push(_ action: Action) {
        lock.lock(); items.append(action); lock.unlock()
    }
    /// Takes everything queued so far, oldest first.
    public func drain() -> [Action] {
        lock.lock(); defer { lock.unlock() }
        let out = items
        items.removeAll(keepingCapacity: true)
        return out
    }
    public func removeAll() {
        lock.lock(); items.removeAll(); lock.unlock()
    }
    public var isEmpty: Bool {
        lock.lock(); defer { lock.unlock() }
        return items.isEmpty
    }
}

/// Measures the first-token KL(baseline ‖ cached) for a finished turn, when the engines can.
/// Called on the session's worker thread after both answers finished.
public typealias DivergenceProbe = @Sendable (_ request: EngineRequest,
                                             _ cached: GenerationResult,
                                             _ baseline: GenerationResult) -> Double?

/// Seconds on a monotonic clock.
public func monotonicSeconds() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) / 1e9
}

/// Owns the schedule: runs both engines off the UI thread and turns their events into actions.
/// Engines never touch UI state; everything they report arrives through `queue`.
///
/// - `parallel`: the cached engine runs on the worker thread and the baseline on a second thread, at once.
/// - `alternate`: cached first, then baseline, both on the worker thread.
///
/// All engine calls (generate, reset, cacheState) happen on the worker threads, never concurrently
/// on one engine.
public final class SessionController: @unchecked Sendable {
    public let queue: ActionQueue
    public let schedule: Schedule
    private let cached: InferenceEngine
    private let baseline: InferenceEngine
    private let builder: PromptBuilder
    private let documents: [Document]
    private let divergence: DivergenceProbe?
    private let worker = DispatchQueue(label: "kvduel.session.worker")
    private let lock = NSLock()
    private var generation = 0
    private var cancelFlags: [CancelFlag] = []

    public init(cached: InferenceEngine, baseline: InferenceEngine, promptBuilder: PromptBuilder,
                documents: [Document], schedule: Schedule, queue: ActionQueue = ActionQueue(),
                divergence: DivergenceProbe? = nil) {
        self.cached = cached
        self.baseline = baseline
        self.builder = promptBuilder
        self.documents = documents
        self.schedule = schedule
        self.queue = queue
        self.divergence = divergence
    }

    /// The cached engine's store tiers now (thread-safe).
    public var cachedStoreTiers: [TierStats] { cached.storeTiers }

    /// Carries out what the reducer asked for. Call on the UI thread; returns at once.
    public func perform(_ effect: Effect) {
        switch effect {
        case .startTurn(let turn):
            let (gen, flag) = beginWork(cancelPrevious: false)
            worker.async { self.runTurn(turn, generation: gen, cancel: flag) }
        case .cancelTurn, .quit:
            _ = beginWork(cancelPrevious: true)
        case .resetEngines:
            let (gen, _) = beginWork(cancelPrevious: true)
            worker.async {
                self.cached.reset()
                self.baseline.reset()
                self.emit(gen, .enginesReset(cumulative: self.cached.cumulative))
                self.emit(gen, .cacheStatesUpdated(self.cacheStates()))
            }
        }
    }

    /// Queues the panel's token counts and cache states (e.g. right after loading).
    public func refreshBlocks() {
        let gen = currentGeneration
        worker.async {
            var counts: [String: Int] = [:]
            for d in self.documents { counts[d.id] = self.builder.documentTokens(d).count }
            self.emit(gen, .blockTokenCounts(counts))
            self.emit(gen, .cacheStatesUpdated(self.cacheStates()))
        }
    }

    /// Blocks until queued work is done (tests, shutdown).
    public func waitUntilIdle() {
        worker.sync {}
    }

    // MARK: - internals

    private var currentGeneration: Int {
        lock.lock(); defer { lock.unlock() }
        return generation
    }

    /// Cancelling bumps the generation: events of older work are dropped, queued ones purged.
    private func beginWork(cancelPrevious: Bool) -> (Int, CancelFlag) {
        lock.lock(); defer { lock.unlock() }
        if cancelPrevious {
            generation += 1
            cancelFlags.forEach { $0.cancel() }
            cancelFlags.removeAll()
            queue.removeAll()
        }
        let flag = CancelFlag()
        cancelFlags.append(flag)
        return (generation, flag)
    }

    private func emit(_ gen: Int, _ action: Action) {
        lock.lock(); defer { lock.unlock() }
        if gen == generation { queue.push(action) }
    }

    private func cacheStates() -> [String: SegmentCacheState] {
        var states: [String: SegmentCacheState] = [:]
        for d in documents { states[d.id] = cached.cacheState(of: builder.documentTokens(d)) }
        return states
    }

    private func runTurn(_ turn: TurnRequest, generation gen: Int, cancel: CancelFlag) {
        if cancel.isCancelled { return }
        // TTFT counts tokenisation: each engine's clock starts this long before its own start.
        let t0 = DispatchTime.now().uptimeNanoseconds
        let segments = builder.segments(system: turn.system, documents: turn.documents,
                                        history: turn.history, question: turn.question)
        let tokenising = DispatchTime.now().uptimeNanoseconds - t0
        let request = EngineRequest(segments: segments, maxTokens: turn.maxTokens, sampling: turn.sampling,
                                    turnSuffix: builder.turnSuffix)

        var cachedResult: GenerationResult?
        var baselineResult: GenerationResult?
        switch schedule {
        case .alternate:
            cachedResult = run(cached, .cached, request, tokenising: tokenising, gen, cancel)
            if !cancel.isCancelled { baselineResult = run(baseline, .baseline, request, tokenising: tokenising, gen, cancel) }
        case .parallel:
            let done = DispatchSemaphore(value: 0)
            let box = ResultBox()
            let thread = Thread {
                box.value = self.run(self.baseline, .baseline, request, tokenising: tokenising, gen, cancel)
                done.signal()
            }
            thread.name = "kvduel.baseline"
            thread.stackSize = 8 << 20
            thread.start()
            cachedResult = run(cached, .cached, request, tokenising: tokenising, gen, cancel)
            done.wait()
            baselineResult = box.value
        }
        if cancel.isCancelled { return }
        if let c = cachedResult, let b = baselineResult {
            let identical = c.tokens == b.tokens
            var firstDiff: Int?
            if !identical {
                firstDiff = zip(c.tokens, b.tokens).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                    ?? min(c.tokens.count, b.tokens.count)
            }
            let kl = divergence?(request, c, b)
            emit(gen, .divergenceMeasured(Divergence(identical: identical, firstTokenKL: kl, firstDifferingToken: firstDiff)))
        }
        if let b = baselineResult { emit(gen, .answerTokensKnown(b.tokens)) }
        emit(gen, .cacheStatesUpdated(cacheStates()))
        emit(gen, .turnCompleted)
    }
    private func run(_ engine: InferenceEngine, _ pane: PaneID, _ request: EngineRequest, tokenising: UInt64,
                     _ gen: Int, _ cancel: CancelFlag) -> GenerationResult? {
        var request = request
        request.submittedAt = DispatchTime.now().uptimeNanoseconds - tokenising
        do {
            let result = try engine.generate(request, cancel: cancel) { event in
                switch event {
                case .started:
                    self.emit(gen, .engineStarted(pane: pane))
                case .finished: break
                case .prefillProgress(let done, let total):
                    self.emit(gen, .prefillProgress(pane: pane, done: done, total: total))
                case .firstToken(let t):
                    self.emit(gen, .firstTokenArrived(pane: pane, ttft: t))
                case .token(_, let text):
                    self.emit(gen, .tokenArrived(pane: pane, text: text))
                }
            }
            emit(gen, .answerFinished(pane: pane, stats: result.stats, cumulative: engine.cumulative))
            return result
        } catch {
            emit(gen, .engineFailed(pane: pane, message: "\(error)"))
            return nil
        }
    }
}

private final class ResultBox: @unchecked Sendable {
    var value: GenerationResult?
}
