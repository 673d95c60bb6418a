// The two panes: border, speed-up badge, transcript; the meter strip is in Meters.swift.
import DuelCore
import Engine

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
