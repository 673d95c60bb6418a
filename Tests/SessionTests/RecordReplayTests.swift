import XCTest
import UITestSupport
import DuelCore
import Engine
import Session
import TerminalUI

func demoDocs() throws -> [Document] {
    try Document.loadDirectory(TestFiles.root.appendingPathComponent("assets/docs").path)
}

func demoHeader(_ config: DuelConfig, title: String? = nil) -> SessionHeader {
    SessionHeader(config: config, model: .init(name: config.info.modelName),
                  options: .init(schedule: config.info.schedule.rawValue, threadsPerEngine: config.info.threadsPerEngine,
                                 recomputeRatio: config.info.recomputeRatio, encoding: config.info.storage,
                                 storeRAMBytes: config.info.storeCapacityBytes, diskTier: false,
                                 maxTokens: config.maxTokens, engines: "demo"),
                  cols: 0, rows: 0, title: title)
}

func bothAnswered(_ t: String) -> Bool {
    t.components(separatedBy: "TTFT ").count >= 5 && !t.contains("answering…")
}

final class RecordReplayTests: XCTestCase {
    /// Records a demo duel (two questions, a labelled marker, a block move, a resize), then replays
    /// the log: the same final state and the same final cell grid at the recorded size.
    func testRecordThenReplayGivesTheSameStateAndScreen() throws {
        let docs = try demoDocs()
        let config = DuelConfig(info: SessionInfo(modelName: "demo", threadsPerEngine: 1), documents: docs, maxTokens: 12)
        let path = TestFiles.temp("roundtrip.session")
        let recorder = try SessionRecorder(path: path, header: demoHeader(config))
        let mirror = StateMirror(AppState(config: config, cols: 120, rows: 40, now: 0, loading: true))
        let vocab = WordVocabulary()
        let term = FakeTerminal(cols: 120, rows: 40, steps: [
            .init(name: "loaded", until: { $0.contains("type a question") },
                  events: keys("Who founded Brightwater Analytics?") + [.key(.enter)]),
            .init(name: "first answers", until: bothAnswered, events: keys("after turn one") + [.key(.ctrl("t"))]),
            .init(name: "marker", until: { $0.contains("● marker 1: after turn one") },
                  events: [.key(.tab), .key(.shiftDown), .key(.tab)]),
            .init(name: "moved", until: { !$0.contains("▶ Context") },
                  events: keys("Where was Veltrona Robotics founded?") + [.key(.enter)]),
            .init(name: "second answers", until: { bothAnswered($0) && $0.contains("turn 2") },
                  events: [.resize], resizeTo: (100, 30)),
            .init(name: "resized", until: { $0.split(separator: "\n").first.map { $0.count <= 100 } ?? false },
                  events: [.key(.ctrl("c"))]),
        ])
        var chrome = SessionChrome()
        chrome.recording = true
        let exit = runDuelLoop(device: term, config: config, promptBuilder: WordPromptBuilder.recording(into: vocab),
                               makeEngines: demoFactory(vocab), sinks: [recorder, mirror], chrome: chrome)
        recorder.close()
        XCTAssertNil(term.failedStep, "stuck at step '\(term.failedStep ?? "")'; screen:\n\(term.lastText)")
        XCTAssertEqual(exit, .quit)
        XCTAssertTrue(term.frames.contains { $0.text.contains("● REC") }, "the top bar shows ● REC")

        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600, "the log is private")

        let log = try SessionLog.read(path: path)
        XCTAssertNil(log.warning)
        XCTAssertEqual(log.header.cols, 120)
        XCTAssertEqual(log.header.rows, 40)
        XCTAssertEqual(log.header.format, "kvduel-session")
        XCTAssertEqual(log.header.documents.map(\.id), docs.map(\.id))
        XCTAssertEqual(log.markers.map(\.label), ["after turn one"])
        let kinds = Set(log.events.map(\.action.kind))
        for k in ["questionSubmitted", "engineStarted", "firstTokenArrived", "tokenArrived", "answerFinished",
                  "cacheStatesUpdated", "turnCompleted", "blockMoved", "resized", "markerDropped", "rssSampled"] {
            XCTAssertTrue(kinds.contains(k), "the log has \(k) events")
        }
        XCTAssertFalse(kinds.contains("tick"), "clock ticks are implied by the times")
        XCTAssertEqual(zip(log.events, log.events.dropFirst()).filter { $0.0.t > $0.1.t }.count, 0, "times never go back")

