import XCTest
import UITestSupport
import DuelCore
import Engine
import TerminalUI

/// Deterministic states for snapshot tests: fixed clock, fixed RSS, fixed stats.
enum Fixtures {
    static let info = SessionInfo(modelName: "SmolLM2-135M-Instruct Q8_0", modelBytes: 144_810_000,
                                  threadsPerEngine: 1, schedule: .parallel, recomputeRatio: 0.15,
                                  storeCapacityBytes: 1 << 30, storage: "int8")

    static let documents = [
        Document(id: "brightwater", title: "Brightwater Analytics",
                 text: "Brightwater Analytics was founded in 2011 in Tromsø by Ingrid Halvorsen. It sells tide forecasting software to harbours."),
        Document(id: "veltrona", title: "Veltrona Robotics",
                 text: "Veltrona Robotics builds orchard robots. It was founded in Valence, France, in 2016."),
        Document(id: "orchid", title: "Orchid Lane Coffee",
                 text: "Orchid Lane Coffee roasts beans in Kraków and runs 14 cafés."),
        Document(id: "kestrel", title: "Kestrel Freight",
                 text: "Kestrel Freight runs overnight rail freight between Lyon and Turin."),
        Document(id: "sunmoor", title: "Sunmoor Textiles",
                 text: "Sunmoor Textiles weaves wool in the Scottish Borders since 1887."),
        Document(id: "quill", title: "Quillfeather Press",
                 text: "Quillfeather Press publishes field guides to alpine flowers."),
    ]

    static func config(documents: [Document] = documents) -> DuelConfig {
        DuelConfig(info: info, documents: documents, maxTokens: 48)
    }

    static func stats(prompt: Int, exact: Int = 0, blended: Int = 0, recomputed: Int = 0,
                      generated: Int = 24, ttft: Double, decode: Double = 0.6,
                      live: Int = 0, store: Int = 0) -> RequestStats {
        var s = RequestStats()
        s.promptTokens = prompt
        s.reusedExact = exact
        s.reusedBlended = blended
        s.recomputed = recomputed
        s.computedFresh = prompt - exact - blended - recomputed
        s.generatedTokens = generated
        s.ttftSeconds = ttft
        s.decodeSeconds = decode
        s.kvBytesLive = live
        s.storeBytesRAM = store
        s.recomputeRatio = 0.15
        return s
    }

    /// A loaded app at `cols`×`rows` with token counts and no turns yet.
    static func loaded(cols: Int, rows: Int, documents: [Document] = documents) -> AppState {
        var s = AppState(config: config(documents: documents), cols: cols, rows: rows, now: 100)
        reduce(&s, .loaded)
        reduce(&s, .rssSampled(bytes: 412 << 20))
        var counts: [String: Int] = [:]
        for (i, d) in documents.enumerated() { counts[d.id] = 180 + 37 * i }
        reduce(&s, .blockTokenCounts(counts))
        return s
    }

    /// Streams one answer into a pane.
    static func answer(_ s: inout AppState, _ pane: PaneID, _ text: String, stats: RequestStats, cumulative: RequestStats) {
        reduce(&s, .firstTokenArrived(pane: pane, ttft: stats.ttftSeconds))
        for (i, w) in text.split(separator: " ").enumerated() {
            reduce(&s, .tokenArrived(pane: pane, text: (i == 0 ? "" : " ") + w))
        }
        reduce(&s, .answerFinished(pane: pane, stats: stats, cumulative: cumulative))
    }

