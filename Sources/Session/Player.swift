import DuelCore
import Foundation

/// How a log is played back (`kvduel replay` and `kvduel export`).
public struct PlaybackOptions: Sendable, Hashable {
    /// Playback speed: 2 = twice as fast.
    public var speed: Double = 1
    /// Pauses between events longer than this many seconds are cut to it (asciinema's `-i`).
    public var idleLimit: Double?
    /// Pause when a marker is reached.
    public var pauseAtMarkers = false
    public init(speed: Double = 1, idleLimit: Double? = nil, pauseAtMarkers: Bool = false) {
        self.speed = speed
        self.idleLimit = idleLimit
        self.pauseAtMarkers = pauseAtMarkers
    }
}

/// Plays a session log into an `AppState`, with no model: each event is reduced at its time, so
/// the screen shows exactly the recorded figures. Time is a position on the play timeline (the
/// recorded one with long pauses cut to the idle limit); the recorded clock is fed to the state
/// through `.tick`, so live counters (TTFT while waiting) show what they showed when recorded.
public final class ReplayPlayer {
    public let log: SessionLog
    public private(set) var state: AppState
    /// Index of the next event to apply.
    public private(set) var next = 0
    /// Position on the play timeline, seconds.
    public private(set) var position = 0.0
    public var speed: Double
    public var paused = false
    public let pauseAtMarkers: Bool
    /// Each event's time on the play timeline.
    public let playTimes: [Double]

    public init(log: SessionLog, options: PlaybackOptions = PlaybackOptions()) {
        self.log = log
        speed = options.speed
        pauseAtMarkers = options.pauseAtMarkers
        var times: [Double] = []
        var prevT = 0.0, prevP = 0.0
        for e in log.events {
            var gap = max(0, e.t - prevT)
            if let cap = options.idleLimit { gap = min(gap, cap) }
            prevP += gap
            prevT = e.t
            times.append(prevP)
        }
        playTimes = times
        let h = log.header
        state = AppState(config: h.config, cols: h.cols, rows: h.rows, now: 0, loading: true)
        state.chrome.mode = .replay
    }

    /// Length of the play timeline, seconds.
    public var length: Double { playTimes.last ?? 0 }
    public var isAtEnd: Bool { next >= log.events.count }

    /// The recorded clock at a play position: the last event's time plus the time since it,
    /// never past the next event.
    public func recordedTime(at p: Double) -> Double {
        guard next > 0 else { return min(p, log.events.first?.t ?? p) }
        let last = log.events[next - 1].t
        var t = last + max(0, p - playTimes[next - 1])
        if next < log.events.count { t = min(t, log.events[next].t) }
        return t
    }

    /// Whether an action is replayed into the state. Quit and help belong to the viewer.
    public static func isReplayed(_ a: Action) -> Bool {
        switch a {
        case .quitRequested, .helpToggled, .breakdownToggled, .tick: return false
        default: return true
        }
    }

    /// Applies the next event. Returns it.
    @discardableResult
    public func applyNext() -> SessionEvent? {
        guard next < log.events.count else { return nil }
        let e = log.events[next]
        reduce(&state, .tick(now: e.t))
        if Self.isReplayed(e.action) { reduce(&state, e.action) }
        position = max(position, playTimes[next])
        next += 1
        return e
    }

    /// Plays `realSeconds` of wall time at the current speed (nothing while paused). Stops at a
    /// marker and pauses when `pauseAtMarkers` is set. Returns whether anything changed.
    @discardableResult
    public func advance(by realSeconds: Double) -> Bool {
        guard !paused, !isAtEnd else { return false }
        let target = position + max(0, realSeconds) * speed
        return seek(to: target, stopAtMarkers: pauseAtMarkers)
    }

    /// Applies every event up to play position `p` (marker stops optional) and moves there.
    @discardableResult
    public func seek(to p: Double, stopAtMarkers: Bool = false) -> Bool {
        var changed = false
        while next < log.events.count, playTimes[next] <= p {
            let e = applyNext()
            changed = true
            if stopAtMarkers, case .markerDropped? = e?.action {
                // What happened at the same moment (the label leaving the input line) goes too.
                while next < log.events.count, log.events[next].t == e!.t { applyNext() }
                paused = true
                reduce(&state, .tick(now: recordedTime(at: position)))
                return true
            }
        }
        position = min(max(position, p), length)
        let now = recordedTime(at: position)
        if now != state.now { reduce(&state, .tick(now: now)); changed = true }
        return changed
    }

    /// One event forward (for `.` while paused).
    public func step() { applyNext() }

    /// Plays through the next marker and stops just after it.
    public func jumpToNextMarker() {
        guard let m = log.markers.first(where: { $0.index >= next }) else {
            seek(to: length)
            return
        }
        seek(to: playTimes[m.index])
        while next <= m.index { applyNext() }
        while next < log.events.count, log.events[next].t == log.events[m.index].t { applyNext() }
    }

    /// The next marker after the position: number (1-based), label and seconds to it.
    public var nextMarker: (number: Int, label: String?, inSeconds: Double)? {
        let ms = log.markers
        guard let i = ms.firstIndex(where: { $0.index >= next }) else { return nil }
        return (i + 1, ms[i].label, max(0, playTimes[ms[i].index] - position))
    }

    public static let speeds: [Double] = [0.25, 0.5, 1, 2, 4, 8, 16, 32]
    public func faster() { speed = Self.speeds.first { $0 > speed + 1e-9 } ?? speed }
    public func slower() { speed = Self.speeds.last { $0 < speed - 1e-9 } ?? speed }

    /// "▶ 0:12 / 1:05 · ×4 · next marker 2 “results” in 0:08".
    public var statusLine: String {
        let icon = isAtEnd ? "■ end" : (paused ? "❚❚ paused" : "▶")
        var s = "\(icon) \(clock(position)) / \(clock(length)) · ×\(Self.speedText(speed))"
        if let m = nextMarker {
            s += " · next marker \(m.number)"
            if let l = m.label { s += " “\(l)”" }
            s += " in \(clock(m.inSeconds))"
        } else if !log.markers.isEmpty {
            s += " · no more markers"
        }
        return s
    }

    static func speedText(_ v: Double) -> String {
        v == v.rounded() ? String(Int(v)) : String(format: "%g", v)
    }
}

/// m:ss (h:mm:ss past an hour).
func clock(_ s: Double) -> String {
    let t = Int(max(0, s).rounded(.down))
    if t >= 3600 { return String(format: "%d:%02d:%02d", t / 3600, (t / 60) % 60, t % 60) }
    return String(format: "%d:%02d", t / 60, t % 60)
}