        let player = ReplayPlayer(log: log)
        player.seek(to: player.length)
        XCTAssertTrue(player.isAtEnd)
        var replayed = player.state
        var live = mirror.state
        for s in [\AppState.chrome] { replayed[keyPath: s] = SessionChrome(); live[keyPath: s] = SessionChrome() }
        live.now = replayed.now
        live.quitting = false
        XCTAssertEqual(replayed.history, live.history)
        XCTAssertEqual(replayed.blocks, live.blocks)
        XCTAssertEqual(replayed.panes, live.panes)
        XCTAssertEqual(replayed.rssBytes, live.rssBytes)
        XCTAssertEqual(replayed, live, "the whole state")
        XCTAssertEqual(replayed.history.map(\.question), ["Who founded Brightwater Analytics?", "Where was Veltrona Robotics founded?"])

        // The same cells, styles included, at the recorded (final) size.
        let a = render(replayed, cols: 100, rows: 30), b = render(live, cols: 100, rows: 30)
        XCTAssertEqual(a.text, b.text)
        XCTAssertEqual(a, b)

        if ProcessInfo.processInfo.environment["KVDUEL_RECORD_GOLDEN"] == "1" {
            let dest = TestFiles.fixtures.appendingPathComponent("golden.session")
            try? FileManager.default.removeItem(at: dest)
            try FileManager.default.copyItem(atPath: path, toPath: dest.path)
        }
    }

    /// The checked-in golden log replays to the same screens at 80×24 and 160×45.
    func testGoldenSessionSnapshots() throws {
        let log = try SessionLog.read(path: TestFiles.fixtures.appendingPathComponent("golden.session").path)
        XCTAssertNil(log.warning)
        let player = ReplayPlayer(log: log)
        player.jumpToNextMarker()
        var atMarker = player.state
        atMarker.chrome.status = player.statusLine
        let m = render(atMarker, cols: 160, rows: 45)
        assertSnapshot(m, named: "golden-marker-160x45")
        XCTAssertTrue(m.text.contains("● marker 1: after turn one"))
        XCTAssertTrue(m.text.contains("▶ REPLAY"))
        player.seek(to: player.length)
        var end = player.state
        end.chrome.status = player.statusLine
        for (c, r) in [(80, 24), (160, 45)] {
            let g = render(end, cols: c, rows: r)
            assertSnapshot(g, named: "golden-end-\(c)x\(r)")
            XCTAssertTrue(g.text.contains("Where was Veltrona"), "\(c)×\(r) shows the question")
            XCTAssertTrue(g.text.contains("TTFT "), "\(c)×\(r) shows TTFT")
            XCTAssertTrue(g.text.contains("■ end"), "\(c)×\(r) status line")
        }
    }

    func testReplayLoopKeysStatusAndResize() throws {
        let log = try SessionLog.read(path: TestFiles.fixtures.appendingPathComponent("golden.session").path)
        var sawStatus = false
        let term = FakeTerminal(cols: 100, rows: 30, steps: [
            .init(name: "status", until: { t in
                sawStatus = t.contains("×1") && t.contains("next marker 1 “after turn one”")
                return sawStatus
            }, events: [.key(.char("+")), .key(.char("+"))]),
            .init(name: "x4", until: { $0.contains("×4") }, events: []),
            .init(name: "paused at marker", until: { $0.contains("❚❚ paused") && $0.contains("● marker 1") },
                  events: [.key(.char(".")), .resize], resizeTo: (90, 26)),
            .init(name: "resized", until: { $0.split(separator: "\n").first.map { $0.count <= 90 } ?? false },
                  events: [.key(.char("?"))]),
            .init(name: "help", until: { $0.contains("pause or resume the replay") }, events: [.key(.char("x")), .key(.char(" "))]),
            .init(name: "end", until: { $0.contains("■ end") }, events: [.key(.char("q"))]),
        ])
        // A clock that moves 20 ms per loop turn: the same playback however busy the machine is.
        var now = 0.0
        let exit = runReplayLoop(device: term, log: log, options: PlaybackOptions(speed: 1, idleLimit: 0.5, pauseAtMarkers: true),
                                 clock: { now += 0.02; return now })
        XCTAssertNil(term.failedStep, "stuck at step '\(term.failedStep ?? "")'; screen:\n\(term.lastText)")
        XCTAssertEqual(exit, .quit)
        XCTAssertTrue(sawStatus)
        XCTAssertEqual(term.frames.last?.width, 90)
        XCTAssertTrue(term.lastText.contains("Where was Veltrona"))
    }
}

func demoFactory(_ vocab: WordVocabulary) -> EngineFactory {
    { progress in
        progress(0.5, "half")
        return DuelEngines(
            cached: DemoEngine(label: "cached", reuse: true, timing: TestFiles.fastTiming, vocabulary: vocab),
            baseline: DemoEngine(label: "baseline", reuse: false, timing: TestFiles.fastTiming, vocabulary: vocab))
    }
}
