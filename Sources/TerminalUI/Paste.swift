import DuelCore

/// Collects a bracketed paste (the keys between `.pasteStart` and `.pasteEnd`) into plain text for
/// the input line, so nothing pasted acts as a key: a pasted Ctrl-N does not start a new
/// conversation, a pasted Enter does not submit, a pasted escape sequence (colours copied from a
/// terminal, "ESC[31m") is dropped whole instead of leaving "[31m" behind.
///
/// Line breaks and tabs become spaces; other control characters and function keys decoded from
/// pasted bytes are dropped. A paste whose end never comes (a terminal that lost it) is delivered
/// after `staleSeconds` without input, so the chat can never wedge in paste mode.
public struct PasteAssembler: Sendable {
    public enum Output: Equatable, Sendable {
        /// Not part of a paste: handle as usual.
        case event(KeyEvent)
        /// Taken into the paste being collected.
        case consumed
        /// A paste ended: its text (possibly empty).
        case pasted(String)
    }

    public static let staleSeconds = 1.0
    /// Longest paste kept, in characters; the rest is dropped (the input line is one line).
    public static let maxCharacters = 1 << 16

    public private(set) var active = false
    private var text = ""
    private var count = 0
    private var lastInput = 0.0
    /// Inside an escape sequence being skipped: 1 right after ESC, 2 inside CSI, 3 inside OSC.
    private var escape = 0

    public init() {}

    public mutating func feed(_ ev: KeyEvent, now: Double) -> Output {
        switch ev {
        case .pasteStart:
            active = true
            text = ""
            count = 0
            escape = 0
            lastInput = now
            return .consumed
        case .pasteEnd:
            guard active else { return .consumed }
            return .pasted(finish())
        default:
            guard active else { return .event(ev) }
            lastInput = now
            if case .key(let k) = ev { take(k) }
            return .consumed
        }
    }

    /// The paste collected so far, when its end has not come for `staleSeconds`.
    public mutating func flushIfStale(now: Double) -> String? {
        guard active, now - lastInput >= Self.staleSeconds else { return nil }
        return finish()
    }

    private mutating func finish() -> String {
        active = false
        escape = 0
        defer { text = ""; count = 0 }
        return text
    }

    private mutating func take(_ k: Key) {
        switch k {
        case .char(let c):
            switch escape {
            case 1:
                // ESC [ starts a CSI sequence, ESC ] an OSC string; ESC + anything else is one key.
                escape = c == "[" ? 2 : c == "]" ? 3 : 0
                return
            case 2:
                // CSI ends at its final byte, 0x40…0x7E.
                if let v = c.unicodeScalars.first?.value, c.unicodeScalars.count == 1, (0x40...0x7e).contains(v) { escape = 0 }
                return
            case 3:
                return   // OSC ends at BEL or ESC \ (both arrive as control keys, handled below)
            default:
                append(c)
            }
        case .enter, .tab:
            if escape == 0 { append(" ") }
        case .escape:
            escape = escape == 3 ? 0 : 1
        case .ctrl("g"):
            if escape == 3 { escape = 0 }   // BEL ends an OSC string
        default:
            break   // Ctrl-letters, Backspace, arrows…: not text
        }
    }

    private mutating func append(_ c: Character) {
        guard count < Self.maxCharacters else { return }
        text.append(c)
        count += 1
    }
}
