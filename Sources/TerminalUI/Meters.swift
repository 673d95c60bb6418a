import DuelCore
import Engine

/// The figures of one pane's meter strip, collected from the state before anything is drawn
/// (collecting is separate from drawing, as in htop). `meterLines` draws them; a replay, an
/// export and the report reduce the same logged actions, so they show the same values.
public struct PaneMeters: Sendable, Equatable {
    public enum TTFT: Sendable, Equatable {
        case none
        case queued
        /// `live`: still waiting (with the prefill fraction when known). `faster`: for a final
        /// TTFT once both panes have one this turn, whether this pane won.
        case value(seconds: Double, live: Bool, prefill: Double?, faster: Bool?)
    }
    /// One store tier as the strip shows it.
    public struct Tier: Sendable, Equatable {
        public var name: String
        public var bytes = 0
        public var rejected = 0
        public var writeErrors = 0
        public var droppedWrites = 0
        /// "ok", "unreachable", "retrying" for a tier with a connection.
        public var state: String?
    }
    public enum Quality: Sendable, Equatable {
        case pending
        case same(turn: Int?)
        case differs(turn: Int?, atToken: Int?, firstTokenKL: Double?)
        /// The baseline pane: its answers make the history.
        case historySource
    }

    public var pane: PaneID
    public var ttft: TTFT
    /// Tokens per second: live while streaming, else the last answer's.
    public var decodeRate: Double?
    /// The last answer's and all answers' figures (hit rate = reused / prompt tokens).
    public var turn: RequestStats?
    public var cumulative: RequestStats
    public var liveKVBytes: Int
    /// Store tiers (RAM and disk always; the sampled ones when there are, else the last answer's).
    public var tiers: [Tier]
    /// Where the last answer's reused tokens came from, per tier.
    public var turnTiers: [TierFigures]
    public var ttftHistory: [Double]
    /// The largest TTFT of either pane (both sparklines share the scale).
    public var ttftScale: Double
    public var quality: Quality
    /// Cake's meeting point in the last answer's prompt, when it used Cake.
    public var cake: CakeSplit?
    /// The last answer's TTFT split into parts, when the breakdown is shown.
    public var breakdown: TTFTBreakdown?

    public init(_ s: AppState, _ pane: PaneID) {
        let p = s[pane]
        let other: PaneID = pane == .cached ? .baseline : .cached
        self.pane = pane
        if p.phase == .queued {
            ttft = .queued
        } else if let t = s.ttft(pane) {
            var faster: Bool?
            if !t.live, let sp = s.speedup, p.ttftHistory.count == s[other].ttftHistory.count { faster = (pane == .cached) == (sp >= 1) }
            var prefill: Double?
            if t.live, let pf = p.prefill, pf.total > 0 { prefill = Double(pf.done) / Double(pf.total) }
            ttft = .value(seconds: t.seconds, live: t.live, prefill: prefill, faster: faster)
        } else {
            ttft = .none
        }
        if case .streaming(_, let since, let n) = p.phase, n > 1, s.now > since {
            decodeRate = Double(n - 1) / (s.now - since)
        } else if let st = p.lastStats, st.decodeTokensPerSecond > 0 {
            decodeRate = st.decodeTokensPerSecond
        }
        turn = p.lastStats
        cake = pane == .cached ? p.lastStats?.cake : nil
        breakdown = s.showBreakdown ? p.lastStats?.breakdown : nil
        cumulative = p.cumulative
        liveKVBytes = p.lastStats?.kvBytesLive ?? 0
        turnTiers = p.lastStats?.tiers ?? []
        var tiers = s.storeTiers.map {
            Tier(name: $0.name, bytes: $0.bytes, rejected: $0.rejectedEntries, writeErrors: $0.writeErrors,
                 droppedWrites: $0.droppedWrites, state: $0.state)
        }
        if tiers.isEmpty || pane == .baseline {
            tiers = turnTiers.map {
                Tier(name: $0.name, bytes: $0.storeBytes, rejected: $0.rejectedEntries, writeErrors: $0.writeErrors,
                     droppedWrites: $0.droppedWrites, state: $0.state)
            }
        }
        if !tiers.contains(where: { $0.name == "ram" }) { tiers.insert(Tier(name: "ram"), at: 0) }
        if !tiers.contains(where: { $0.name == "disk" }) { tiers.insert(Tier(name: "disk"), at: 1) }
        self.tiers = tiers
        ttftHistory = p.ttftHistory
        ttftScale = (s[.cached].ttftHistory + s[.baseline].ttftHistory).max() ?? 0
        if pane == .baseline {
            quality = .historySource
        } else if let d = s.divergence {
            let turn = s.turnInFlight ? s.divergenceTurn : nil
            quality = d.identical ? .same(turn: turn)
                : .differs(turn: turn, atToken: d.firstDifferingToken, firstTokenKL: d.firstTokenKL)
        } else {
            quality = .pending
        }
    }

