import DuelCore

// What the screen shows around the duel when a session is recorded, replayed or re-run:
// the replay's status line and keys in the footer, autoplay's hint, and the live re-run's
// recorded-vs-live TTFT table. (The ● REC / ▶ REPLAY tag is in the top bar.)

/// Draws the footer for replays and autoplay; false when the normal footer applies.
func drawSessionFooter(_ g: inout CellGrid, _ s: AppState, _ r: Rect) -> Bool {
    if s.chrome.mode == .replay {
        var x = r.x + 1
        if let status = s.chrome.status {
            x = g.put(status, x: x, y: r.y, style: Style(.accent, bold: true), limit: r.maxX)
            x += 2
        }
        for item in Keymap.replayFooterItems() {
            let need = DisplayWidth.of(item.keys) + 1 + DisplayWidth.of(item.label) + 2
            if x + need > r.maxX { break }
            x = g.put(item.keys, x: x, y: r.y, style: Style(.keyHint, bold: true))
            x = g.put(" " + item.label + "  ", x: x, y: r.y, style: Style(.dim))
        }
        return true
    }
    if s.chrome.autoplay {
        let x = g.put(" autoplay ", x: r.x + 1, y: r.y, style: Style(.badge, bold: true))
        g.put("  any key takes over · ^C quit", x: x, y: r.y, style: Style(.dim), limit: r.maxX)
        return true
    }
    return false
}

/// Overlays drawn over the duel: the live re-run's comparison table.
func drawSessionChrome(_ g: inout CellGrid, _ s: AppState, _ layout: Layout) {
    guard let rows = s.chrome.comparison, !rows.isEmpty else { return }
    let lines = comparisonLines(rows)
    let area = Rect(x: 0, y: 1, width: g.width, height: layout.left.height)
    let w = min(area.width - 4, (lines.map(DisplayWidth.of).max() ?? 20) + 4)
    let box = centered(w, min(area.height, lines.count + 3), in: area)
    g.fill(box, style: Style(.overlay))
    g.box(box, style: Style(.focusBorder), title: "Recorded vs live TTFT", titleStyle: Style(.overlayTitle, bold: true))
    for (i, l) in lines.prefix(box.height - 3).enumerated() {
        g.put(l, x: box.x + 2, y: box.y + 1 + i, style: Style(i == 0 ? .accent : .overlay, bold: i == 0), limit: box.maxX - 2)
    }
    g.put("Ctrl-C quits", x: box.x + 2, y: box.maxY - 2, style: Style(.dim), limit: box.maxX - 2)
}

/// The comparison as text lines (header first): turn, recorded and live TTFT of both engines.
public func comparisonLines(_ rows: [TTFTComparison]) -> [String] {
    func f(_ v: Double?) -> String { pad(v.map(Fmt.seconds) ?? "–", width: 9, right: true) }
    var out = ["turn   cached: recorded      live   baseline: recorded      live"]
    for r in rows {
        out.append(pad("\(r.turn)", width: 4, right: true) + "  " + pad("", width: 8) + f(r.recorded.cached) + " "
                   + f(r.live.cached) + "  " + pad("", width: 10) + f(r.recorded.baseline) + " " + f(r.live.baseline))
    }
    return out
}
