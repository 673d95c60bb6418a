// The footer: keys for the focused part, from the keymap table.
import DuelCore
import Engine

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
