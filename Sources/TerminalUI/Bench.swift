import DuelCore
import Engine

/// Result of `benchmarkRender`: how long `render(state)` takes for a full screen.
public struct RenderBenchmark: Sendable {
    public var cols: Int
    public var rows: Int
    public var turnsPerPane: Int
    public var frames: Int
    public var meanMilliseconds: Double
    public var medianMilliseconds: Double
    public var maxMilliseconds: Double
    /// The last frame drawn (tests check it is complete).
    public var lastFrame: CellGrid

    /// One line for `kvduel bench render`.
    public var summary: String {
        "render \(cols)×\(rows), \(turnsPerPane) turns per pane: mean \(Fmt.fixed(meanMilliseconds, 3)) ms/frame, "
            + "median \(Fmt.fixed(medianMilliseconds, 3)) ms, max \(Fmt.fixed(maxMilliseconds, 3)) ms over \(frames) frames"
            + " (budget at 30 fps: 33.3 ms)"
    }
}

/// A state with long transcripts in both panes (and one answer streaming), for benchmarks.
public func benchmarkState(cols: Int = 160, rows: Int = 45, turns: Int = 300) -> AppState {
    let docs = (1...6).map { i in
        Document(id: "doc\(i)", title: "Benchmark document \(i) 文書",
                 text: String(repeating: "Facts about company \(i), founded in 20\(10 + i). ", count: 20))
    }
    var s = AppState(config: DuelConfig(info: SessionInfo(modelName: "bench", modelBytes: 144_000_000), documents: docs),
                     cols: cols, rows: rows, now: 0, loading: false)
    reduce(&s, .blockTokenCounts(Dictionary(uniqueKeysWithValues: docs.map { ($0.id, 300) })))
    let answer = (0..<110).map { i in i % 17 == 0 ? "東京タワー" : (i % 23 == 0 ? "🚀" : "token\(i)") }.joined(separator: " ")
    var cum = [RequestStats(), RequestStats()]
    for t in 0..<turns {
        reduce(&s, .tick(now: Double(t)))
        reduce(&s, .questionSubmitted("Question number \(t): what happened to the company, and when? Explain at length."))
        for p in PaneID.allCases {
            reduce(&s, .firstTokenArrived(pane: p, ttft: p == .cached ? 0.3 : 4.0))
            reduce(&s, .tokenArrived(pane: p, text: answer))
            var st = RequestStats()
            st.promptTokens = 1500 + t
            st.reusedExact = p == .cached ? 1400 : 0
            st.generatedTokens = 110
            st.ttftSeconds = p == .cached ? 0.3 + Double(t % 5) * 0.01 : 4.0 + Double(t % 7) * 0.1
            st.decodeSeconds = 2.5
            cum[p.rawValue].promptTokens += st.promptTokens
            cum[p.rawValue].reusedExact += st.reusedExact
            reduce(&s, .answerFinished(pane: p, stats: st, cumulative: cum[p.rawValue]))
        }
        reduce(&s, .divergenceMeasured(Divergence(identical: t % 2 == 0, firstTokenKL: 0.002)))
        reduce(&s, .turnCompleted)
    }
    reduce(&s, .questionSubmitted("And one more question that is still being answered?"))
    reduce(&s, .firstTokenArrived(pane: .cached, ttft: 0.31))
    reduce(&s, .tokenArrived(pane: .cached, text: answer))
    return s
}

/// Times `render` for a full screen with long transcripts. `clock` returns seconds.
public func benchmarkRender(cols: Int = 160, rows: Int = 45, turns: Int = 300, frames: Int = 200,
                            clock: () -> Double = monotonicSeconds) -> RenderBenchmark {
    var state = benchmarkState(cols: cols, rows: rows, turns: turns)
    var times: [Double] = []
    times.reserveCapacity(frames)
    var grid = render(state)
    for i in 0..<max(1, frames) {
        // Each frame sees a new token, as during streaming.
        reduce(&state, .tokenArrived(pane: .cached, text: " w\(i)"))
        reduce(&state, .tick(now: Double(turns) + Double(i) / 30))
        let t0 = clock()
        grid = render(state)
        times.append((clock() - t0) * 1000)
    }
    let sorted = times.sorted()
    return RenderBenchmark(cols: cols, rows: rows, turnsPerPane: turns, frames: times.count,
                           meanMilliseconds: times.reduce(0, +) / Double(times.count),
                           medianMilliseconds: sorted[sorted.count / 2],
                           maxMilliseconds: sorted.last ?? 0, lastFrame: grid)
}
