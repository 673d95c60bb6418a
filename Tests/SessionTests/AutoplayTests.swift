import XCTest
import UITestSupport
import DuelCore
import Engine
import Session
import TerminalUI

final class AutoplayTests: XCTestCase {
    func scenario(_ docs: [Document]) -> Scenario {
        let ids = docs.map(\.id)
        return Scenario(name: "booth", maxTokens: 10, system: DuelConfig.defaultSystemPrompt, documents: docs, turns: [
            ScenarioTurn(documents: [ids[0], ids[1], ids[2]], user: "Who founded Brightwater Analytics?", marker: "cold start"),
            ScenarioTurn(documents: [ids[2], ids[0], ids[1]], user: "Where was Veltrona Robotics founded?", hold: 0.1),
        ])
    }

    func run(_ sc: Scenario, options: Autoplay.Options, steps: (Autoplay) -> [FakeTerminal.Step],
             record path: String? = nil) throws -> (FakeTerminal, AppState, Autoplay, DuelExit) {
        var config = DuelConfig(info: SessionInfo(modelName: "demo", threadsPerEngine: 1))
        config.apply(sc)
        let auto = Autoplay(scenario: sc, options: options)
        let mirror = StateMirror(AppState(config: config, cols: 140, rows: 40, now: 0, loading: true))
        var sinks: [ActionSink] = [mirror]
        let recorder = try path.map { try SessionRecorder(path: $0, header: demoHeader(config)) }
        if let recorder { sinks.append(recorder) }
        let vocab = WordVocabulary()
        let term = FakeTerminal(cols: 140, rows: 40, steps: steps(auto))
        let exit = runDuelLoop(device: term, config: config, promptBuilder: WordPromptBuilder.recording(into: vocab),
                               makeEngines: demoFactory(vocab), source: auto, sinks: sinks)
        recorder?.close()
        XCTAssertNil(term.failedStep, "stuck at step '\(term.failedStep ?? "")'; screen:\n\(term.lastText)")
        return (term, mirror.state, auto, exit)
    }

    /// Autoplay types, arranges the blocks one step at a time, waits for both engines, holds,
    /// drops a marker per turn, and records unattended.
    func testAutoplayPlaysTheScenarioAndRecords() throws {
        let docs = try demoDocs()
        let sc = scenario(docs)
        let path = TestFiles.temp("autoplay.session")
        let (term, state, auto, exit) = try run(sc, options: .init(typingCPS: 400, stepSeconds: 0.01, hold: 0.05), steps: { auto in [
            .init(name: "autoplay done", until: { t in !auto.isActive && bothAnswered(t) }, events: [.key(.ctrl("c"))]),
        ] }, record: path)
        XCTAssertEqual(exit, .quit)
        XCTAssertEqual(auto.loopsCompleted, 1)
        XCTAssertEqual(state.history.map(\.question), sc.turns.map(\.user))
        XCTAssertEqual(state.blocks.filter(\.included).map(\.id), sc.turns[1].documents, "the panel is in turn 2's order")
        XCTAssertEqual(state.markerCount, 2)
        XCTAssertTrue(term.frames.contains { $0.text.contains("any key takes over") }, "the footer says autoplay is driving")
        // Typed one character at a time, the blocks moved one step at a time.
        let log = try SessionLog.read(path: path)
        XCTAssertEqual(log.markers.map(\.label), ["cold start", "turn 2"])
        let inserts = log.events.filter { if case .inputEdited(.insert(let s)) = $0.action { return s.count == 1 }; return false }
        XCTAssertEqual(inserts.count, sc.turns.map(\.user.count).reduce(0, +))
        let moves = log.events.compactMap { e -> (Int, Int)? in
            if case .blockMoved(let f, let t) = e.action { return (f, t) }
            return nil
        }
        XCTAssertFalse(moves.isEmpty)
        XCTAssertTrue(moves.allSatisfy { abs($0.0 - $0.1) == 1 }, "one step at a time")
        // Each question was sent only after both answers of the one before.
        var busy = false
        for e in log.events {
            switch e.action {
            case .questionSubmitted: XCTAssertFalse(busy, "a question while the engines were still answering"); busy = true
            case .turnCompleted: busy = false
            default: break
            }
        }
        XCTAssertEqual(log.turns.count, 2)
    }

    func testLoopResetsToColdAndStartsOver() throws {
        let docs = try demoDocs()
        let (_, state, auto, _) = try run(scenario(docs), options: .init(typingCPS: 600, stepSeconds: 0.005, hold: 0.02, loop: true),
                                          steps: { auto in [
            .init(name: "two loops", until: { _ in auto.loopsCompleted >= 2 }, events: [.key(.ctrl("c"))]),
        ] })
        XCTAssertGreaterThanOrEqual(auto.loopsCompleted, 2)
        let resets = state[.cached].transcript.filter { $0 == .note("— reset to cold: history cleared; KV store wiped in RAM and on disk (every kvduel sharing this cache directory loses it too) —") }.count
        XCTAssertGreaterThanOrEqual(resets, 2)
        XCTAssertGreaterThanOrEqual(state.markerCount, 4)
    }

    func testAnyKeyHandsControlBack() throws {
        let docs = try demoDocs()
        let (_, state, auto, _) = try run(scenario(docs), options: .init(typingCPS: 8, stepSeconds: 0.01, hold: 0.05), steps: { _ in [
            .init(name: "typing", until: { $0.contains("› Who") }, events: [.key(.char("x"))]),
            .init(name: "handed back", until: { !$0.contains("any key takes over") }, events: keys("!") + [.key(.ctrl("c"))]),
        ] })
        XCTAssertFalse(auto.isActive)
        XCTAssertEqual(state.history.count, 0, "nothing was sent after the key")
        XCTAssertTrue(state.input.text.hasPrefix("Who"))
        XCTAssertTrue(state.input.text.hasSuffix("!"), "the person types from there: \(state.input.text)")
        XCTAssertFalse(state.input.text.contains("x"), "the key that took over is not typed")
    }

    func testScenarioMarkerAndHoldKeys() throws {
        let yaml = """
        documents:
          - id: a
            text: Alpha.
        turns:
          - user: One?
            marker: Intro
            hold: 2.5
          - user: Two?
        """
        let sc = try Scenario.parse(yaml: yaml)
        XCTAssertEqual(sc.turns[0].marker, "Intro")
        XCTAssertEqual(sc.turns[0].hold, 2.5)
        XCTAssertNil(sc.turns[1].marker)
        XCTAssertThrowsError(try Scenario.parse(yaml: yaml.replacingOccurrences(of: "hold: 2.5", with: "hold: soon"))) { e in
            XCTAssertEqual("\(e)", "scenario.yaml:7: turn 1: hold must be a number of seconds ≥ 0, not 'soon'")
        }
    }
}
