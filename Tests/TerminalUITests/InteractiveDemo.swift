import XCTest
import DuelCore
import TerminalUI
import Engine

/// Not a test: runs the real screen with demo engines when `KVDUEL_UI_DEMO=1`, for trying the UI
/// in a terminal (e.g. tmux) before the real engines exist. Skipped otherwise.
///   KVDUEL_UI_DEMO=1 .build/debug/kvduelPackageTests.xctest TerminalUITests.InteractiveDemo
final class InteractiveDemo: XCTestCase {
    func testRunDemo() throws {
        let env = ProcessInfo.processInfo.environment
        try XCTSkipUnless(env["KVDUEL_UI_DEMO"] == "1", "interactive demo; set KVDUEL_UI_DEMO=1 to run it")
        var config = DuelConfig(info: SessionInfo(modelName: "demo engine (no model)", threadsPerEngine: 1,
                                                  schedule: env["KVDUEL_SCHEDULE"] == "alternate" ? .alternate : .parallel))
        config.theme = env["KVDUEL_THEME"] ?? "default"
        if let path = env["KVDUEL_SCENARIO"] { config.apply(try Scenario.load(path: path)) }
        _ = try runDuelDemo(config: config)
    }
}

/// Not a test: with `KVDUEL_UI_DEMO=crash`, the cached engine crashes on the first question, to
/// check by hand (in tmux) that the terminal is restored after a crash in an engine thread.
final class InteractiveCrashDemo: XCTestCase {
    final class CrashingEngine: InferenceEngine {
        let label = "cached"
        var cumulative = RequestStats()
        func reset() {}
        func cacheState(of tokens: [Int32]) -> SegmentCacheState { .notCached }
        func generate(_ request: EngineRequest, cancel: CancelFlag?, onEvent: (EngineEvent) -> Void) throws -> GenerationResult {
            usleep(300_000)
            fatalError("simulated engine crash")
        }
    }

    func testCrashRestoresTerminal() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["KVDUEL_UI_DEMO"] == "crash", "set KVDUEL_UI_DEMO=crash")
        let config = DuelConfig(info: SessionInfo(modelName: "crash demo"), documents: Document.defaultDocuments())
        _ = try runDuel(config: config, promptBuilder: WordPromptBuilder(), makeEngines: { _ in
            DuelEngines(cached: CrashingEngine(), baseline: DemoEngine(label: "baseline", reuse: false, timing: .realistic))
        })
    }
}
