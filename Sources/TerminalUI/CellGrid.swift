/// What a cell means; a `Theme` turns it into colours and attributes.
public enum Role: UInt8, Sendable, Hashable, CaseIterable {
    case normal, dim, title, accent, good, bad, warn, border, focusBorder
    case user, selected, badge, barFill, barEmpty, keyHint, overlay, overlayTitle, cursor
}

public struct Style: Sendable, Hashable {
    public var role: Role
    public var bold: Bool
    public init(_ role: Role = .normal, bold: Bool = false) {
        self.role = role
        self.bold = bold
    }
    public static let normal = Style()
}

/// One terminal cell: a grapheme and its style. A wide grapheme sits in its first cell with
/// `width == 2`; the cell after it is a continuation (`width == 0`).
public struct Cell: Sendable, Hashable {
    public var char: Character
    public var width: UInt8
    public var style: Style
    public init(_ char: Character = " ", width: UInt8 = 1, style: Style = .normal) {
        self.char = char
        self.width = width
        self.style = style
    }
    public static let blank = Cell()
}

public struct Rect: Sendable, Hashable {
    public var x, y, width, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = max(0, width)
        self.height = max(0, height)
    }
    public var maxX: Int { x + width }
    public var maxY: Int { y + height }
    public func inset(_ d: Int) -> Rect { Rect(x: x + d, y: y + d, width: width - 2 * d, height: height - 2 * d) }
}

/// An in-memory screen. `render` draws into it; the curses backend blits it; tests read it as text.
public struct CellGrid: Sendable, Hashable {
    public let width: Int
    public let height: Int
    public private(set) var cells: [Cell]

    public init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
        cells = Array(repeating: .blank, count: self.width * self.height)
    }

    public subscript(x: Int, y: Int) -> Cell {
        cells[y * width + x]
    }

    /// Sets one cell, repairing any wide character it cuts in half.
    public mutating func set(_ x: Int, _ y: Int, _ cell: Cell) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = y * width + x
        let old = cells[i]
        if old.width == 0, x > 0 { cells[i - 1] = Cell(" ", style: cells[i - 1].style) }
        if old.width == 2, x + 1 < width { cells[i + 1] = Cell(" ", style: cells[i + 1].style) }
        cells[i] = cell
        if cell.width == 2, x + 1 < width {
            let j = i + 1
            if cells[j].width == 2, x + 2 < width { cells[j + 1] = Cell(" ", style: cells[j + 1].style) }
            cells[j] = Cell(" ", width: 0, style: cell.style)
        }
    }

    /// Writes `text` from (x, y), never past `limit` (exclusive column; default: grid width).
    /// A wide character that would straddle the limit is replaced by a space. Returns the next column.
    @discardableResult
    public mutating func put(_ text: String, x: Int, y: Int, style: Style = .normal, limit: Int? = nil) -> Int {
        guard y >= 0, y < height else { return x }
        let end = min(limit ?? width, width)
        var cx = x
        for ch in text {
            if cx >= end { break }
            var c = ch
            var w = DisplayWidth.of(ch)
            if w == 0 {
                if ch.unicodeScalars.first.map({ $0.value < 0x20 || $0.value == 0x7f }) ?? false {
                    c = " "; w = 1   // control characters would corrupt the screen
                } else {
                    continue        // lone combining mark: drop
                }
            }
            if w == 2 && cx + 1 >= end {
                if cx >= 0 { set(cx, y, Cell(" ", style: style)) }
                cx += 1
                break
            }
            if cx >= 0 { set(cx, y, Cell(c, width: UInt8(w), style: style)) }
            cx += w
        }
        return cx
    }

    public mutating func fill(_ r: Rect, _ ch: Character = " ", style: Style = .normal) {
        for y in max(0, r.y)..<min(height, r.maxY) {
            for x in max(0, r.x)..<min(width, r.maxX) { set(x, y, Cell(ch, style: style)) }
        }
    }

    /// Draws a single-line box around `r` with an optional title on the top edge.
    public mutating func box(_ r: Rect, style: Style, title: String? = nil, titleStyle: Style? = nil) {
        guard r.width >= 2, r.height >= 2 else { return }
        for x in r.x + 1..<r.maxX - 1 {
            set(x, r.y, Cell("─", style: style))
            set(x, r.maxY - 1, Cell("─", style: style))
        }
        for y in r.y + 1..<r.maxY - 1 {
            set(r.x, y, Cell("│", style: style))
            set(r.maxX - 1, y, Cell("│", style: style))
        }
        set(r.x, r.y, Cell("┌", style: style))
        set(r.maxX - 1, r.y, Cell("┐", style: style))
        set(r.x, r.maxY - 1, Cell("└", style: style))
        set(r.maxX - 1, r.maxY - 1, Cell("┘", style: style))
        if let title, r.width > 4 {
            put(" " + title + " ", x: r.x + 2, y: r.y, style: titleStyle ?? style, limit: r.maxX - 2)
        }
    }

    /// A horizontal rule inside a box: ├────┤.
    public mutating func rule(y: Int, in r: Rect, style: Style) {
        guard r.width >= 2 else { return }
        set(r.x, y, Cell("├", style: style))
        for x in r.x + 1..<r.maxX - 1 { set(x, y, Cell("─", style: style)) }
        set(r.maxX - 1, y, Cell("┤", style: style))
    }

    /// The row as text (continuation cells skipped), trailing spaces kept.
    public func row(_ y: Int) -> String {
        var s = ""
        s.reserveCapacity(width)
        for x in 0..<width {
            let c = cells[y * width + x]
            if c.width != 0 { s.append(c.char) }
        }
        return s
    }

    /// The whole screen as text, one line per row, trailing spaces trimmed (for snapshots).
    public var text: String {
        (0..<height).map { y -> String in
            var r = row(y)
            while r.last == " " { r.removeLast() }
            return r
        }.joined(separator: "\n")
    }

    /// Whether every row spans exactly `width` columns (no broken wide characters).
    public var isConsistent: Bool {
        for y in 0..<height {
            var cols = 0
            var x = 0
            while x < width {
                let c = cells[y * width + x]
                if c.width == 0 { return false }
                if c.width == 2 {
                    if x + 1 >= width || cells[y * width + x + 1].width != 0 { return false }
                    x += 2; cols += 2
                } else {
                    x += 1; cols += 1
                }
            }
            if cols != width { return false }
        }
        return true
    }
}
