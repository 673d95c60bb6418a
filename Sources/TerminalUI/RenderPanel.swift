// The context panel: the blocks in prompt order, included or not, and their cache state.
import DuelCore
import Engine

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
