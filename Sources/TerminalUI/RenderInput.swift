// The input line, in grapheme clusters with their display width.
import DuelCore
import Engine

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
