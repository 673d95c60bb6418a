/// A key as the app sees it, independent of curses.
public enum Key: Hashable, Sendable {
    /// A printable character (including space).
    case char(Character)
    /// Ctrl plus a letter, lower-case: `.ctrl("r")`.
    case ctrl(Character)
    case enter, tab, backTab, escape, backspace, delete
    case up, down, left, right, shiftUp, shiftDown
    case home, end, pageUp, pageDown
    case function(Int)

    /// How the key is written in the footer, the help overlay and the README.
    public var display: String {
        switch self {
        case .char(" "): return "Space"
        case .char(let c): return String(c)
        case .ctrl(let c): return "Ctrl-" + String(c).uppercased()
        case .enter: return "Enter"
        case .tab: return "Tab"
        case .backTab: return "Shift-Tab"
        case .escape: return "Esc"
        case .backspace: return "Backspace"
        case .delete: return "Del"
        case .up: return "↑"
        case .down: return "↓"
        case .left: return "←"
        case .right: return "→"
        case .shiftUp: return "Shift-↑"
        case .shiftDown: return "Shift-↓"
        case .home: return "Home"
        case .end: return "End"
        case .pageUp: return "PgUp"
        case .pageDown: return "PgDn"
        case .function(let n): return "F\(n)"
        }
    }
}

/// Where keyboard focus is.
public enum Focus: String, Sendable, Hashable {
    case input
    case panel
}

/// What a key binding does. Named so the footer, the overlay and the tests share one vocabulary.
public enum Command: String, Sendable, Hashable, CaseIterable {
    case submit, switchFocus
    case selectPrevious, selectNext, moveBlockUp, moveBlockDown, toggleBlock
    case help, breakdown, resetCold, newConversation, quit
    case historyPrevious, historyNext
    case cursorLeft, cursorRight, cursorHome, cursorEnd
    case deleteBackward, deleteForward, deleteWordBackward, deleteToStart, deleteToEnd
    case scrollUp, scrollDown
    case dropMarker
    // Replays.
    case replayPause, replayStep, replayNextMarker, replayFaster, replaySlower, replayQuit
}

/// Which focus a binding applies in.
public enum KeyContext: String, Sendable, Hashable {
    case global
    case input
    case panel
    /// `kvduel replay`: these keys instead of the duel's (help still opens the overlay).
    case replay

    public var title: String {
        switch self {
        case .global: return "Anywhere"
        case .input: return "Input line"
        case .panel: return "Context panel"
        case .replay: return "Replay"
        }
    }
}

public struct KeyBinding: Sendable, Hashable {
    public var keys: [Key]
    public var context: KeyContext
    public var command: Command
    /// A few words, for narrow help overlays.
    public var short: String
    /// One line for the help overlay and the README.
    public var summary: String
    /// Short label for the footer; nil keeps the binding out of the footer.
    public var footer: String?

    public var keysLabel: String { keys.map(\.display).joined(separator: " / ") }
}

/// The ONE keymap table. The footer, the `?` overlay and the README table are generated from it.
public enum Keymap {
    public static let bindings: [KeyBinding] = [
        KeyBinding(keys: [.enter], context: .input, command: .submit, short: "send question",
                   summary: "send the question to both engines", footer: "send"),
        KeyBinding(keys: [.tab, .backTab], context: .global, command: .switchFocus, short: "input ⇄ panel",
                   summary: "move focus between the input line and the context panel", footer: "panel"),
        KeyBinding(keys: [.up, .down], context: .panel, command: .selectPrevious, short: "select a block",
                   summary: "select a block", footer: "select"),
        KeyBinding(keys: [.shiftUp, .char("K")], context: .panel, command: .moveBlockUp, short: "move block up",
                   summary: "move the selected block up (earlier in the prompt)", footer: "move up"),
        KeyBinding(keys: [.shiftDown, .char("J")], context: .panel, command: .moveBlockDown, short: "move block down",
                   summary: "move the selected block down (later in the prompt)", footer: "move down"),
        KeyBinding(keys: [.char(" ")], context: .panel, command: .toggleBlock, short: "include / exclude",
                   summary: "include or exclude the selected block", footer: "include"),
        KeyBinding(keys: [.char("?"), .function(1)], context: .global, command: .help, short: "this help",
                   summary: "help overlay (`?` types a `?` when the input line has text)", footer: "help"),
        KeyBinding(keys: [.ctrl("r")], context: .global, command: .resetCold, short: "reset to cold",
                   summary: "reset both engines to cold: clear caches and history", footer: "reset"),
        KeyBinding(keys: [.ctrl("n")], context: .global, command: .newConversation, short: "new chat (keep KV)",
                   summary: "new conversation: clear history, keep caches", footer: "new chat"),
        KeyBinding(keys: [.ctrl("c"), .ctrl("q")], context: .global, command: .quit, short: "quit",
                   summary: "quit, restoring the terminal", footer: "quit"),
        KeyBinding(keys: [.ctrl("t"), .function(2)], context: .global, command: .dropMarker, short: "drop a marker",
                   summary: "drop a marker for replays (text in the input line becomes its label)", footer: nil),
        KeyBinding(keys: [.function(3), .ctrl("g")], context: .global, command: .breakdown, short: "TTFT breakdown",
                   summary: "show where each pane's TTFT went: tokenize, lookup, load per tier, re-rotate, blend check, recompute, compute new, other", footer: "TTFT parts"),
        KeyBinding(keys: [.pageUp], context: .global, command: .scrollUp, short: "scroll back",
                   summary: "scroll both transcripts back", footer: nil),
        KeyBinding(keys: [.pageDown], context: .global, command: .scrollDown, short: "scroll forward",
                   summary: "scroll both transcripts forward", footer: nil),
        KeyBinding(keys: [.left, .right], context: .input, command: .cursorLeft, short: "move the cursor",
                   summary: "move the cursor", footer: nil),
        KeyBinding(keys: [.home, .ctrl("a")], context: .input, command: .cursorHome, short: "start of line",
                   summary: "cursor to start of line", footer: nil),
        KeyBinding(keys: [.end, .ctrl("e")], context: .input, command: .cursorEnd, short: "end of line",
                   summary: "cursor to end of line", footer: nil),
        KeyBinding(keys: [.ctrl("w")], context: .input, command: .deleteWordBackward, short: "delete word",
                   summary: "delete the word before the cursor", footer: nil),
        KeyBinding(keys: [.ctrl("u")], context: .input, command: .deleteToStart, short: "delete to start",
                   summary: "delete to start of line", footer: nil),
        KeyBinding(keys: [.ctrl("k")], context: .input, command: .deleteToEnd, short: "delete to end",
                   summary: "delete to end of line", footer: nil),
        KeyBinding(keys: [.backspace, .delete], context: .input, command: .deleteBackward, short: "delete char",
                   summary: "delete before / under the cursor", footer: nil),
        KeyBinding(keys: [.up, .down], context: .input, command: .historyPrevious, short: "earlier questions",
                   summary: "earlier / later questions", footer: "history"),
        KeyBinding(keys: [.char(" ")], context: .replay, command: .replayPause, short: "pause / resume",
                   summary: "pause or resume the replay", footer: "pause"),
        KeyBinding(keys: [.char(".")], context: .replay, command: .replayStep, short: "step one event",
                   summary: "step one event while paused", footer: "step"),
        KeyBinding(keys: [.char("]")], context: .replay, command: .replayNextMarker, short: "next marker",
                   summary: "jump to the next marker", footer: "marker"),
        KeyBinding(keys: [.char("+"), .char("=")], context: .replay, command: .replayFaster, short: "faster",
                   summary: "play faster (×2)", footer: "faster"),
        KeyBinding(keys: [.char("-")], context: .replay, command: .replaySlower, short: "slower",
                   summary: "play slower (÷2)", footer: "slower"),
        KeyBinding(keys: [.char("q"), .ctrl("c")], context: .replay, command: .replayQuit, short: "quit",
                   summary: "quit the replay, restoring the terminal", footer: "quit"),
    ]

