import DuelCore
import Engine

/// A run of text in one style.
public struct Span: Sendable, Hashable {
    public var text: String
    public var style: Style
    public init(_ text: String, _ style: Style = .normal) {
        self.text = text
        self.style = style
    }
    var width: Int { DisplayWidth.of(text) }
}

/// Where everything goes on a screen of a given size.
public struct Layout: Sendable, Hashable {
    public static let minCols = 80
    public static let minRows = 24

    public var topBar: Rect
    public var left: Rect
    public var right: Rect
    public var panel: Rect
    public var input: Rect
    public var footer: Rect

    /// nil when the screen is smaller than `minCols`×`minRows`.
    public static func compute(cols: Int, rows: Int, blockCount: Int) -> Layout? {
        guard cols >= minCols, rows >= minRows else { return nil }
        let maxPanelRows = rows >= 40 ? 8 : (rows >= 30 ? 6 : 3)
        let panelH = min(max(1, blockCount), maxPanelRows) + 2
        let inputH = 3
        let paneH = rows - 1 - panelH - inputH - 1
        let leftW = cols / 2
        return Layout(
            topBar: Rect(x: 0, y: 0, width: cols, height: 1),
            left: Rect(x: 0, y: 1, width: leftW, height: paneH),
            right: Rect(x: leftW, y: 1, width: cols - leftW, height: paneH),
            panel: Rect(x: 0, y: 1 + paneH, width: cols, height: panelH),
            input: Rect(x: 0, y: 1 + paneH + panelH, width: cols, height: inputH),
            footer: Rect(x: 0, y: rows - 1, width: cols, height: 1))
    }
}

/// Draws the whole screen for `state` into a fresh grid of `state.cols`×`state.rows`. Pure.
public func render(_ state: AppState) -> CellGrid {
    render(state, cols: state.cols, rows: state.rows)
}

/// Draws the whole screen for `state` into a fresh `cols`×`rows` grid. Pure: same input, same grid.
public func render(_ state: AppState, cols: Int, rows: Int) -> CellGrid {
    var g = CellGrid(width: cols, height: rows)
    guard let layout = Layout.compute(cols: cols, rows: rows, blockCount: state.blocks.count) else {
        drawTooSmall(&g, cols: cols, rows: rows)
        return g
    }
    drawTopBar(&g, state, layout.topBar)
    let meterH = max(meterLines(state, .cached, width: layout.left.width - 2).count,
                     meterLines(state, .baseline, width: layout.right.width - 2).count)
    drawPane(&g, state, .cached, layout.left, meterHeight: meterH)
    drawPane(&g, state, .baseline, layout.right, meterHeight: meterH)
    drawPanel(&g, state, layout.panel)
    drawInput(&g, state, layout.input)
    drawFooter(&g, state, layout.footer)
    if let loading = state.loading {
        drawLoading(&g, loading, area: Rect(x: 0, y: 1, width: cols, height: layout.left.height))
    }
    if let error = state.fatalError {
        drawError(&g, error, area: Rect(x: 0, y: 1, width: cols, height: layout.left.height))
    }
    drawSessionChrome(&g, state, layout)
    if state.showHelp { drawHelp(&g, state) }
    return g
}

// MARK: - too small

func drawTooSmall(_ g: inout CellGrid, cols: Int, rows: Int) {
    let lines = [
        "Terminal too small",
        "",
        "This window is \(cols)×\(rows); kvduel needs at least \(Layout.minCols)×\(Layout.minRows).",
        "Enlarge the window to continue, or press Ctrl-C to quit.",
    ]
    var wrapped: [(String, Style)] = []
    for (i, l) in lines.enumerated() {
        for w in wordWrap(l, width: max(1, cols - 2)) { wrapped.append((w, i == 0 ? Style(.warn, bold: true) : .normal)) }
    }
    let top = max(0, (rows - wrapped.count) / 2)
    for (i, (text, style)) in wrapped.enumerated() where top + i < rows {
        let x = max(0, (cols - DisplayWidth.of(text)) / 2)
        g.put(text, x: x, y: top + i, style: style)
    }
}

// MARK: - top bar

