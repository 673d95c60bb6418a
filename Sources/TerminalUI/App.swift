import Foundation
import CTerm
import DuelCore
import Engine

/// The two engines of a duel. Built off the UI thread by the factory given to `runDuel`.
public struct DuelEngines {
    public var cached: InferenceEngine
    public var baseline: InferenceEngine
    public init(cached: InferenceEngine, baseline: InferenceEngine) {
        self.cached = cached
        self.baseline = baseline
    }
}

/// Builds both engines (loads the model). Runs on a background thread while the screen shows a
/// progress bar; call `progress(fraction 0...1, message)` as loading goes.
public typealias EngineFactory = @Sendable (_ progress: @escaping @Sendable (Double, String) -> Void) throws -> DuelEngines

/// Why `runDuel` returned.
public enum DuelExit: Equatable, Sendable {
    /// Ctrl-C / Ctrl-Q.
    case quit
    /// SIGINT, SIGTERM or SIGHUP from outside (exit with 128 + signal).
    case signal(Int32)
    /// Quit after the engines failed to load (shown on screen); the command exits non-zero.
    case loadFailed(String)
}

/// Options of the UI loop itself (tests and demos change them; the defaults are what ships).
public struct LoopOptions: Sendable {
    /// How long one input read waits, ms (keypress → screen within ~50 ms).
    public var inputTimeoutMs: Int32 = 15
    /// Frame cap for redraws caused by engine events.
    public var maxFPS: Double = 30
    /// Live counters (TTFT while waiting) redraw this often.
    public var tickHz: Double = 10
    public init() {}
}

/// Runs the full-screen duel until the person quits. Sets up ncurses, loads the engines with a
/// progress bar, runs the event loop and restores the terminal on every exit path: normal quit,
/// Ctrl-C (raw mode delivers it as a key), SIGINT/SIGTERM/SIGHUP (handlers set a flag the loop
/// sees within ~15 ms; a second signal restores and exits at once), a thrown error (`defer`),
/// and crashes in engine threads (SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGABRT/SIGTRAP handlers and an
/// atexit hook call `endwin()`).
///
/// Throws `TerminalSetupError` before touching the screen when the locale is not UTF-8 or stdin/stdout is not a TTY.
@discardableResult
public func runDuel(config: DuelConfig,
                    promptBuilder: PromptBuilder,
                    makeEngines: @escaping EngineFactory,
                    divergence: DivergenceProbe? = nil,
                    options: LoopOptions = LoopOptions(),
                    source: ActionSource? = nil, sinks: [ActionSink] = [],
                    chrome: SessionChrome = SessionChrome(),
                    onFrame: ((inout AppState) -> Void)? = nil) throws -> DuelExit {
    try withTerminalScreen(theme: config.theme, inputTimeoutMs: options.inputTimeoutMs) { screen, notice in
        runDuelLoop(device: screen, config: config, promptBuilder: promptBuilder, makeEngines: makeEngines,
                    divergence: divergence, options: options, notice: notice,
                    quitSignal: pendingQuitSignal, source: source, sinks: sinks, chrome: chrome,
                    onFrame: onFrame)
    }
}

/// Opens the full screen (UTF-8 locale, signal handlers, curses with `theme`), runs `body` with it
/// and restores the terminal on every way out, as `runDuel` does. `body` gets the locale notice.
public func withTerminalScreen<T>(theme: String, inputTimeoutMs: Int32 = 15,
                                  _ body: (TerminalDevice, String?) throws -> T) throws -> T {
    let localeNotice = try prepareUTF8Locale()
    cterm_install_signal_handlers()
    let screen = try CursesScreen(themeName: theme, inputTimeoutMs: inputTimeoutMs)
    defer { screen.stop() }
    return try body(screen, localeNotice)
}

/// SIGINT/SIGTERM/SIGHUP received since the handlers were installed (0: none).
public func pendingQuitSignal() -> Int32 { cterm_quit_signal() }

/// What the event loop needs from a terminal. `CursesScreen` is the real one; tests script a fake.
public protocol TerminalDevice: AnyObject {
    var size: (cols: Int, rows: Int) { get }
    /// One input event, waiting up to the input timeout (or not at all after `setNonBlocking(true)`).
    func readKey() -> KeyEvent?
    func setNonBlocking(_ nonBlocking: Bool)
    /// Shows a frame.
    func draw(_ grid: CellGrid)
    /// The next `draw` must repaint everything (after a resize).
    func invalidate()
}

