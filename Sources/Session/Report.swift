import DuelCore
import Engine
import Foundation

/// `kvduel report FILE -o OUT.svg|.html`: a picture of a session for a slide, from the log alone.
///
/// - top: TTFT per turn for both engines on a log scale, each turn's speed-up labelled;
/// - bottom left: hit rate per turn (reused / prompt tokens) of the cached engine;
/// - bottom right: memory after each turn (cached KV store RAM + disk, live KV of both, process RSS);
/// - caption: model, machine, schedule, threads, recompute ratio and the other settings.
public enum SessionReport {
    public static let width = 1200.0
    public static let height = 800.0

    static let cachedColor = "#2e9e5b"
    static let baselineColor = "#4a78c2"
    static let ink = "#222"
    static let grid = "#ddd"

    public static func svg(_ log: SessionLog) -> String {
        let turns = log.turns
        let h = log.header
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
        <rect width="100%" height="100%" fill="#fff"/>

        """
        s += text(40, 44, "\(h.model.name): KV reuse against a baseline, \(turns.count) turn\(turns.count == 1 ? "" : "s")",
                  size: 24, weight: "bold")
        s += legend(x: 760, y: 70)
        if turns.isEmpty {
            s += text(40, 120, "No finished turns in this session.", size: 18)
        } else {
            s += ttftChart(turns, x: 90, y: 80, w: 1070, h: 330)
            s += hitChart(turns, x: 90, y: 470, w: 470, h: 200)
            s += memoryChart(turns, x: 690, y: 470, w: 470, h: 200)
        }
        for (i, line) in caption(log).enumerated() {
            s += text(40, 728 + Double(i) * 20, line, size: 14, fill: "#444")
        }
        s += "</svg>\n"
        return s
    }

    /// An HTML page holding the SVG and a table of the figures.
    public static func html(_ log: SessionLog) -> String {
        var rows = ""
        for t in log.turns {
            rows += "<tr><td>\(t.turn)\(t.cold ? " (cold)" : "")</td><td>\(esc(t.question))</td>"
            rows += "<td>\(t.cached.map { secs($0.ttftSeconds) } ?? "–")</td><td>\(t.baseline.map { secs($0.ttftSeconds) } ?? "–")</td>"
            rows += "<td>\(t.speedup.map { "×" + String(format: "%.1f", $0) } ?? "–")</td>"
            rows += "<td>\(t.cached.map { "\($0.reusedTokens)/\($0.promptTokens) (\(Int(($0.hitRate * 100).rounded()))%)" } ?? "–")</td></tr>\n"
        }
        return """
        <!doctype html>
        <html><head><meta charset="utf-8"><title>\(esc(log.header.title))</title>
        <style>body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px;color:#222}
        table{border-collapse:collapse;margin-top:16px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style>
        </head><body>
        \(svg(log))
        <table><tr><th>turn</th><th>question</th><th>cached TTFT</th><th>baseline TTFT</th><th>speed-up</th><th>cached hit</th></tr>
        \(rows)</table>
        </body></html>

        """
    }

    static func caption(_ log: SessionLog) -> [String] {
        let h = log.header, o = h.options
        let fp = h.model.fingerprint.isEmpty ? "" : " · fingerprint \(h.model.fingerprint.prefix(24))"
        let machine = [h.machine.cpu.isEmpty ? nil : h.machine.cpu, "\(h.machine.cores) cores",
                       h.machine.memoryBytes > 0 ? "\(h.machine.memoryBytes >> 30) GiB" : nil, h.machine.host]
            .compactMap { $0 }.joined(separator: ", ")
        return [
            "Model: \(h.model.name)\(h.model.fileBytes > 0 ? " (\(mib(h.model.fileBytes)))" : "")\(fp) · engines: \(o.engines)",
            "Machine: \(machine)",
            "Schedule \(o.schedule) · \(o.threadsPerEngine) thread\(o.threadsPerEngine == 1 ? "" : "s") per engine · recompute \(Int((o.recomputeRatio * 100).rounded()))% · store \(mib(o.storeRAMBytes)) RAM \(o.encoding)\(o.diskTier ? " + disk" : "") · max \(o.maxTokens) tokens · \(o.temperature == 0 ? "greedy" : "temperature \(o.temperature)")",
            "Recorded \(h.started) with kvduel \(h.kvduel) · TTFT = submit → first token, same model, kernels and threads for both",
        ]
    }

    // MARK: - charts

    static func ttftChart(_ turns: [TurnFigures], x: Double, y: Double, w: Double, h: Double) -> String {
        var s = text(x - 50, y - 10, "Time to first token per turn (log scale)", size: 16, weight: "bold")
        let values = turns.flatMap { [$0.cached?.ttftSeconds, $0.baseline?.ttftSeconds] }.compactMap { $0 }.filter { $0 > 0 }
        let lo = pow(10, floor(log10(values.min() ?? 0.01)))
        let hi = pow(10, ceil(log10(max(values.max() ?? 1, lo * 10))))
        func yOf(_ v: Double) -> Double {
            let f = (log10(max(v, lo)) - log10(lo)) / (log10(hi) - log10(lo))
            return y + h - f * h
        }
        var d = lo
        while d <= hi * 1.0001 {
            let gy = yOf(d)
            s += line(x, gy, x + w, gy, stroke: grid)
            s += text(x - 8, gy + 5, secs(d), size: 13, anchor: "end", fill: "#555")
            d *= 10
        }
        s += line(x, y, x, y + h, stroke: ink)
        s += line(x, y + h, x + w, y + h, stroke: ink)
        let slot = w / Double(turns.count)
        let barW = min(60, slot * 0.32)
        for (i, t) in turns.enumerated() {
            let cx = x + slot * (Double(i) + 0.5)
            for (k, v) in [t.cached?.ttftSeconds, t.baseline?.ttftSeconds].enumerated() {
                guard let v, v > 0 else { continue }
                let bx = cx + (k == 0 ? -barW - 2 : 2)
                let top = yOf(v)
                s += rect(bx, top, barW, y + h - top, fill: k == 0 ? cachedColor : baselineColor)
                if slot > 70 { s += text(bx + barW / 2, top - 4, secs(v), size: 11, anchor: "middle", fill: "#333") }
            }
            if let sp = t.speedup {
                let top = min(yOf(t.cached?.ttftSeconds ?? lo), yOf(t.baseline?.ttftSeconds ?? lo))
                // Within ±5% it is a tie, as on the screen.
                let color = sp >= 1.05 ? cachedColor : (sp > 0.95 ? "#777" : "#c0392b")
                s += text(cx, top - 20, "×" + String(format: sp >= 10 ? "%.0f" : "%.1f", sp), size: 15, weight: "bold",
                          anchor: "middle", fill: color)
            }
            s += text(cx, y + h + 18, "turn \(t.turn)\(t.cold ? " · cold" : "")", size: 13, anchor: "middle")
        }
        return s
    }

    static func hitChart(_ turns: [TurnFigures], x: Double, y: Double, w: Double, h: Double) -> String {
        var s = text(x - 50, y - 10, "Cached engine: hit rate per turn", size: 16, weight: "bold")
        for p in [0.0, 0.5, 1.0] {
            let gy = y + h - p * h
            s += line(x, gy, x + w, gy, stroke: grid)
            s += text(x - 8, gy + 5, "\(Int(p * 100))%", size: 13, anchor: "end", fill: "#555")
        }
        s += line(x, y + h, x + w, y + h, stroke: ink)
        let slot = w / Double(turns.count)
        let barW = min(50, slot * 0.6)
        for (i, t) in turns.enumerated() {
            let cx = x + slot * (Double(i) + 0.5)
            let r = t.cached?.hitRate ?? 0
            s += rect(cx - barW / 2, y + h - r * h, barW, r * h, fill: cachedColor)
            if slot > 36 { s += text(cx, y + h - r * h - 5, "\(Int((r * 100).rounded()))%", size: 12, anchor: "middle") }
            s += text(cx, y + h + 18, "\(t.turn)", size: 13, anchor: "middle")
        }
        return s
    }

    static func memoryChart(_ turns: [TurnFigures], x: Double, y: Double, w: Double, h: Double) -> String {
        var s = text(x - 50, y - 10, "Memory after each turn", size: 16, weight: "bold")
        let legendX = x + w - 175
        let w = w - 185
        let series: [(String, String, [Double])] = [
            ("KV store (RAM + disk)", cachedColor, turns.map { Double(($0.cached?.storeBytesRAM ?? 0) + ($0.cached?.storeBytesDisk ?? 0)) }),
            ("live KV, cached", "#7bc89a", turns.map { Double($0.cached?.kvBytesLive ?? 0) }),
            ("live KV, baseline", baselineColor, turns.map { Double($0.baseline?.kvBytesLive ?? 0) }),
            ("process RSS", "#888", turns.map { Double($0.rssBytes) }),
        ]
        let top = max(1, series.flatMap(\.2).max() ?? 1) * 1.1
        for p in [0.0, 0.5, 1.0] {
            let gy = y + h - p * h
            s += line(x, gy, x + w, gy, stroke: grid)
            s += text(x - 8, gy + 5, mib(Int(top * p)), size: 13, anchor: "end", fill: "#555")
        }
        s += line(x, y + h, x + w, y + h, stroke: ink)
        let slot = w / Double(turns.count)
        for (k, (name, color, vals)) in series.enumerated() {
            let pts = vals.enumerated().map { i, v in (x + slot * (Double(i) + 0.5), y + h - v / top * h) }
            if pts.count > 1 {
                s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2.5\" points=\"\(pts.map { "\(f1($0.0)),\(f1($0.1))" }.joined(separator: " "))\"/>\n"
            }
            for p in pts { s += "<circle cx=\"\(f1(p.0))\" cy=\"\(f1(p.1))\" r=\"3.5\" fill=\"\(color)\"/>\n" }
            s += rect(legendX, y + 6 + Double(k) * 36, 12, 12, fill: color)
            s += text(legendX + 18, y + 17 + Double(k) * 36, name, size: 12)
            s += text(legendX + 18, y + 32 + Double(k) * 36, vals.last.map { "last: " + mib(Int($0)) } ?? "", size: 12, fill: "#555")
        }
        for (i, t) in turns.enumerated() { s += text(x + slot * (Double(i) + 0.5), y + h + 18, "\(t.turn)", size: 13, anchor: "middle") }
        return s
    }

    static func legend(x: Double, y: Double) -> String {
        rect(x, y - 12, 14, 14, fill: cachedColor) + text(x + 20, y, "cached · KV reuse", size: 15)
            + rect(x + 190, y - 12, 14, 14, fill: baselineColor) + text(x + 210, y, "baseline · no reuse", size: 15)
    }

    // MARK: - SVG bits

    static func f1(_ v: Double) -> String { String(format: "%.1f", v) }
    static func text(_ x: Double, _ y: Double, _ t: String, size: Int, weight: String = "normal",
                     anchor: String = "start", fill: String = ink) -> String {
        "<text x=\"\(f1(x))\" y=\"\(f1(y))\" font-size=\"\(size)\" font-weight=\"\(weight)\" text-anchor=\"\(anchor)\" fill=\"\(fill)\">\(esc(t))</text>\n"
    }
    static func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String) -> String {
        "<line x1=\"\(f1(x1))\" y1=\"\(f1(y1))\" x2=\"\(f1(x2))\" y2=\"\(f1(y2))\" stroke=\"\(stroke)\" stroke-width=\"1\"/>\n"
    }
    static func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String) -> String {
        "<rect x=\"\(f1(x))\" y=\"\(f1(y))\" width=\"\(f1(max(0, w)))\" height=\"\(f1(max(0, h)))\" fill=\"\(fill)\"/>\n"
    }
    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
    static func secs(_ v: Double) -> String {
        if v >= 10 { return String(format: "%.0f s", v) }
        if v >= 1 { return String(format: "%.1f s", v) }
        if v >= 0.1 { return String(format: "%.2f s", v) }
        return String(format: "%.0f ms", v * 1000)
    }
    static func mib(_ b: Int) -> String {
        b >= 1 << 30 ? String(format: "%.1f GiB", Double(b) / Double(1 << 30)) : String(format: "%.0f MiB", Double(b) / Double(1 << 20))
    }
}
