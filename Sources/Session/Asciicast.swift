import DuelCore
import Foundation
import TerminalUI

/// Turns successive cell grids into the ANSI output that changes one screen into the next:
/// cursor moves, SGR colours from the theme, and only the cells that changed.
public struct AnsiFrameWriter {
    public let theme: Theme
    private var previous: CellGrid?
    private var sgr = ""

    public init(theme: Theme) { self.theme = theme }

    /// SGR parameters of a style under this theme.
    func parameters(_ style: Style) -> String {
        let look = theme.look(style.role)
        var p = ["0"]
        var attrs = look.attrs
        if style.bold { attrs.insert(.bold) }
        if attrs.contains(.bold) { p.append("1") }
        if attrs.contains(.dim) { p.append("2") }
        if attrs.contains(.underline) { p.append("4") }
        if attrs.contains(.reverse) { p.append("7") }
        if theme.usesColor {
            if look.fg != .standard { p.append(String(30 + Int(look.fg.rawValue))) }
            if look.bg != .standard { p.append(String(40 + Int(look.bg.rawValue))) }
        }
        return p.joined(separator: ";")
    }

    /// The output that turns the last frame into `grid` (everything for the first frame or after
    /// a size change). Empty when nothing changed.
    public mutating func frame(_ grid: CellGrid) -> String {
        var out = ""
        let full = previous.map { $0.width != grid.width || $0.height != grid.height } ?? true
        if full {
            sgr = "0"
            out += "\u{1b}[?25l\u{1b}[0m\u{1b}[H\u{1b}[2J"
        }
        var cx = -1, cy = -1
        for y in 0..<grid.height {
            var x = 0
            while x < grid.width {
                let cell = grid[x, y]
                var changed = full || previous![x, y] != cell
                if !changed, cell.width == 2, x + 1 < grid.width, previous![x + 1, y] != grid[x + 1, y] { changed = true }
                if cell.width == 0 || !changed { x += 1; continue }
                if cx != x || cy != y { out += "\u{1b}[\(y + 1);\(x + 1)H" }
                let p = parameters(cell.style)
                if p != sgr { out += "\u{1b}[\(p)m"; sgr = p }
                out.append(cell.char)
                x += Int(max(1, cell.width))
                // After the last column the cursor waits to wrap: place it again before writing.
                cx = x < grid.width ? x : -1
                cy = y
            }
        }
        previous = grid
        return out
    }
}

public struct ExportOptions: Sendable {
    public var playback = PlaybackOptions()
    /// nil: the recorded size.
    public var cols: Int?
    public var rows: Int?
    /// nil: the recorded theme.
    public var theme: String?
    /// Frames per second of live counters between events (TTFT while waiting).
    public var tickHz: Double = 10
    public init() {}
}

/// Summary of an export, for the command's one-line report.
public struct ExportSummary: Sendable {
    public var frames: Int
    public var markers: Int
    public var duration: Double
    public var cols: Int
    public var rows: Int
}

/// Writes asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/) for a session log, with
/// no terminal and no model: a header line, then `[time, "o", ansi]` for each frame's cell diff and
/// `[time, "m", label]` for each marker, times monotonic.
public func exportAsciicast(_ log: SessionLog, options: ExportOptions = ExportOptions()) throws -> (text: String, summary: ExportSummary) {
    let cols = options.cols ?? log.header.cols
    let rows = options.rows ?? log.header.rows
    let themeName = options.theme ?? log.header.theme
    let theme = Theme.resolve(name: themeName, environment: [:], terminalHasColors: true)
    var playback = options.playback
    playback.pauseAtMarkers = false
    let speed = max(1e-6, playback.speed)
    let player = ReplayPlayer(log: log, options: playback)
    var writer = AnsiFrameWriter(theme: theme)

    var header: [String: Any] = [
        "version": 2, "width": cols, "height": rows, "timestamp": Int(log.header.startedUnix),
        "title": log.header.title,
        "env": ["TERM": "xterm-256color", "SHELL": "/bin/sh"],
    ]
    if let idle = playback.idleLimit { header["idle_time_limit"] = idle }
    var lines: [String] = []
    var lastTime = 0.0
    var frames = 0, markers = 0
    func emit(_ p: Double, _ code: String, _ data: String) throws {
        let t = max(lastTime, (p / speed * 1e6).rounded() / 1e6)
        lastTime = t
        lines.append(try jsonLine([t, code, data]))
    }
    func frame() throws {
        var s = player.state
        s.chrome.mode = .live   // an export shows the duel as it was, without replay controls
        let out = writer.frame(render(s, cols: cols, rows: rows))
        if !out.isEmpty {
            try emit(player.position, "o", out)
            frames += 1
        }
    }
    try frame()
    let coalesce = 1.0 / 30
    while !player.isAtEnd {
        let nextP = player.playTimes[player.next]
        // Live counters tick between events (the TTFT counting up while an engine thinks).
        let s = player.state
        if s.loading != nil || s.panes.contains(where: \.isBusy) {
            var p = player.position + 1 / options.tickHz
            while p < nextP - 1e-9 {
                player.seek(to: p)
                try frame()
                p += 1 / options.tickHz
            }
        }
        let first = player.next
        player.seek(to: nextP)
        while !player.isAtEnd && player.playTimes[player.next] < nextP + coalesce { player.applyNext() }
        for i in first..<player.next {
            if case .markerDropped(let label) = log.events[i].action {
                markers += 1
                try emit(player.playTimes[i], "m", label ?? "marker \(markers)")
            }
        }
        try frame()
    }
    try emit(player.position, "o", "\u{1b}[0m\u{1b}[?25h")
    header["duration"] = lastTime
    lines.insert(try jsonLine(header), at: 0)
    return (lines.joined(separator: "\n") + "\n",
            ExportSummary(frames: frames, markers: markers, duration: lastTime, cols: cols, rows: rows))
}

func jsonLine(_ value: Any) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self)
}
