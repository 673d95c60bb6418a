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
                    options: LoopOptions = LoopOptions()) throws -> DuelExit {
    let localeNotice = try prepareUTF8Locale()
    cterm_install_signal_handlers()
    let screen = try CursesScreen(themeName: config.theme, inputTimeoutMs: options.inputTimeoutMs)
    defer { screen.stop() }
    return runDuelLoop(device: screen, config: config, promptBuilder: promptBuilder, makeEngines: makeEngines,
                       divergence: divergence, options: options, notice: localeNotice,
                       quitSignal: { cterm_quit_signal() })
}

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
/// or `quitSignal()` returns a signal number. `record` sees every action reduced (for replay).
public func runDuelLoop(device: TerminalDevice, config: DuelConfig, promptBuilder: PromptBuilder,
                        makeEngines: @escaping EngineFactory, divergence: DivergenceProbe? = nil,
                        options: LoopOptions = LoopOptions(), notice: String? = nil,
                        quitSignal: () -> Int32 = { 0 }, clock: () -> Double = monotonicSeconds,
                        record: ((Action) -> Void)? = nil) -> DuelExit {
    let queue = ActionQueue()
    let size = device.size
    var state = AppState(config: config, cols: size.cols, rows: size.rows, now: clock(), loading: true)
    state.notice = notice

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
    var lastFrame = -1.0
    var lastTick = 0.0
    var lastRSS = -10.0
    var dirty = true

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
        while reads < 64, let ev = device.readKey() {
            reads += 1
            if reads == 1 { device.setNonBlocking(true) }
            switch ev {
            case .resize:
                device.invalidate()
                let s = device.size
                actions.append(.resized(cols: s.cols, rows: s.rows))
                keyed = true
            case .key(let k):
                // Keys are translated against the state as it will be after earlier keys.
                var probe = state
                for a in actions { reduce(&probe, a) }
                actions.append(contentsOf: DuelCore.actions(for: k, in: probe))
                keyed = true
            case .ignored:
                break
            }
        }
        if reads > 0 { device.setNonBlocking(false) }

        let now = clock()
        let engineActions = queue.drain()
        if controller == nil, let engines = loaded.take() {
            let c = SessionController(cached: engines.cached, baseline: engines.baseline,
                                      promptBuilder: promptBuilder, documents: config.documents,
                                      schedule: config.info.schedule, queue: queue, divergence: divergence)
            c.refreshBlocks()
            controller = c
        }
        var all: [Action] = [.tick(now: now)]
        all += engineActions
        all += actions
        if now - lastRSS >= 1 {
            lastRSS = now
            all.append(.rssSampled(bytes: residentSetBytes()))
            if let controller { all.append(.storeSampled(tiers: controller.cachedStoreTiers)) }
        }
        var quit = false
        let rssBefore = state.rssBytes
        let tiersBefore = state.storeTiers
        for a in all {
            record?(a)
            for effect in reduce(&state, a) {
                if effect == .quit { quit = true }
                controller?.perform(effect)
            }
        }
        if quit || state.quitting { return .quit }

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
public func runDuelDemo(config: DuelConfig? = nil, timing: DemoTiming = .realistic) throws -> DuelExit {
    var cfg = config ?? DuelConfig(info: SessionInfo(modelName: "demo engine (no model)", threadsPerEngine: 1))
    if cfg.documents.isEmpty { cfg.documents = Document.defaultDocuments() }
    let vocabulary = WordVocabulary()
    let builder = WordPromptBuilder.recording(into: vocabulary)
    let ratio = cfg.info.recomputeRatio
    return try runDuel(config: cfg, promptBuilder: builder, makeEngines: { progress in
        for i in 1...10 {
            progress(Double(i) / 10, "Loading demo engines… step \(i) of 10")
            usleep(60_000)
        }
        return DuelEngines(
            cached: DemoEngine(label: "cached", reuse: true, timing: timing, recomputeRatio: ratio, vocabulary: vocabulary),
            baseline: DemoEngine(label: "baseline", reuse: false, timing: timing, recomputeRatio: 0, vocabulary: vocabulary))
    })
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
