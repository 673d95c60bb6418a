// The ONLY file that talks to curses. It blits a CellGrid (diffing against the previous frame,
// never erasing) and turns curses key codes into `Key`s.
@preconcurrency import CNCurses
import CTerm
import DuelCore
#if canImport(Glibc)
import Glibc
#endif

/// Problems setting up the terminal, each with a one-line fix.
public enum TerminalSetupError: Error, CustomStringConvertible {
    case locale(String)
    case notATerminal
    case initFailed

    public var description: String {
        switch self {
        case .locale(let lang):
            return "kvduel needs a UTF-8 locale (now LANG=\(lang)); fix: export LANG=C.UTF-8"
        case .notATerminal:
            return "kvduel chat needs an interactive terminal (stdin and stdout must be a TTY)"
        case .initFailed:
            return "could not start the terminal (check TERM, e.g. export TERM=xterm-256color)"
        }
    }
}

/// Sets a UTF-8 locale: the environment's, else C.UTF-8. Returns a notice when it fell back.
public func prepareUTF8Locale() throws -> String? {
    _ = cterm_setlocale()
    if cterm_locale_is_utf8() == 1 { return nil }
    for name in ["C.UTF-8", "C.utf8", "en_US.UTF-8"] {
        if setlocale(LC_ALL, name) != nil, cterm_locale_is_utf8() == 1 {
            return "The locale was not UTF-8; using \(name). Set LANG=C.UTF-8 to silence this."
        }
    }
    let env = ProcessEnvironment.get("LC_ALL") ?? ProcessEnvironment.get("LANG") ?? "unset"
    throw TerminalSetupError.locale(env)
}

enum ProcessEnvironment {
    static func get(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }
    static var all: [String: String] {
        var out: [String: String] = [:]
        for name in ["NO_COLOR", "TERM", "LANG"] { if let v = get(name) { out[name] = v } }
        return out
    }
}

/// The curses screen. Create once, `stop()` on every exit path.
final class CursesScreen: TerminalDevice {
    private var previous: CellGrid?
    private(set) var theme: Theme
    private var looks: [Role: (pair: Int32, attrs: UInt32)] = [:]
    private var stopped = false

    init(themeName: String, inputTimeoutMs: Int32) throws {
        guard isatty(0) == 1, isatty(1) == 1 else { throw TerminalSetupError.notATerminal }
        guard cterm_start(inputTimeoutMs) == 0 else { throw TerminalSetupError.initFailed }
        timeoutMs = inputTimeoutMs
        let hasColors = cterm_start_colors() == 1
        theme = Theme.resolve(name: themeName, environment: ProcessEnvironment.all, terminalHasColors: hasColors)
        cterm_define_shift_keys()
        for (i, role) in Role.allCases.enumerated() {
            let look = theme.look(role)
            var attrs = cterm_attr_normal()
            if look.attrs.contains(.bold) { attrs |= cterm_attr_bold() }
            if look.attrs.contains(.dim) { attrs |= cterm_attr_dim() }
            if look.attrs.contains(.reverse) { attrs |= cterm_attr_reverse() }
            if look.attrs.contains(.underline) { attrs |= cterm_attr_underline() }
            var pair: Int32 = 0
            if theme.usesColor {
                pair = Int32(i + 1)
                _ = cterm_init_pair(pair, Int32(look.fg.rawValue), Int32(look.bg.rawValue))
            }
            looks[role] = (pair, attrs)
        }
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        cterm_stop()
    }

    var size: (cols: Int, rows: Int) { (Int(cterm_cols()), Int(cterm_lines())) }

    /// Forget the last frame (after a resize): the next draw writes every cell.
    func invalidate() { previous = nil }

    /// Writes the cells that changed since the last frame, then one `doupdate`.
    func draw(_ grid: CellGrid) { draw(grid, cursor: nil) }

    func draw(_ grid: CellGrid, cursor: (x: Int, y: Int)?) {
        let full = previous.map { $0.width != grid.width || $0.height != grid.height } ?? true
        var buf = [Int32](repeating: 0, count: 8)
        for y in 0..<grid.height {
            for x in 0..<grid.width {
                let cell = grid[x, y]
                if !full, let p = previous, p[x, y] == cell { continue }
                if cell.width == 0 {
                    // The right half of a wide character: curses fills it when the left half is
                    // written; if only this half changed, rewrite the left half.
                    continue
                }
                var n: Int32 = 0
                for s in cursesScalars(cell.char) where n < 8 {
                    buf[Int(n)] = Int32(bitPattern: s.value)
                    n += 1
                }
                let look = looks[cell.style.role] ?? (0, cterm_attr_normal())
                var attrs = look.attrs
                if cell.style.bold { attrs |= cterm_attr_bold() }
                _ = cterm_put_cell(Int32(y), Int32(x), buf, n, attrs, look.pair)
            }
        }
        if let c = cursor {
            cterm_move_cursor(Int32(c.y), Int32(c.x), 1)
        } else {
            cterm_move_cursor(0, 0, 0)
        }
        cterm_refresh()
        previous = grid
    }