/// The event loop, independent of curses: reads keys, drains engine actions, reduces, and draws
/// at most `options.maxFPS` frames a second (at once after a key). Returns when the person quits
/// or `quitSignal()` returns a signal number. `record` and `sinks` see every action reduced (a
/// recorder); `source` acts for the person (autoplay, a live re-run) until a key takes over.
public func runDuelLoop(device: TerminalDevice, config: DuelConfig, promptBuilder: PromptBuilder,
                        makeEngines: @escaping EngineFactory, divergence: DivergenceProbe? = nil,
                        options: LoopOptions = LoopOptions(), notice: String? = nil,
                        quitSignal: () -> Int32 = { 0 }, clock: () -> Double = monotonicSeconds,
                        record: ((Action) -> Void)? = nil,
                        source: ActionSource? = nil, sinks: [ActionSink] = [],
                        chrome: SessionChrome = SessionChrome(),
                        onFrame: ((inout AppState) -> Void)? = nil) -> DuelExit {
    let queue = ActionQueue()
    let size = device.size
    var state = AppState(config: config, cols: size.cols, rows: size.rows, now: clock(), loading: true)
    state.notice = notice
    state.chrome = chrome
    state.chrome.autoplay = source?.isActive ?? false

    // Load off the UI thread.
    let loaded = EngineBox()
    let loader = Thread {
        do {
            let engines = try makeEngines { fraction, message in
                queue.push(.loadingProgress(fraction: fraction, message: message))
            }
            loaded.set(engines)
            queue.push(.loaded)
        } catch {
            queue.push(.loadFailed("Loading failed: \(error)"))
        }
    }
    loader.name = "kvduel.loader"
    loader.stackSize = 8 << 20
    loader.start()

    var controller: SessionController?
    // The first turn of the loop says the screen's size, so recorders know it.
    var initialSize: [Action] = [.resized(cols: size.cols, rows: size.rows)]
    var lastFrame = -1.0
    var lastTick = 0.0
    var lastRSS = -10.0
    var dirty = true
    var paste = PasteAssembler()

    while true {
        let sig = quitSignal()
        if sig != 0 {
            controller?.perform(.cancelTurn)
            return .signal(sig)
        }
        var actions: [Action] = []
        var keyed = false
        // Input: the first read waits up to the timeout, the rest drain what is already there.
        var reads = 0
        while reads < 64, let raw = device.readKey() {
            reads += 1
            if reads == 1 { device.setNonBlocking(true) }
            let ev: KeyEvent
            switch paste.feed(raw, now: clock()) {
            case .consumed: continue
            case .pasted(let text):
                actions.append(.inputEdited(.insert(text)))
                keyed = true
                continue
            case .event(let e): ev = e
            }
            switch ev {
            case .resize:
                device.invalidate()
                let s = device.size
                actions.append(.resized(cols: s.cols, rows: s.rows))
                keyed = true
            case .key(let k):
                // A key hands control back from autoplay (it only stops the script; quit keys still quit).
                if let source, source.isActive {
                    source.handBack()
                    keyed = true
                    if k != .ctrl("c") && k != .ctrl("q") { continue }
                }
                // Keys are translated against the state as it will be after earlier keys.
                var probe = state
                for a in actions { reduce(&probe, a) }
                actions.append(contentsOf: DuelCore.actions(for: k, in: probe))
                keyed = true
            case .ignored, .pasteStart, .pasteEnd:
                break
            }
        }
        if reads > 0 { device.setNonBlocking(false) }
        if let text = paste.flushIfStale(now: clock()) {
            actions.append(.inputEdited(.insert(text)))
            keyed = true
        }

        let now = clock()
        let engineActions = queue.drain()
        if controller == nil, let engines = loaded.take() {
            let c = SessionController(cached: engines.cached, baseline: engines.baseline,
                                      promptBuilder: promptBuilder, documents: config.documents,
                                      schedule: config.info.schedule, queue: queue, divergence: divergence)
            c.refreshBlocks()
            controller = c
        }
        var all: [Action] = [.tick(now: now)] + initialSize
        initialSize = []
        all += engineActions
        all += actions
        if let source, source.isActive {
            var probe = state
            for a in all { reduce(&probe, a) }
            let scripted = source.poll(probe, now: now)
            if !scripted.isEmpty { keyed = true; dirty = true }
            all += scripted
        }
        if state.chrome.autoplay != (source?.isActive ?? false) {
            state.chrome.autoplay = source?.isActive ?? false
            dirty = true
        }
        if now - lastRSS >= 1 {
            lastRSS = now
            all.append(.rssSampled(bytes: residentSetBytes()))
            // Only when something changed: a recording gets a line per change, not per second.
            if let tiers = controller?.cachedStoreTiers, tiers != state.storeTiers { all.append(.storeSampled(tiers: tiers)) }
        }
        var quit = false
        let rssBefore = state.rssBytes
        let tiersBefore = state.storeTiers
        for a in all {
            record?(a)
            for sink in sinks { sink.observe(a, at: now) }
            for effect in reduce(&state, a) {
                if effect == .quit { quit = true }
                controller?.perform(effect)
            }
        }
        if quit || state.quitting { return state.fatalError.map { .loadFailed($0) } ?? .quit }
        if let onFrame {
            let before = state
            onFrame(&state)
            if state != before { dirty = true }
        }

        if !engineActions.isEmpty || !actions.isEmpty || state.rssBytes != rssBefore
            || state.storeTiers != tiersBefore { dirty = true }
        let live = state.panes.contains { $0.isBusy } || state.loading != nil
        if live && now - lastTick >= 1 / options.tickHz { dirty = true; lastTick = now }
        if dirty && (keyed || now - lastFrame >= 1 / options.maxFPS) {
            device.draw(render(state))
            lastFrame = now
            dirty = false
        }
    }
}

