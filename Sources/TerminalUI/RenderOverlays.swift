// Overlays drawn over the panes: loading progress, a fatal error, the help screen.
import DuelCore
import Engine

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
    "Cake (stored prefix in a slow tier): the cached engine prefills from the front while an I/O thread loads stored KV from the back; they stop where they meet, shown as computed A–B ▸ ◂ loaded C–D.",
    "It is never slower than the better of loading all or computing all; --load-strategy cake|load|compute picks, and --remote-bandwidth/--remote-latency/--disk-bandwidth dial the link down for a demo.",
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
