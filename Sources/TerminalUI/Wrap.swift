/// Word wrap by display width. Breaks at spaces; words wider than the line are split between
/// graphemes (never inside a wide character). Keeps explicit newlines.
public func wordWrap(_ text: String, width: Int) -> [String] {
    guard width > 0 else { return [] }
    var out: [String] = []
    for paragraph in text.split(separator: "\n", omittingEmptySubsequences: false) {
        var line = ""
        var lineWidth = 0
        func flush() {
            out.append(line)
            line = ""
            lineWidth = 0
        }
        for word in paragraph.split(separator: " ", omittingEmptySubsequences: false) {
            if word.isEmpty { continue }   // runs of spaces collapse
            let w = DisplayWidth.of(String(word))
            let sep = lineWidth > 0 ? 1 : 0
            if lineWidth + sep + w <= width {
                if sep == 1 { line.append(" ") }
                line += word
                lineWidth += sep + w
            } else if w <= width {
                if lineWidth > 0 { flush() }
                line = String(word)
                lineWidth = w
            } else {
                // Split a long word.
                if lineWidth > 0 {
                    if lineWidth + 2 <= width { line.append(" "); lineWidth += 1 } else { flush() }
                }
                for ch in word {
                    let cw = DisplayWidth.of(ch)
                    if lineWidth + cw > width { flush() }
                    line.append(ch)
                    lineWidth += cw
                }
            }
        }
        out.append(line)
    }
    return out
}

/// Cuts `text` to at most `width` columns, ending with `…` when cut.
public func truncate(_ text: String, width: Int) -> String {
    guard width > 0 else { return "" }
    if DisplayWidth.of(text) <= width { return text }
    var out = ""
    var w = 0
    for ch in text {
        let cw = DisplayWidth.of(ch)
        if w + cw > width - 1 { break }
        out.append(ch)
        w += cw
    }
    return out + "…"
}

/// Pads with spaces (or cuts) to exactly `width` columns.
public func pad(_ text: String, width: Int, right: Bool = false) -> String {
    let t = truncate(text, width: width)
    let gap = max(0, width - DisplayWidth.of(t))
    return right ? String(repeating: " ", count: gap) + t : t + String(repeating: " ", count: gap)
}