    public var storeBytes: Int { tiers.reduce(0) { $0 + $1.bytes } }
    /// The tier with a connection (a remote tier), if any.
    public var remote: Tier? { tiers.first { $0.state != nil } }
}

/// The meter strip of one pane, flowed into lines of at most `width` columns.
public func meterLines(_ s: AppState, _ pane: PaneID, width: Int) -> [[Span]] {
    meterLines(PaneMeters(s, pane), width: width)
}

/// Draws a pane's meter figures. Below 60 columns the labels shorten so the strip keeps to about
/// four lines.
public func meterLines(_ m: PaneMeters, width: Int) -> [[Span]] {
    let pane = m.pane
    let compact = width < 60
    let label = Style(.dim)
    let value = Style(.normal, bold: true)

    // TTFT (live while waiting).
    var ttftChip: [Span]
    switch m.ttft {
    case .queued:
        ttftChip = [Span("TTFT ", label), Span("queued", Style(.dim))]
    case .value(let seconds, let live, let prefill, let faster):
        let style = live ? Style(.warn, bold: true) : faster.map { Style($0 ? .good : .bad, bold: true) } ?? value
        ttftChip = [Span("TTFT ", label), Span(Fmt.seconds(seconds) + (live ? "…" : ""), style)]
        if let prefill { ttftChip.append(Span(" prefill \(Fmt.percent(prefill))", label)) }
    case .none:
        ttftChip = [Span("TTFT ", label), Span("–", value)]
    }
    let decodeChip = [Span(compact ? "" : "decode ", label), Span(m.decodeRate.map(Fmt.rate) ?? "– tok/s", value)]

    // Hit rate: this turn and overall, as reused/prompt tokens and %.
    func ratio(_ st: RequestStats) -> String {
        st.promptTokens > 0 ? "\(st.reusedTokens)/\(st.promptTokens) \(Fmt.percent(st.hitRate))" : "–"
    }
    let hitChip = [Span("hit ", label), Span(m.turn.map(ratio) ?? "–", value)]
    let allChip = [Span(compact ? "all " : "overall ", label), Span(ratio(m.cumulative), value)]
    let recomputedChip = [Span(compact ? "recomp " : "recomputed ", label), Span("\(m.turn?.recomputed ?? 0)", value)]
    var kvChip = compact
        ? [Span("KV ", label), Span(Fmt.bytes(m.liveKVBytes), value), Span("/", label), Span(Fmt.bytes(m.storeBytes), value)]
        : pane == .baseline
        ? [Span("KV ", label), Span(Fmt.bytes(m.liveKVBytes), value), Span(" live · nothing kept between requests", label)]
        : [Span("KV ", label), Span(Fmt.bytes(m.liveKVBytes), value), Span(" live · store ", label)]
    if !compact && pane == .cached {
        for (i, t) in m.tiers.enumerated() {
            if i > 0 { kvChip.append(Span(" + ", label)) }
            kvChip += [Span(Fmt.bytes(t.bytes), value), Span(" " + (t.name == "ram" ? "RAM" : t.name), label)]
        }
    }
    // Entries rejected (corrupt, foreign, bad MAC), failed and dropped writes: never hidden once counted.
    var problems: [String] = []
    let rejected = m.tiers.reduce(0) { $0 + $1.rejected }, writeErrors = m.tiers.reduce(0) { $0 + $1.writeErrors }
    let dropped = m.tiers.reduce(0) { $0 + $1.droppedWrites }
    if rejected > 0 { problems.append("\(rejected) rejected") }
    if writeErrors > 0 { problems.append("\(writeErrors) write error\(writeErrors == 1 ? "" : "s")") }
    if dropped > 0 { problems.append("\(dropped) dropped write\(dropped == 1 ? "" : "s")") }
    let problemChip = problems.isEmpty || pane == .baseline ? [] : [Span("⚠ " + problems.joined(separator: " · "), Style(.warn))]
    // Where this answer's reused tokens came from, and the remote tier's state and traffic.
    var tierChips: [[Span]] = []
    if pane == .cached, m.remote != nil || m.turnTiers.filter({ $0.hitTokens > 0 }).count > 1 {
        var chip = [Span(compact ? "from " : "hit tokens ", label)]
        for (i, t) in m.turnTiers.enumerated() {
            if i > 0 { chip.append(Span(" · ", label)) }
            chip += [Span(t.name + " ", label), Span("\(t.hitTokens)", value)]
        }
        if m.turnTiers.isEmpty { chip.append(Span("–", value)) }
        tierChips.append(chip)
    }
    if pane == .cached, let remote = m.remote, let stateText = remote.state {
        var chip = [Span("remote: ", label), Span(stateText, Style(stateText == "ok" ? .good : .warn, bold: true))]
        if !compact, let r = m.turnTiers.first(where: { $0.name == remote.name }) {
            chip.append(Span(" · read \(Fmt.bytes(r.bytesRead)) in \(r.roundTrips) round trip\(r.roundTrips == 1 ? "" : "s"), \(Fmt.seconds(r.readSeconds)) · wrote \(Fmt.bytes(r.bytesWritten))", label))
        }
        tierChips.append(chip)
    }

    // Cake: where the compute side (from the front) and the I/O side (from the back) met.
    if let c = m.cake {
        func span(_ r: Range<Int>) -> String { r.isEmpty ? "none" : "\(r.lowerBound)–\(r.upperBound - 1)" }
        tierChips.append(compact
            ? [Span("cake ", label), Span("▸\(span(c.computed)) ◂\(span(c.loaded))", value)]
            : [Span("computed ", label), Span(span(c.computed), value), Span(" ▸ ◂ ", Style(.accent, bold: true)),
               Span("loaded ", label), Span(span(c.loaded), value), Span(" from \(c.tier)", label)])
    }
    // TTFT breakdown (behind a key): the parts add up to the TTFT.
    var breakdownLines: [[Span]] = []
    if let b = m.breakdown {
        var chips: [[Span]] = [[Span(compact ? "TTFT =" : "TTFT parts:", Style(.accent, bold: true))]]
        let shown = b.parts.filter { $0.seconds >= 0.00005 }
        for p in shown { chips.append([Span(p.name + " ", label), Span(Fmt.seconds(p.seconds), value)]) }
        if shown.isEmpty { chips.append([Span("–", value)]) }
        if b.overlappedLoad >= 0.00005 {
            chips.append([Span("(+ \(Fmt.seconds(b.overlappedLoad)) loading hidden behind compute)", label)])
        }
        breakdownLines = flow(chips, width: width)
    }

    // TTFT per turn, both panes on the same scale.
    let sparkLabel = compact ? "" : "TTFT/turn "
    let room = max(1, compact ? min(12, width / 3) : width - sparkLabel.count - 16)
    let hist = Array(m.ttftHistory.suffix(room))
    var spark = [Span(sparkLabel, label)]
    if hist.isEmpty {
        spark.append(Span(compact ? "▁" : "–", Style(.dim)))
    } else {
        spark.append(Span(Fmt.sparkline(hist, max: m.ttftScale), Style(pane == .cached ? .good : .accent)))
        if !compact { spark.append(Span(" max \(Fmt.seconds(m.ttftScale))", label)) }
    }

    // Quality: never hide it.
    func turnLabel(_ t: Int?) -> String { t.map { compact ? "t\($0) " : "turn \($0): " } ?? "" }
    let quality: [[Span]]
    switch m.quality {
    case .historySource:
        quality = [[Span(compact ? "→ history" : "history is built from this answer", label)]]
    case .pending:
        quality = [[Span(compact ? "check: –" : "answer check: after both finish", label)]]
    case .same(let t):
        quality = [[Span(turnLabel(t) + "✓ same answer" + (compact ? "" : " as baseline"), Style(.good))]]
    case .differs(let t, let at, let kl):
        let klText = kl.map { "KL \(Fmt.fixed($0, 4))" } ?? "KL n/a"
        let atText = compact ? "" : (at.map { " at token \($0 + 1)" } ?? "")
        quality = [[Span(turnLabel(t) + "⚠ differs" + (compact ? "" : " from baseline") + atText, Style(.warn, bold: true))],
                   [Span((compact ? "" : "first-token ") + klText, Style(.warn, bold: true))]]
    }

    let extra = tierChips + (problemChip.isEmpty ? [] : [problemChip])
    if compact {
        return flow([ttftChip, decodeChip], width: width)
            + flow([hitChip, allChip], width: width)
            + flow([recomputedChip, kvChip], width: width)
            + (extra.isEmpty ? [] : flow(extra, width: width))
            + breakdownLines
            + flow([spark] + quality, width: width)
    }
    return flow([ttftChip, decodeChip, hitChip, allChip, recomputedChip, kvChip] + extra, width: width)
        + breakdownLines
        + [spark]
        + flow(quality, width: width)
}

/// Lays chips out left to right, two spaces apart, starting a new line when one does not fit.
func flow(_ chips: [[Span]], width: Int) -> [[Span]] {
    var lines: [[Span]] = []
    var line: [Span] = []
    var w = 0
    for chip in chips {
        let cw = chip.reduce(0) { $0 + $1.width }
        if w > 0 && w + 2 + cw > width {
            lines.append(line)
            line = []
            w = 0
        }
        if w > 0 { line.append(Span("  ")); w += 2 }
        line.append(contentsOf: chip)
        w += cw
    }
    if !line.isEmpty { lines.append(line) }
    return lines
}
