// The top bar: model, threads, schedule, recompute, store, remote, RSS: what makes the duel fair.
import DuelCore
import Engine

func drawTopBar(_ g: inout CellGrid, _ s: AppState, _ r: Rect) {
    let st = Style(.title)
    g.fill(r, style: st)
    let i = s.info
    let size = i.modelBytes > 0 ? " (\(Fmt.bytes(i.modelBytes)))" : ""
    let threads = "\(i.threadsPerEngine) thread\(i.threadsPerEngine == 1 ? "" : "s")/engine"
    let rss = s.rssBytes > 0 ? Fmt.bytes(s.rssBytes) : "–"
    var remote = i.remote.map { ["remote \($0)"] } ?? []
    // A dialed-down link makes loading slower on purpose: say so, with the strategy it tests.
    if !i.link.isEmpty { remote.append("link " + i.link) }
    if let st = i.loadStrategy, i.remote != nil || !i.link.isEmpty { remote.append("prefix: " + st) }
    var full = [" kvduel", i.modelName + size, threads, "schedule: \(i.schedule.rawValue)",
                "recompute \(Fmt.percent(i.recomputeRatio))",
                "store \(Fmt.bytes(i.storeCapacityBytes)) \(i.storage)"] + remote + ["RSS \(rss) "]
    var compact = [" kvduel", i.modelName + size, "\(i.threadsPerEngine)thr/eng", i.schedule.rawValue,
                   "rc \(Fmt.percent(i.recomputeRatio))", "store \(Fmt.bytes(i.storeCapacityBytes)) \(i.storage)"]
                   + remote + ["RSS \(rss) "]
    let badge = s.chrome.badge.map { " " + $0 } ?? ""
    full[0] += badge
    compact[0] += badge
    var text = full.joined(separator: " │ ")
    if DisplayWidth.of(text) > r.width {
        var parts = compact
        let others = parts.enumerated().filter { $0.offset != 1 }.reduce(0) { $0 + DisplayWidth.of($1.element) }
        let room = r.width - others - (parts.count - 1)
        parts[1] = truncate(parts[1], width: max(8, room))
        text = parts.joined(separator: "│")
    }
    g.put(truncate(text, width: r.width), x: r.x, y: r.y, style: st)
    g.put(" kvduel", x: r.x, y: r.y, style: Style(.title, bold: true))
    if !badge.isEmpty { g.put(badge, x: r.x + 7, y: r.y, style: Style(.bad, bold: true), limit: r.maxX) }
}
