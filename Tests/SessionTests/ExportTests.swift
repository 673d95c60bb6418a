import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif
import DuelCore
import Engine
import Session
import TerminalUI

final class ExportTests: XCTestCase {
    var golden: SessionLog { try! SessionLog.read(path: TestFiles.fixtures.appendingPathComponent("golden.session").path) }

    func testAsciicastHeaderEventsAndMonotonicTimes() throws {
        var o = ExportOptions()
        o.cols = 100
        o.rows = 30
        o.playback = PlaybackOptions(speed: 2, idleLimit: 1.5)
        let (text, summary) = try exportAsciicast(golden, options: o)
        let lines = text.split(separator: "\n").map { Data($0.utf8) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: lines[0]) as? [String: Any])
        XCTAssertEqual(header["version"] as? Int, 2)
        XCTAssertEqual(header["width"] as? Int, 100)
        XCTAssertEqual(header["height"] as? Int, 30)
        XCTAssertEqual(header["idle_time_limit"] as? Double, 1.5)
        XCTAssertEqual(header["timestamp"] as? Int, Int(golden.header.startedUnix))
        XCTAssertNotNil(header["title"] as? String)
        XCTAssertNotNil(header["env"] as? [String: String])
        var last = -1.0
        var markers: [String] = []
        var outputs = 0
        for l in lines.dropFirst() {
            let e = try XCTUnwrap(JSONSerialization.jsonObject(with: l) as? [Any])
            let t = try XCTUnwrap(e[0] as? Double)
            XCTAssertGreaterThanOrEqual(t, last, "times are monotonic")
            last = t
            let code = try XCTUnwrap(e[1] as? String)
            if code == "m" { markers.append(e[2] as! String) } else { XCTAssertEqual(code, "o"); outputs += 1 }
        }
        XCTAssertEqual(markers, ["after turn one"])
        XCTAssertEqual(summary.markers, 1)
        XCTAssertGreaterThan(outputs, 10)
        // Speed 2 halves the (idle-capped) play time.
        let p = ReplayPlayer(log: golden, options: PlaybackOptions(idleLimit: 1.5))
        XCTAssertEqual(last, p.length / 2, accuracy: 0.01)
        XCTAssertEqual(header["duration"] as? Double, last)
    }

    /// The cast plays in asciinema itself; the output shows the question and a TTFT.
    func testAsciinemaCatPlaysTheCast() throws {
        let asciinema = ["/usr/bin/asciinema", "/usr/local/bin/asciinema"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let asciinema else {
            XCTFail("asciinema is not installed (scripts/setup.sh installs it)")
            return
        }
        let path = TestFiles.temp("golden.cast")
        try exportAsciicast(golden).text.write(toFile: path, atomically: true, encoding: .utf8)
        // asciinema cat reads /dev/tty: give it a pseudo-terminal with script(1) (util-linux).
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        p.arguments = ["-qec", "\(asciinema) cat \(path)", "/dev/null"]
        p.standardInput = FileHandle.nullDevice
        var env = ProcessInfo.processInfo.environment
        env["LANG"] = "C.UTF-8"
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, errText)
        let raw = String(decoding: data, as: UTF8.self)
        // Drop the escape sequences; text runs in one style stay whole.
        let plain = raw.replacingOccurrences(of: "\u{1b}\\[[0-9;?]*[A-Za-z]", with: "\u{1}", options: .regularExpression)
        XCTAssertTrue(plain.contains("Who founded Brightwater Analytics?"), "question text in asciinema's output")
        XCTAssertNotNil(plain.range(of: "TTFT \u{1}*[0-9]+\\.[0-9]+ s", options: .regularExpression), "a TTFT figure in asciinema's output")
    }

    func testAnsiDiffWritesOnlyChangedCells() {
        var w = AnsiFrameWriter(theme: .default)
        var g = CellGrid(width: 10, height: 2)
        g.put("hello", x: 0, y: 0)
        let first = w.frame(g)
        XCTAssertTrue(first.contains("\u{1b}[2J"), "first frame clears")
        XCTAssertTrue(first.contains("hello"))
        XCTAssertEqual(w.frame(g), "", "nothing changed, nothing written")
        g.put("J", x: 0, y: 1, style: Style(.bad, bold: true))
        XCTAssertEqual(w.frame(g), "\u{1b}[2;1H\u{1b}[0;1;31mJ")
    }

    func testReportSVGHasBothEnginesSpeedupsAndCaption() throws {
        let svg = SessionReport.svg(golden)
        let turns = golden.turns
        XCTAssertEqual(turns.count, 2)
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertTrue(svg.contains("Time to first token per turn (log scale)"))
        for t in turns {
            let sp = try XCTUnwrap(t.speedup)
            XCTAssertTrue(svg.contains(">×" + String(format: sp >= 10 ? "%.0f" : "%.1f", sp) + "<"), "turn \(t.turn) speed-up labelled")
        }
        XCTAssertTrue(svg.contains("hit rate per turn"))
        XCTAssertTrue(svg.contains("Memory after each turn"))
        XCTAssertTrue(svg.contains("Schedule parallel · 1 thread per engine · recompute 15%"))
        XCTAssertTrue(svg.contains("Machine: "))
        XCTAssertNoThrow(try XMLDocument(xmlString: svg), "well-formed SVG")
        // The figures are the logged ones.
        XCTAssertEqual(turns[1].cached?.ttftSeconds, golden.events.compactMap { e -> Double? in
            if case .answerFinished(.cached, let s, _) = e.action { return s.ttftSeconds }
            return nil
        }.last)
    }
}