func drawTopBar(_ g: inout CellGrid, _ s: AppState, _ r: Rect) {
    let st = Style(.title)
    g.fill(r, style: st)
    let i = s.info
    let size = i.modelBytes > 0 ? " (\(Fmt.bytes(i.modelBytes)))" : ""
    let threads = "\(i.threadsPerEngine) thread\(i.threadsPerEngine == 1 ? "" : "s")/engine"
    let rss = s.rssBytes > 0 ? Fmt.bytes(s.rssBytes) : "–"
    var full = [" kvduel", i.modelName + size, threads, "schedule: \(i.schedule.rawValue)",
                "recompute \(Fmt.percent(i.recomputeRatio))",
                "store \(Fmt.bytes(i.storeCapacityBytes)) \(i.storage)", "RSS \(rss) "]
    var compact = [" kvduel", i.modelName + size, "\(i.threadsPerEngine)thr/eng", i.schedule.rawValue,
                   "rc \(Fmt.percent(i.recomputeRatio))", "store \(Fmt.bytes(i.storeCapacityBytes)) \(i.storage)",
                   "RSS \(rss) "]
    let badge = s.chrome.badge.map { " " + $0 } ?? ""
    full[0] += badge
    compact[0] += badge
    var text = full.joined(separator: " │ ")
    if DisplayWidth.of(text) > r.width {
        var parts = compact
        let others = parts.enumerated().filter { $0.offset != 1 }.reduce(0) { $0 + DisplayWidth.of($1.element) }
        let room = r.width - others - (parts.count - 1)
        parts[1] = truncate(parts[1], width: max(8, room))
        text = parts.joined(separator: "│")
    }
    g.put(truncate(text, width: r.width), x: r.x, y: r.y, style: st)
    g.put(" kvduel", x: r.x, y: r.y, style: Style(.title, bold: true))
    if !badge.isEmpty { g.put(badge, x: r.x + 7, y: r.y, style: Style(.bad, bold: true), limit: r.maxX) }
}

// MARK: - panes

func paneBorder(_ pane: PaneID) -> Style { Style(.border) }

func drawPane(_ g: inout CellGrid, _ s: AppState, _ pane: PaneID, _ r: Rect, meterHeight: Int) {
    let border = paneBorder(pane)
    g.box(r, style: border, title: pane.title, titleStyle: Style(pane == .cached ? .good : .accent, bold: true))
    if pane == .cached, let sp = s.speedup {
        // Within ±5% it is a tie; slower is said plainly.
        let badge: String
        let style: Style
        if sp >= 1.05 {
            badge = " ×\(Fmt.fixed(sp, 1)) faster "; style = Style(.badge, bold: true)
        } else if sp > 0.95 {
            badge = " ×1.0 (tie) "; style = Style(.dim)
        } else {
            badge = " ×\(Fmt.fixed(sp, 2)) slower "; style = Style(.warn, bold: true)
        }
        let w = DisplayWidth.of(badge)
        if r.width > w + DisplayWidth.of(pane.title) + 8 {
            g.put(badge, x: r.maxX - 2 - w, y: r.y, style: style)
        }
    }
    let inner = r.inset(1)
    guard inner.width > 2, inner.height > 2 else { return }
    let meters = meterLines(s, pane, width: inner.width)
    let mh = min(meterHeight, max(0, inner.height - 2))
    let ruleY = inner.maxY - mh - 1
    g.rule(y: ruleY, in: Rect(x: r.x, y: r.y, width: r.width, height: r.height), style: border)
    for (i, line) in meters.prefix(mh).enumerated() {
        var x = inner.x
        for span in line { x = g.put(span.text, x: x, y: ruleY + 1 + i, style: span.style, limit: inner.maxX) }
    }
    let area = Rect(x: inner.x, y: inner.y, width: inner.width, height: ruleY - inner.y)
    drawTranscript(&g, s, pane, area)
}