    /// The command a key triggers in a context (paired keys such as ↑/↓ resolve to their own command).
    public static func command(for key: Key, focus: Focus, inputIsEmpty: Bool) -> Command? {
        if focus == .input, case .char(let c) = key {
            // Typing wins in the input line, except `?` on an empty line.
            if !(c == "?" && inputIsEmpty) { return nil }
        }
        let ctx: KeyContext = focus == .input ? .input : .panel
        for scope in [ctx, .global] {
            for b in bindings where b.context == scope {
                if let i = b.keys.firstIndex(of: key) { return resolvePair(b.command, index: i) }
            }
        }
        return nil
    }

    /// The command a key triggers during a replay: the replay table, then the help key.
    public static func replayCommand(for key: Key) -> Command? {
        for b in bindings where b.context == .replay && b.keys.contains(key) { return b.command }
        for b in bindings where b.command == .help && b.keys.contains(key) { return .help }
        return nil
    }

    /// Footer hints during a replay, from the same table.
    public static func replayFooterItems() -> [(keys: String, label: String)] {
        bindings.filter { $0.context == .replay && $0.footer != nil }.map { b in
            let keys = b.command == .replayQuit ? "q" : b.keys.map(\.display).joined(separator: "/")
            return (keys, b.footer!)
        } + [("?", "help")]
    }

    /// Paired bindings (↑/↓, ←/→, Backspace/Del, PgUp/PgDn) share a row; the second key does the opposite.
    private static func resolvePair(_ c: Command, index: Int) -> Command {
        guard index == 1 else { return c }
        switch c {
        case .selectPrevious: return .selectNext
        case .historyPrevious: return .historyNext
        case .cursorLeft: return .cursorRight
        case .deleteBackward: return .deleteForward
        default: return c
        }
    }

    /// Footer hints for the current focus, from the same table.
    public static func footerItems(focus: Focus) -> [(keys: String, label: String)] {
        let ctx: KeyContext = focus == .input ? .input : .panel
        return bindings.filter { ($0.context == ctx || $0.context == .global) && $0.footer != nil }
            .map { b in
                let keys: String
                switch b.command {
                case .help: keys = "?/F1"
                case .quit: keys = "^C"
                case .switchFocus: keys = "Tab"
                case .moveBlockUp: keys = "⇧↑/K"
                case .moveBlockDown: keys = "⇧↓/J"
                case .selectPrevious, .historyPrevious: keys = "↑↓"
                default:
                    keys = b.keys[0].display.replacingCtrl()
                }
                let label = b.command == .switchFocus ? (focus == .input ? "panel" : "input") : b.footer!
                return (keys, label)
            }
    }

    /// The keymap as a Markdown table, for the README.
    public static func markdownTable() -> String {
        var lines = ["| key | where | does |", "|---|---|---|"]
        for b in bindings {
            let keys = b.keys.map { "`\($0.display)`" }.joined(separator: " / ")
            lines.append("| \(keys) | \(b.context.title.lowercased()) | \(b.summary) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension String {
    fileprivate func replacingCtrl() -> String {
        hasPrefix("Ctrl-") ? "^" + dropFirst(5) : self
    }
}
