import XCTest
import DuelCore
import TerminalUI

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