/// Transcript lines, newest last; only as many entries as needed for `need` lines are wrapped.
func transcriptLines(_ s: AppState, _ pane: PaneID, width: Int, need: Int) -> [[Span]] {
    let p = s[pane]
    var blocks: [[[Span]]] = []
    var count = 0
    for (idx, entry) in p.transcript.enumerated().reversed() {
        var lines: [[Span]] = []
        switch entry {
        case .user(let q):
            let wrapped = wordWrap(q, width: max(1, width - 2))
            for (i, l) in wrapped.enumerated() {
                lines.append([Span(i == 0 ? "› " : "  ", Style(.user, bold: true)), Span(l, Style(.user, bold: true))])
            }
            if idx > 0 { lines.insert([], at: 0) }
        case .answer(let text, let complete):
            let live = !complete && idx == p.transcript.count - 1
            var body = text.trimmingLeadingSpaces()
            if live {
                switch p.phase {
                case .queued:
                    for l in wordWrap("… queued: the cached engine runs first (schedule alternate)", width: width) {
                        lines.append([Span(l, Style(.dim))])
                    }
                case .waiting:
                    if let pf = p.prefill, pf.total > 0 {
                        body = "… prefill \(pf.done)/\(pf.total)"
                    } else {
                        body = "…"
                    }
                    lines.append([Span(body, Style(.dim))])
                    break
                default:
                    body += "▍"
                }
            }
            if lines.isEmpty {
                for l in wordWrap(body, width: width) { lines.append([Span(l)]) }
            }
        case .note(let n):
            for l in wordWrap(n, width: width) { lines.append([Span(l, Style(.dim))]) }
        case .turnStats(let st):
            var t = "TTFT \(Fmt.seconds(st.ttftSeconds)) · reused \(st.reusedTokens)/\(st.promptTokens)"
            t += " (\(Fmt.percent(st.hitRate))) · \(st.generatedTokens) tokens"
            for l in wordWrap(t, width: width) { lines.append([Span(l, Style(.dim))]) }
        }
        blocks.append(lines)
        count += lines.count
        if count >= need { break }
    }
    return blocks.reversed().flatMap { $0 }
}

func drawTranscript(_ g: inout CellGrid, _ s: AppState, _ pane: PaneID, _ area: Rect) {
    guard area.height > 0, area.width > 0 else { return }
    let lines = transcriptLines(s, pane, width: area.width, need: area.height + s.scroll)
    if lines.isEmpty {
        let hint = pane == .cached
            ? "Answers from the engine that reuses KV across requests appear here."
            : "Answers from the engine that recomputes every prompt appear here."
        for (i, l) in wordWrap(hint, width: area.width).prefix(area.height).enumerated() {
            g.put(l, x: area.x, y: area.y + i, style: Style(.dim))
        }
        return
    }
    let scroll = min(s.scroll, max(0, lines.count - area.height))
    let end = lines.count - scroll
    let start = max(0, end - area.height)
    for (i, line) in lines[start..<end].enumerated() {
        var x = area.x
        for span in line { x = g.put(span.text, x: x, y: area.y + i, style: span.style, limit: area.maxX) }
    }
    if scroll > 0 {
        let marker = " ↓ \(scroll) more (PgDn) "
        g.put(marker, x: area.maxX - DisplayWidth.of(marker), y: area.maxY - 1, style: Style(.warn))
    }
}