    private var timeoutMs: Int32 = 15
    func setNonBlocking(_ nonBlocking: Bool) { cterm_set_timeout(nonBlocking ? 0 : timeoutMs) }

    /// One key, `.resize` as nil-with-flag; returns nil when nothing arrived in time.
    func readKey() -> KeyEvent? {
        var code: Int32 = 0
        let r = cterm_get_key(&code)
        if r < 0 { return nil }
        return CursesKeys.translate(code: code, isFunctionKey: r == 1)
    }
}

/// What one curses read means to the app.
public enum KeyEvent: Equatable, Sendable {
    case key(Key)
    case resize
    case ignored
    /// Bracketed paste: the keys until `.pasteEnd` are pasted text (see `PasteAssembler`).
    case pasteStart
    case pasteEnd
}

/// Curses key codes → `Key`. Public so the keymap tests can check the whole path.
public enum CursesKeys {
    /// `code` is what `wget_wch` returned; `isFunctionKey` when it returned KEY_CODE_YES.
    public static func translate(code: Int32, isFunctionKey: Bool) -> KeyEvent {
        isFunctionKey ? translateFunctionKey(code) : translateChar(code)
    }
    public static var shiftUpCode: Int32 { KEY_SR }
    public static var shiftDownCode: Int32 { KEY_SF }
    public static var resizeCode: Int32 { KEY_RESIZE }
    public static var f1Code: Int32 { KEY_F0 + 1 }
    public static var upCode: Int32 { KEY_UP }
    public static var downCode: Int32 { KEY_DOWN }
    public static var leftCode: Int32 { KEY_LEFT }
    public static var rightCode: Int32 { KEY_RIGHT }
    public static var homeCode: Int32 { KEY_HOME }
    public static var endCode: Int32 { KEY_END }
    public static var backspaceCode: Int32 { KEY_BACKSPACE }
    public static var pageUpCode: Int32 { KEY_PPAGE }
    public static var pageDownCode: Int32 { KEY_NPAGE }
    public static var backTabCode: Int32 { KEY_BTAB }
    public static var pasteStartCode: Int32 { cterm_key_paste_start() }
    public static var pasteEndCode: Int32 { cterm_key_paste_end() }
}

func translateChar(_ code: Int32) -> KeyEvent {
    switch code {
    case 9: return .key(.tab)
    case 10, 13: return .key(.enter)
    case 27: return .key(.escape)
    case 8, 127: return .key(.backspace)
    case 1...26:
        let letter = Character(Unicode.Scalar(UInt8(96 + code)))
        return .key(.ctrl(letter))
    case 0..<32: return .ignored
    default:
        guard let s = Unicode.Scalar(UInt32(bitPattern: code)) else { return .ignored }
        return .key(.char(Character(s)))
    }
}

func translateFunctionKey(_ code: Int32) -> KeyEvent {
    switch code {
    case KEY_RESIZE: return .resize
    case KEY_UP: return .key(.up)
    case KEY_DOWN: return .key(.down)
    case KEY_LEFT: return .key(.left)
    case KEY_RIGHT: return .key(.right)
    case KEY_HOME: return .key(.home)
    case KEY_END: return .key(.end)
    case KEY_BACKSPACE: return .key(.backspace)
    case KEY_DC: return .key(.delete)
    case KEY_NPAGE: return .key(.pageDown)
    case KEY_PPAGE: return .key(.pageUp)
    case KEY_ENTER: return .key(.enter)
    case KEY_BTAB: return .key(.backTab)
    case KEY_SR: return .key(.shiftUp)
    case KEY_SF: return .key(.shiftDown)
    case KEY_F0 + 1...KEY_F0 + 12: return .key(.function(Int(code - KEY_F0)))
    case cterm_key_paste_start(): return .pasteStart
    case cterm_key_paste_end(): return .pasteEnd
    default:
        // Extended keys have no fixed codes; terminfo names them (kUP2 = Shift-Up, kDN2 = Shift-Down).
        if let name = cterm_key_name(code) {
            switch String(cString: name) {
            case "kUP2": return .key(.shiftUp)
            case "kDN2": return .key(.shiftDown)
            case "kHOM2": return .key(.home)
            case "kEND2": return .key(.end)
            default: break
            }
        }
        return .ignored
    }
}

/// What a cell's character sends to curses. A curses cell is one spacing character plus the marks
/// drawn on it, so a cluster of several spacing characters (a ZWJ family, a skin tone, a flag) is
/// sent as its first with the marks and variation selectors that follow it; sending it whole makes
/// curses and the terminal disagree on its width and shifts the rest of the line.
public func cursesScalars(_ c: Character) -> [Unicode.Scalar] {
    var out: [Unicode.Scalar] = []
    for s in c.unicodeScalars {
        if !out.isEmpty {
            switch s.properties.generalCategory {
            case .nonspacingMark, .enclosingMark, .spacingMark: break
            default: guard s.properties.isVariationSelector else { return out }
            }
        }
        out.append(s)
    }
    return out
}