    /// Two finished turns (second one with reuse), a third one streaming, panel reordered.
    static func duel(cols: Int, rows: Int) -> AppState {
        var s = loaded(cols: cols, rows: rows)
        reduce(&s, .questionSubmitted("Where was Veltrona Robotics founded?"))
        let a1 = "According to the documents, Veltrona Robotics was founded in Valence, France, in 2016. It builds orchard robots."
        let c1 = stats(prompt: 1342, ttft: 8.731, live: 24 << 20, store: 24 << 20)
        answer(&s, .cached, a1, stats: c1, cumulative: c1)
        let b1 = stats(prompt: 1342, ttft: 8.912, live: 24 << 20)
        answer(&s, .baseline, a1, stats: b1, cumulative: b1)
        reduce(&s, .divergenceMeasured(Divergence(identical: true, firstTokenKL: 0)))
        reduce(&s, .cacheStatesUpdated(["brightwater": .cached, "veltrona": .cached, "orchid": .cached,
                                        "kestrel": .cached, "sunmoor": .cached, "quill": .cached]))
        reduce(&s, .turnCompleted)

        reduce(&s, .focusChanged(.panel))
        reduce(&s, .blockMoved(from: 0, to: 1))
        reduce(&s, .blockToggled(id: "quill"))
        reduce(&s, .focusChanged(.input))
        reduce(&s, .tick(now: 130))
        reduce(&s, .questionSubmitted("Who founded Brightwater Analytics, and when?"))
        let a2 = "Brightwater Analytics was founded in 2011 in Tromsø by Ingrid Halvorsen."
        let c2 = stats(prompt: 1210, exact: 41, blended: 1012, recomputed: 152, generated: 19, ttft: 0.704,
                       decode: 0.45, live: 22 << 20, store: 46 << 20)
        var cc = c1; cc.promptTokens += 1210; cc.reusedExact = 41; cc.reusedBlended = 1012; cc.recomputed = 152
        answer(&s, .cached, a2, stats: c2, cumulative: cc)
        let b2 = stats(prompt: 1210, generated: 19, ttft: 8.102, decode: 0.47, live: 22 << 20)
        var bc = b1; bc.promptTokens += 1210
        answer(&s, .baseline, a2 + " She had worked at the harbour office.", stats: b2, cumulative: bc)
        reduce(&s, .divergenceMeasured(Divergence(identical: false, firstTokenKL: 0.0132, firstDifferingToken: 18)))
        reduce(&s, .cacheStatesUpdated(["quill": .partial(0.4)]))
        reduce(&s, .turnCompleted)

        reduce(&s, .tick(now: 160))
        reduce(&s, .questionSubmitted("And where is Orchid Lane Coffee roasted?"))
        reduce(&s, .firstTokenArrived(pane: .cached, ttft: 0.512))
        reduce(&s, .tokenArrived(pane: .cached, text: "Orchid Lane Coffee roasts its beans"))
        reduce(&s, .prefillProgress(pane: .baseline, done: 640, total: 1254))
        reduce(&s, .tick(now: 161.25))
        reduce(&s, .inputEdited(.insert("What does Kestrel Freight carry?")))
        return s
    }
}

/// Compares a rendered screen with `Snapshots/NAME.txt`. `KVDUEL_RECORD_SNAPSHOTS=1` rewrites the file.
func assertSnapshot(_ grid: CellGrid, named name: String, file: StaticString = #filePath, line: UInt = #line) {
    let dir = URL(fileURLWithPath: "\(file)").deletingLastPathComponent().appendingPathComponent("Snapshots")
    UITestSupport.assertSnapshot(grid, named: name, in: dir, file: file, line: line)
}

extension Fixtures {
    /// CJK and emoji in titles, questions and answers, with runs that must wrap at pane edges.
    static func wide(cols: Int, rows: Int) -> AppState {
        let docs = [
            Document(id: "tokyo", title: "東京タワー株式会社", text: "東京タワーは1958年に完成しました。高さは333メートルです。"),
            Document(id: "seoul", title: "서울 로보틱스 🤖", text: "서울 로보틱스는 2015년에 설립되었습니다."),
            Document(id: "mix", title: "Café Ünïcødé 🚀 Rocket Roasters", text: "Emoji 🚀☕️ and accents: naïve façade."),
        ]
        var s = loaded(cols: cols, rows: rows, documents: docs)
        reduce(&s, .questionSubmitted("東京タワーの高さは？ 🗼"))
        let text = "東京タワーの高さは333メートルです。" + String(repeating: "とても高い", count: 12) + " 🚀🚀🚀 done"
        let st = stats(prompt: 300, exact: 0, ttft: 1.25, live: 3 << 20)
        answer(&s, .cached, text, stats: st, cumulative: st)
        answer(&s, .baseline, text, stats: st, cumulative: st)
        reduce(&s, .divergenceMeasured(Divergence(identical: true)))
        reduce(&s, .turnCompleted)
        reduce(&s, .inputEdited(.insert("次の質問：ソウルは？ 🗼")))
        return s
    }
}
