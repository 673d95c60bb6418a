import DuelCore
import Foundation
import TerminalUI

/// `kvduel replay FILE`: plays a session log full screen with no model, at the terminal's size and
/// the chosen theme, restoring the terminal as `chat` does. Keys come from the keymap table's
/// replay section; the footer carries the status line.
public func runReplay(log: SessionLog, options: PlaybackOptions, theme: String) throws -> DuelExit {
    try withTerminalScreen(theme: theme) { screen, _ in
        runReplayLoop(device: screen, log: log, options: options, quitSignal: pendingQuitSignal)
    }
}

/// The replay's event loop, independent of curses (tests drive it with a fake terminal).
public func runReplayLoop(device: TerminalDevice, log: SessionLog, options: PlaybackOptions,
                          quitSignal: () -> Int32 = { 0 }, clock: () -> Double = monotonicSeconds,
                          frameInterval: Double = 1.0 / 30) -> DuelExit {
    let player = ReplayPlayer(log: log, options: options)
    var showHelp = false
    var last = clock()
    var lastFrame = -Double.infinity
    var dirty = true
    var paste = PasteAssembler()
    var lastStatus = ""
    while true {
        let sig = quitSignal()
        if sig != 0 { return .signal(sig) }
        var reads = 0
        while reads < 64, let raw = device.readKey() {
            reads += 1
            if reads == 1 { device.setNonBlocking(true) }
            dirty = true
            // A paste is not a replay command: its keys are dropped whole.
            guard case .event(let ev) = paste.feed(raw, now: clock()) else { continue }
            switch ev {
            case .resize:
                device.invalidate()
            case .key(let k):
                let command = Keymap.replayCommand(for: k)
                if showHelp {
                    if command == .replayQuit { return .quit }
                    showHelp = false
                    continue
                }
                switch command {
                case .replayPause?: player.paused.toggle()
                case .replayStep?:
                    player.paused = true
                    player.step()
                case .replayNextMarker?: player.jumpToNextMarker()
                case .replayFaster?: player.faster()
                case .replaySlower?: player.slower()
                case .replayQuit?: return .quit
                case .help?: showHelp = true
                default: break
                }
            case .ignored, .pasteStart, .pasteEnd:
                break
            }
        }
        if reads > 0 { device.setNonBlocking(false) }
        _ = paste.flushIfStale(now: clock())
        let now = clock()
        if player.advance(by: now - last) { dirty = true }
        last = now
        let status = player.statusLine
        if status != lastStatus { dirty = true; lastStatus = status }
        if dirty && now - lastFrame >= frameInterval {
            var s = player.state
            s.chrome.status = status
            s.showHelp = showHelp
            let size = device.size
            device.draw(render(s, cols: size.cols, rows: size.rows))
            lastFrame = now
            dirty = false
        }
    }
}