/// The duel with stand-in engines (no model): canned answers streamed with realistic delays.
/// For trying the screen, demos without a model, and the lead's `--demo` flag.
@discardableResult
public func runDuelDemo(config: DuelConfig? = nil, timing: DemoTiming = .realistic,
                        source: ActionSource? = nil, sinks: [ActionSink] = [],
                        chrome: SessionChrome = SessionChrome(),
                        onFrame: ((inout AppState) -> Void)? = nil) throws -> DuelExit {
    var cfg = config ?? DuelConfig(info: SessionInfo(modelName: "demo engine (no model)", threadsPerEngine: 1))
    if cfg.documents.isEmpty { cfg.documents = Document.defaultDocuments() }
    let vocabulary = WordVocabulary()
    let builder = WordPromptBuilder.recording(into: vocabulary)
    return try runDuel(config: cfg, promptBuilder: builder, makeEngines: demoEngineFactory(config: cfg, timing: timing,
                                                                                      vocabulary: vocabulary),
                       source: source, sinks: sinks, chrome: chrome, onFrame: onFrame)
}

/// The demo's engine factory (stand-ins sharing `vocabulary` with the prompt builder).
public func demoEngineFactory(config cfg: DuelConfig, timing: DemoTiming, vocabulary: WordVocabulary) -> EngineFactory {
    let ratio = cfg.info.recomputeRatio
    return { progress in
        for i in 1...10 {
            progress(Double(i) / 10, "Loading demo engines… step \(i) of 10")
            usleep(60_000)
        }
        return DuelEngines(
            cached: DemoEngine(label: "cached", reuse: true, timing: timing, recomputeRatio: ratio, vocabulary: vocabulary),
            baseline: DemoEngine(label: "baseline", reuse: false, timing: timing, recomputeRatio: 0, vocabulary: vocabulary))
    }
}

/// Resident set size of this process, from /proc/self/statm (0 where unavailable).
public func residentSetBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// Hands the engines from the loader thread to the UI thread.
private final class EngineBox: @unchecked Sendable {
    private let lock = NSLock()
    private var engines: DuelEngines?
    func set(_ e: DuelEngines) { lock.lock(); engines = e; lock.unlock() }
    func take() -> DuelEngines? {
        lock.lock(); defer { lock.unlock() }
        let e = engines
        engines = nil
        return e
    }
}
