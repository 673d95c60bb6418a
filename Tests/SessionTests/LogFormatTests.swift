import XCTest
import DuelCore
import Engine
import Session
import TerminalUI

final class LogFormatTests: XCTestCase {
    var golden: Data { FileManager.default.contents(atPath: TestFiles.fixtures.appendingPathComponent("golden.session").path)! }
    var goldenLines: [String] { String(decoding: golden, as: UTF8.self).split(separator: "\n").map(String.init) }

    /// Every kind of action survives JSON: `[kind, payload]` and `[t, kind, payload]`.
    func testEveryActionKindRoundTrips() throws {
        var st = RequestStats()
        st.promptTokens = 812; st.reusedExact = 400; st.reusedBlended = 300; st.recomputed = 45; st.computedFresh = 67
        st.generatedTokens = 20; st.ttftSeconds = 0.1234; st.decodeSeconds = 0.8; st.kvBytesLive = 1 << 20
        st.storeBytesRAM = 3 << 20; st.storeBytesDisk = 5; st.evictions = 2; st.recomputeRatio = 0.15; st.checkedTokens = 9
        let all: [Action] = [
            .questionSubmitted("Où est «Veltrona»? 🤖"), .focusChanged(.panel), .blockSelected(3), .blockMoved(from: 2, to: 1),
            .blockToggled(id: "veltrona"), .helpToggled, .inputEdited(.insert("é")), .inputEdited(.replaceAll("x")),
            .inputEdited(.backspace), .inputEdited(.deleteToEnd), .historyBrowsed(older: true), .scrolled(lines: -10),
            .resetRequested, .newConversationRequested, .quitRequested, .markerDropped(label: nil), .markerDropped(label: "here"),
            .resized(cols: 80, rows: 24), .tick(now: 1.5), .rssSampled(bytes: 123_456_789), .loadingProgress(fraction: 0.5, message: "half"),
            .loaded, .loadFailed("no"), .engineStarted(pane: .baseline), .prefillProgress(pane: .cached, done: 3, total: 9),
            .firstTokenArrived(pane: .cached, ttft: 0.042), .tokenArrived(pane: .baseline, text: " Paris\n"),
            .answerFinished(pane: .cached, stats: st, cumulative: st), .engineFailed(pane: .cached, message: "boom"),
            .divergenceMeasured(Divergence(identical: false, firstTokenKL: 0.0132, firstDifferingToken: 4)),
            .divergenceMeasured(Divergence(identical: true)), .answerTokensKnown([1, 2, 3]), .turnCompleted,
            .cacheStatesUpdated(["a": .cached, "b": .partial(0.25), "c": .notCached]), .blockTokenCounts(["a": 12]),
            .enginesReset(cumulative: st),
        ]
        for a in all {
            let data = try JSONEncoder().encode(a)
            XCTAssertEqual(try JSONDecoder().decode(Action.self, from: data), a, String(decoding: data, as: UTF8.self))
            let line = try SessionEvent(t: 2.5, action: a).line()
            XCTAssertTrue(line.hasPrefix("[2.5,\"\(a.kind)\",{"), line)
        }
        XCTAssertEqual(Action.questionSubmitted("x").origin, .person)
        XCTAssertEqual(Action.markerDropped(label: nil).origin, .person)
        XCTAssertEqual(Action.tokenArrived(pane: .cached, text: "x").origin, .engine)
        XCTAssertEqual(Action.resized(cols: 1, rows: 1).origin, .clock)
    }

    func testCutShortLogReplaysUpToTheDamage() throws {
        let full = try SessionLog.parse(golden)
        var data = golden
        data.removeLast(7)   // into the last line
        let log = try SessionLog.parse(data, name: "cut.session")
        XCTAssertEqual(log.events.count, full.events.count - 1)
        let w = try XCTUnwrap(log.warning)
        XCTAssertTrue(w.hasPrefix("warning: cut.session line \(goldenLines.count) is cut short"), w)
        XCTAssertFalse(w.contains("\n"), "one line")
        // It still plays to the end of what is there.
        let p = ReplayPlayer(log: log)
        p.seek(to: p.length)
        XCTAssertEqual(p.state.turnsCompleted, full.turns.count)
    }

