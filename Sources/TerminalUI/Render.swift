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

extension String {
    func trimmingLeadingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        return String(s)
    }
}