/// The meter strip of one pane, flowed into lines of at most `width` columns.
/// Below 60 columns the labels shorten so the strip keeps to about four lines.
public func meterLines(_ s: AppState, _ pane: PaneID, width: Int) -> [[Span]] {
    let p = s[pane]
    let compact = width < 60
    let label = Style(.dim)
    let value = Style(.normal, bold: true)
    let other: PaneID = pane == .cached ? .baseline : .cached

    // TTFT (live while waiting).
    var ttftChip: [Span]
    if p.phase == .queued {
        ttftChip = [Span("TTFT ", label), Span("queued", Style(.dim))]
    } else if let t = s.ttft(pane) {
        var ttftStyle = value
        if !t.live, let sp = s.speedup, p.ttftHistory.count == s[other].ttftHistory.count {
            ttftStyle = Style((pane == .cached) == (sp >= 1) ? .good : .bad, bold: true)
        }
        ttftChip = [Span("TTFT ", label),
                    Span(Fmt.seconds(t.seconds) + (t.live ? "…" : ""), t.live ? Style(.warn, bold: true) : ttftStyle)]
        if t.live, let pf = p.prefill, pf.total > 0 {
            ttftChip.append(Span(" prefill \(Fmt.percent(Double(pf.done) / Double(pf.total)))", label))
        }
    } else {
        ttftChip = [Span("TTFT ", label), Span("–", value)]
    }
    // Decode speed: live while streaming, else the last answer's.
    var rate: Double?
    if case .streaming(_, let since, let n) = p.phase, n > 1, s.now > since {
        rate = Double(n - 1) / (s.now - since)
    } else if let st = p.lastStats, st.decodeTokensPerSecond > 0 {
        rate = st.decodeTokensPerSecond
    }
    let decodeChip = [Span(compact ? "" : "decode ", label), Span(rate.map(Fmt.rate) ?? "– tok/s", value)]

    // Hit rate: this turn and overall, as reused/prompt tokens and %.
    func ratio(_ st: RequestStats) -> String {
        st.promptTokens > 0 ? "\(st.reusedTokens)/\(st.promptTokens) \(Fmt.percent(st.hitRate))" : "–"
    }
    let hitChip = [Span("hit ", label), Span(p.lastStats.map(ratio) ?? "–", value)]
    let allChip = [Span(compact ? "all " : "overall ", label), Span(ratio(p.cumulative), value)]
    let recomputedChip = [Span(compact ? "recomp " : "recomputed ", label), Span("\(p.lastStats?.recomputed ?? 0)", value)]
    let live = p.lastStats?.kvBytesLive ?? 0
    let ram = p.lastStats?.storeBytesRAM ?? 0, disk = p.lastStats?.storeBytesDisk ?? 0
    let kvChip = compact
        ? [Span("KV ", label), Span(Fmt.bytes(live), value), Span("/", label), Span(Fmt.bytes(ram + disk), value)]
        : pane == .baseline
        ? [Span("KV ", label), Span(Fmt.bytes(live), value), Span(" live · nothing kept between requests", label)]
        : [Span("KV ", label), Span(Fmt.bytes(live), value), Span(" live · store ", label), Span(Fmt.bytes(ram), value),
           Span(" RAM + ", label), Span(Fmt.bytes(disk), value), Span(" disk", label)]

    // TTFT per turn, both panes on the same scale.
    let maxT = (s[.cached].ttftHistory + s[.baseline].ttftHistory).max() ?? 0
    let sparkLabel = compact ? "" : "TTFT/turn "
    let room = max(1, compact ? min(12, width / 3) : width - sparkLabel.count - 16)
    let hist = Array(p.ttftHistory.suffix(room))
    var spark = [Span(sparkLabel, label)]
    if hist.isEmpty {
        spark.append(Span(compact ? "▁" : "–", Style(.dim)))
    } else {
        spark.append(Span(Fmt.sparkline(hist, max: maxT), Style(pane == .cached ? .good : .accent)))
        if !compact { spark.append(Span(" max \(Fmt.seconds(maxT))", label)) }
    }

    // Quality: never hide it.
    var quality: [[Span]] = []
    if pane == .cached {
        if let d = s.divergence {
            let turn = s.turnInFlight ? (compact ? "t\(s.divergenceTurn) " : "turn \(s.divergenceTurn): ") : ""
            if d.identical {
                quality = [[Span(turn + "✓ same answer" + (compact ? "" : " as baseline"), Style(.good))]]
            } else {
                let kl = d.firstTokenKL.map { "KL \(Fmt.fixed($0, 4))" } ?? "KL n/a"
                let at = compact ? "" : (d.firstDifferingToken.map { " at token \($0 + 1)" } ?? "")
                quality = [[Span(turn + "⚠ differs" + (compact ? "" : " from baseline") + at, Style(.warn, bold: true))],
                           [Span((compact ? "" : "first-token ") + kl, Style(.warn, bold: true))]]
            }
        } else {
            quality = [[Span(compact ? "check: –" : "answer check: after both finish", label)]]
        }
    } else {
        quality = [[Span(compact ? "→ history" : "history is built from this answer", label)]]
    }

    if compact {
        return flow([ttftChip, decodeChip], width: width)
            + flow([hitChip, allChip], width: width)
            + flow([recomputedChip, kvChip], width: width)
            + flow([spark] + quality, width: width)
    }
    return flow([ttftChip, decodeChip, hitChip, allChip, recomputedChip, kvChip], width: width)
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

// MARK: - context panel

func cacheLabel(_ c: SegmentCacheState) -> Span {
    switch c {
    case .cached: return Span("● cached", Style(.good))
    case .partial(let f): return Span("◐ partly \(Fmt.percent(f))", Style(.warn))
    case .notCached: return Span("○ not cached", Style(.dim))
    }
}

func drawPanel(_ g: inout CellGrid, _ s: AppState, _ r: Rect) {
    let focused = s.focus == .panel
    let included = s.blocks.filter(\.included)
    let tokens = included.compactMap(\.tokenCount).reduce(0, +)
    var title = "Context · prompt order · \(included.count) of \(s.blocks.count) included · \(tokens) tokens"
    if focused { title = "▶ " + title }
    g.box(r, style: Style(focused ? .focusBorder : .border), title: title,
          titleStyle: Style(focused ? .focusBorder : .accent, bold: true))
    let inner = r.inset(1)
    guard inner.height > 0 else { return }
    if s.blocks.isEmpty {
        g.put("No documents. Start with --docs DIR or --doc FILE to add context blocks.", x: inner.x + 1, y: inner.y,
              style: Style(.dim), limit: inner.maxX)
        return
    }
    let visible = inner.height
    let first = max(0, min(s.selectedBlock - visible / 2, s.blocks.count - visible))
    let W = inner.width
    let stateW = 15, tokW = 9
    let titleW = max(8, min(40, W - 4 - 4 - tokW - 2 - stateW - 1))
    let snippetX = 4 + 4 + titleW + tokW + 2 + stateW + 2
    for row in 0..<visible {
        let i = first + row
        guard i < s.blocks.count else { break }
        let b = s.blocks[i]
        let y = inner.y + row
        let selected = i == s.selectedBlock && focused
        let base = selected ? Style(.selected) : (b.included ? Style.normal : Style(.dim))
        if selected { g.fill(Rect(x: inner.x, y: y, width: W, height: 1), style: base) }
        var x = inner.x
        x = g.put(pad("\(i + 1)", width: 3, right: true) + " ", x: x, y: y, style: base, limit: inner.maxX)
        x = g.put(b.included ? "[x] " : "[ ] ", x: x, y: y, style: selected ? base : Style(b.included ? .good : .dim), limit: inner.maxX)
        x = g.put(pad(b.document.title, width: titleW), x: x, y: y, style: Style(base.role, bold: b.included), limit: inner.maxX)
        let tok = b.tokenCount.map { "\($0) tok" } ?? "… tok"
        x = g.put(pad(tok, width: tokW, right: true) + "  ", x: x, y: y, style: base, limit: inner.maxX)
        let cl = cacheLabel(b.cache)
        g.put(pad(cl.text, width: stateW), x: x, y: y, style: selected ? base : cl.style, limit: inner.maxX)
        if W - snippetX > 12 {
            let snippet = b.document.text.split(whereSeparator: \.isNewline).joined(separator: " ")
            g.put(truncate(snippet, width: W - snippetX), x: inner.x + snippetX, y: y,
                  style: selected ? base : Style(.dim), limit: inner.maxX)
        }
    }
    if s.blocks.count > visible {
        let more = " \(first + 1)–\(min(s.blocks.count, first + visible)) of \(s.blocks.count) "
        g.put(more, x: r.maxX - 2 - DisplayWidth.of(more), y: r.maxY - 1, style: Style(.dim))
    }
}

// MARK: - input line

/// What an input-line character with no width of its own is drawn as.
let invisibleMark = "·"

/// Columns an input-line character takes (an invisible one takes the mark's column).
func inputCellWidth(_ c: Character) -> Int { max(1, DisplayWidth.of(c)) }

func drawInput(_ g: inout CellGrid, _ s: AppState, _ r: Rect) {
    let focused = s.focus == .input
    var title = "Ask both engines"
    if s.turnInFlight { title += " · answering…" }
    g.box(r, style: Style(focused ? .focusBorder : .border), title: title,
          titleStyle: Style(focused ? .focusBorder : .accent, bold: true))
    if let notice = s.notice {
        let t = " " + truncate(notice, width: max(0, r.width / 2)) + " "
        g.put(t, x: r.maxX - 2 - DisplayWidth.of(t), y: r.y, style: Style(.warn, bold: true))
    }
    let inner = r.inset(1)
    guard inner.width > 4 else { return }
    let promptX = g.put("› ", x: inner.x, y: inner.y, style: Style(.accent, bold: true))
    let avail = inner.maxX - promptX - 1
    let chars = s.input.characters
    // Scroll horizontally so the cursor stays visible.
    var start = 0
    var widthBeforeCursor = chars[0..<s.input.cursor].reduce(0) { $0 + inputCellWidth($1) }
    while widthBeforeCursor > avail - 1, start < s.input.cursor {
        widthBeforeCursor -= inputCellWidth(chars[start])
        start += 1
    }
    var x = promptX
    let textStyle = focused ? Style.normal : Style(.dim)
    if chars.isEmpty && !focused {
        g.put("Tab to come back here and type a question", x: x, y: inner.y, style: Style(.dim), limit: inner.maxX)
    }
    for i in start..<chars.count {
        var style = focused && i == s.input.cursor ? Style(.cursor) : textStyle
        var text = String(chars[i])
        if DisplayWidth.of(chars[i]) == 0 {
            // Invisible on its own (ZWSP, a bidi override, a lone accent or ZWJ): shown as a dim
            // dot, so the line keeps drawing, the cursor can sit on it and Backspace can find it.
            text = invisibleMark
            if !(focused && i == s.input.cursor) { style = Style(.dim) }
        }
        let nx = g.put(text, x: x, y: inner.y, style: style, limit: inner.maxX)
        if nx == x { break }
        x = nx
    }
    if focused && s.input.cursor == chars.count && x < inner.maxX {
        g.put(" ", x: x, y: inner.y, style: Style(.cursor))
    }
    if chars.isEmpty && focused && s.loading == nil {
        g.put("type a question and press Enter", x: x + 2, y: inner.y, style: Style(.dim), limit: inner.maxX)
    }
}

// MARK: - footer

func drawFooter(_ g: inout CellGrid, _ s: AppState, _ r: Rect) {
    var x = r.x + 1
    if s.showHelp {
        g.put("any key closes help", x: x, y: r.y, style: Style(.dim))
        return
    }
    if drawSessionFooter(&g, s, r) { return }
    for item in Keymap.footerItems(focus: s.focus) {
        let need = DisplayWidth.of(item.keys) + 1 + DisplayWidth.of(item.label) + 2
        if x + need > r.maxX { break }
        x = g.put(item.keys, x: x, y: r.y, style: Style(.keyHint, bold: true))
        x = g.put(" " + item.label + "  ", x: x, y: r.y, style: Style(.dim))
    }
    let right = s.turnsCompleted > 0 ? "turn \(s.turnsCompleted) · \(s.history.count) in history " : ""
    if !right.isEmpty, x + DisplayWidth.of(right) < r.maxX {
        g.put(right, x: r.maxX - DisplayWidth.of(right), y: r.y, style: Style(.dim))
    }
}

// MARK: - overlays

func centered(_ width: Int, _ height: Int, in area: Rect) -> Rect {
    let w = min(width, area.width)
    let h = min(height, area.height)
    return Rect(x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h)
}

func drawLoading(_ g: inout CellGrid, _ l: LoadingState, area: Rect) {
    let box = centered(min(64, area.width - 4), 6, in: area)
    g.fill(box, style: Style(.overlay))
    g.box(box, style: Style(.focusBorder), title: "Loading", titleStyle: Style(.overlayTitle, bold: true))
    let inner = box.inset(1).inset(0)
    g.put(truncate(l.message, width: inner.width - 2), x: inner.x + 1, y: inner.y + 1, style: Style(.overlay))
    let pct = " " + pad(Fmt.percent(l.fraction), width: 4, right: true)
    let barW = max(1, inner.width - 2 - DisplayWidth.of(pct))
    let bar = Fmt.bar(l.fraction, width: barW)
    var x = g.put(bar.filled, x: inner.x + 1, y: inner.y + 2, style: Style(.barFill))
    x = g.put(bar.empty, x: x, y: inner.y + 2, style: Style(.barEmpty))
    g.put(pct, x: x, y: inner.y + 2, style: Style(.overlay, bold: true))
}

func drawError(_ g: inout CellGrid, _ message: String, area: Rect) {
    let width = min(76, area.width - 4)
    let lines = wordWrap(message, width: width - 4)
    let box = centered(width, lines.count + 4, in: area)
    g.fill(box, style: Style(.overlay))
    g.box(box, style: Style(.bad), title: "Error", titleStyle: Style(.bad, bold: true))
    for (i, l) in lines.prefix(box.height - 4).enumerated() {
        g.put(l, x: box.x + 2, y: box.y + 1 + i, style: Style(.overlay))
    }
    g.put("Press Ctrl-C to quit.", x: box.x + 2, y: box.maxY - 2, style: Style(.dim))
}

/// Lines of the help overlay, generated from `Keymap.bindings`. `short` uses the short summaries.
public func helpLines(width: Int, short: Bool = false,
                      contexts: [KeyContext] = [.global, .input, .panel]) -> [[Span]] {
    var out: [[Span]] = []
    let keyW = short ? 17 : min(24, max(10, width / 3))
    for ctx in contexts {
        out.append([Span(ctx.title, Style(.overlayTitle, bold: true))])
        for b in Keymap.bindings where b.context == ctx {
            out.append([Span(" " + pad(b.keysLabel, width: keyW - 1), Style(.keyHint, bold: true)),
                        Span(truncate(short ? b.short : b.summary, width: max(1, width - keyW)), Style(.overlay))])
        }
    }
    return out
}

/// Notes under the keys in the help overlay, most important first.
public let helpNotes = [
    "Both engines get the same prompt every turn: the history is built from the BASELINE's answer.",
    "Hit rate = reused / prompt tokens (exact prefix + re-positioned segments). Recomputed = tokens of reused blocks computed again to repair attention across blocks.",
    "Schedule parallel: both engines at once, half the threads each. Schedule alternate: one after the other with all threads; absolute TTFT is more accurate.",
]

func drawHelp(_ g: inout CellGrid, _ s: AppState) {
    let area = Rect(x: 0, y: 0, width: g.width, height: g.height)
    let boxW = min(100, g.width - 4)
    let innerW = boxW - 4
    let maxInner = g.height - 4
    let contexts: [KeyContext] = s.chrome.mode == .replay ? [.replay] : [.global, .input, .panel]
    var content = helpLines(width: innerW, contexts: contexts)
    if content.count + 2 > maxInner {
        // Two columns of short summaries.
        let colW = (innerW - 2) / 2
        let narrow = helpLines(width: colW, short: true, contexts: contexts)
        // Split between sections where possible: the first column takes "Anywhere" and the panel.
        let half = (narrow.count + 1) / 2
        content = []
        for i in 0..<half {
            var line = narrow[i]
            let used = line.reduce(0) { $0 + $1.width }
            line.append(Span(String(repeating: " ", count: max(0, colW + 2 - used))))
            if half + i < narrow.count { line += narrow[half + i] }
            content.append(line)
        }
    }
    // Notes, whole ones only, while they fit.
    var first = true
    for n in helpNotes {
        let lines = wordWrap(n, width: innerW)
        if content.count + lines.count + (first ? 1 : 0) > maxInner { break }
        if first { content.append([]); first = false }
        for l in lines { content.append([Span(l, Style(.dim))]) }
    }
    let box = centered(boxW, min(content.count + 2, g.height - 2), in: area)
    g.fill(box, style: Style(.overlay))
    g.box(box, style: Style(.focusBorder), title: "kvduel · keys  (any key closes)", titleStyle: Style(.overlayTitle, bold: true))
    for (i, line) in content.prefix(box.height - 2).enumerated() {
        var x = box.x + 2
        for span in line { x = g.put(span.text, x: x, y: box.y + 1 + i, style: span.style, limit: box.maxX - 2) }
    }
}

extension String {
    func trimmingLeadingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        return String(s)
    }
}