    func testDamagedLineInTheMiddleStopsThere() throws {
        var lines = goldenLines
        lines[9] = "{\"not\": an event"
        let log = try SessionLog.parse(Data((lines.joined(separator: "\n") + "\n").utf8), name: "bad.session")
        XCTAssertEqual(log.events.count, 8, "the 8 events before line 10")
        XCTAssertTrue(log.warning?.contains("line 10 is damaged; replayed the 8 events before it") ?? false, log.warning ?? "no warning")
    }

    func testUnknownKindsAreSkipped() throws {
        var lines = goldenLines
        lines.insert("[0.5,\"laserShow\",{\"colour\":\"green\"}]", at: 3)
        lines.insert("[0.5,\"inputEdited\",{\"edit\":\"teleport\"}]", at: 5)
        let log = try SessionLog.parse(Data(lines.joined(separator: "\n").utf8))
        XCTAssertNil(log.warning)
        XCTAssertEqual(log.skippedUnknown, 2)
        XCTAssertEqual(log.events.count, goldenLines.count - 1)
    }

    func testNewerMajorVersionIsRefused() throws {
        var lines = goldenLines
        lines[0] = lines[0].replacingOccurrences(of: "\"version\":\"1.0\"", with: "\"version\":\"2.0\"")
        XCTAssertNotEqual(lines[0], goldenLines[0])
        XCTAssertThrowsError(try SessionLog.parse(Data(lines.joined(separator: "\n").utf8), name: "new.session")) { e in
            XCTAssertEqual("\(e)", "new.session uses session format 2.0, newer than this kvduel reads (1.x); update kvduel to replay it")
        }
        // A newer minor version is fine.
        lines[0] = goldenLines[0].replacingOccurrences(of: "\"version\":\"1.0\"", with: "\"version\":\"1.7\"")
        XCTAssertNoThrow(try SessionLog.parse(Data(lines.joined(separator: "\n").utf8)))
    }

    func testNotALogAndUnwritablePathsAreOneLineErrors() {
        XCTAssertThrowsError(try SessionLog.parse(Data("hello\n".utf8), name: "x.txt")) { e in
            XCTAssertTrue("\(e)".hasPrefix("x.txt is not a kvduel session log"), "\(e)")
        }
        XCTAssertThrowsError(try SessionLog.parse(Data(), name: "empty")) { e in XCTAssertEqual("\(e)", "empty is empty, not a session log") }
        XCTAssertThrowsError(try SessionLog.read(path: "/nonexistent/x.session")) { e in XCTAssertEqual("\(e)", "cannot read /nonexistent/x.session") }
        let config = DuelConfig(info: SessionInfo(modelName: "demo"))
        XCTAssertThrowsError(try SessionRecorder(path: "/nonexistent/dir/x.session", header: demoHeader(config))) { e in
            XCTAssertEqual("\(e)", "cannot record to /nonexistent/dir/x.session: No such file or directory")
        }
        XCTAssertThrowsError(try SessionRecorder(path: "/tmp", header: demoHeader(config))) { e in
            XCTAssertEqual("\(e)", "cannot record to /tmp: it is a directory")
        }
    }

    /// Events are on disk as soon as they happen (one write each), before close.
    func testEventsAreWrittenAsTheyHappen() throws {
        let path = TestFiles.temp("flush.session")
        let r = try SessionRecorder(path: path, header: demoHeader(DuelConfig(info: SessionInfo(modelName: "demo"))))
        r.observe(.tick(now: 10), at: 10)
        r.observe(.resized(cols: 90, rows: 30), at: 10)
        r.observe(.loaded, at: 10.5)
        r.observe(.questionSubmitted("hi"), at: 11.25)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.count, 4, text)
        XCTAssertEqual(lines[3], "[1.25,\"questionSubmitted\",{\"text\":\"hi\"}]")
        let log = try SessionLog.parse(Data(text.utf8))
        XCTAssertEqual(log.header.cols, 90)
        r.close()
    }
}
