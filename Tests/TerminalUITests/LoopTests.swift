import XCTest
import DuelCore
import Engine
import TerminalUI
import UITestSupport

func keys(_ text: String) -> [KeyEvent] { text.map { KeyEvent.key(.char($0)) } }

final class LoopTests: XCTestCase {
    /// The lead's tmux end-to-end test, in-process with the demo engines and a fake terminal.
    func testQuestionReorderAskAgainResizeQuit() throws {
        let docs = try Document.loadDirectory(URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("assets/docs").path)
        XCTAssertGreaterThanOrEqual(docs.count, 5)
        let config = DuelConfig(info: SessionInfo(modelName: "demo", threadsPerEngine: 1), documents: docs, maxTokens: 12)
        let vocab = WordVocabulary()
        let timing = DemoTiming(prefillSecondsPerToken: 0.0002, decodeSecondsPerToken: 0.001, lookupSeconds: 0)
        var firstOrder = ""
        func bothAnswered(_ t: String) -> Bool {
            t.components(separatedBy: "TTFT ").count >= 5 && !t.contains("answering…")
        }
        func panelRows(_ t: String) -> String {
            t.split(separator: "\n").filter { $0.contains("[x]") || $0.contains("[ ]") }.joined(separator: "\n")
        }
        let term = FakeTerminal(cols: 160, rows: 45, steps: [
            .init(name: "loaded", until: { $0.contains("type a question") }, events: keys("Who founded Brightwater Analytics?") + [.key(.enter)]),
            .init(name: "first answers", until: bothAnswered, events: [.key(.tab)]),
            .init(name: "panel focused", until: { t in
                firstOrder = panelRows(t)
                return t.contains("▶ Context")
            }, events: [.key(.shiftDown), .key(.tab)]),
            .init(name: "back in input", until: { !$0.contains("▶ Context") },
                  events: keys("Where was Veltrona Robotics founded?") + [.key(.enter)]),
            .init(name: "second answers", until: { t in bothAnswered(t) && t.contains("turn 2") },
                  events: [.resize], resizeTo: (100, 30)),
            .init(name: "resized", until: { $0.split(separator: "\n").first.map { $0.count <= 100 } ?? false },
                  events: [.key(.ctrl("c"))]),
        ])
        var recorded: [Action] = []
        let exit = runDuelLoop(device: term, config: config, promptBuilder: WordPromptBuilder.recording(into: vocab),
                               makeEngines: { progress in
                                   progress(0.5, "half")
                                   return DuelEngines(
                                       cached: DemoEngine(label: "cached", reuse: true, timing: timing, vocabulary: vocab),
                                       baseline: DemoEngine(label: "baseline", reuse: false, timing: timing, vocabulary: vocab))
                               }, record: { recorded.append($0) })
        XCTAssertNil(term.failedStep, "stuck at step '\(term.failedStep ?? "")'; screen:\n\(term.lastText)")
        XCTAssertEqual(exit, .quit)
        XCTAssertTrue(term.steps.isEmpty)
        XCTAssertGreaterThan(term.invalidations, 0, "a resize repaints everything")

        // The block order changed on screen, and the cached side reused KV on the second question.
        let atTurn2 = term.frames.last { $0.width == 160 && $0.text.contains("turn 2") }!.text
        let secondOrder = panelRows(atTurn2)
        XCTAssertNotEqual(firstOrder, secondOrder)
        let firstTitle = firstOrder.split(separator: "\n")[0].split(separator: " ").dropFirst(2).prefix(1)
        XCTAssertTrue(secondOrder.split(separator: "\n")[1].contains(firstTitle.joined()), "the first block moved down one")
        let cachedMeters = atTurn2.split(separator: "\n").first { $0.contains("hit ") }!
        let hitField = cachedMeters.components(separatedBy: "hit ")[1].split(separator: " ")[0]   // "reused/prompt"
        XCTAssertFalse(hitField.hasPrefix("0/"), "cached hit rate is non-zero: \(cachedMeters)")
        XCTAssertTrue(atTurn2.contains("faster"), "speed-up badge shows")

        // Replaying the recorded actions rebuilds the same panel order.
        var replay = AppState(config: config, cols: 160, rows: 45, now: 0)
        for a in recorded { reduce(&replay, a) }
        XCTAssertEqual(replay.blocks.map(\.id), [docs[1].id, docs[0].id] + docs.dropFirst(2).map(\.id))
        XCTAssertEqual(replay.history.count, 2)
    }

    func testSignalEndsTheLoop() {
        let term = FakeTerminal(cols: 80, rows: 24, steps: [])
        var calls = 0
        let exit = runDuelLoop(device: term, config: DuelConfig(info: SessionInfo(modelName: "x")),
                               promptBuilder: WordPromptBuilder(),
                               makeEngines: { _ in DuelEngines(cached: DemoEngine(label: "c", reuse: true),
                                                               baseline: DemoEngine(label: "b", reuse: false)) },
                               quitSignal: { calls += 1; return calls > 3 ? 15 : 0 })
        XCTAssertEqual(exit, .signal(15))
        XCTAssertFalse(term.frames.isEmpty, "drew before the signal")
    }

    func testLoadFailureIsShown() {
        struct NoModel: Error, CustomStringConvertible { var description: String { "model file not found" } }
        let term = FakeTerminal(cols: 80, rows: 24, steps: [
            .init(name: "error shown", until: { $0.contains("model file not found") }, events: [.key(.ctrl("q"))]),
        ], timeout: 10)
        let exit = runDuelLoop(device: term, config: DuelConfig(info: SessionInfo(modelName: "x")),
                               promptBuilder: WordPromptBuilder(), makeEngines: { _ in throw NoModel() })
        // Quitting after a load failure is a failure: the command exits non-zero with the message.
        XCTAssertEqual(exit, .loadFailed("Loading failed: model file not found"))
        XCTAssertNil(term.failedStep, term.lastText)
    }
}
