/// Curses colour numbers (COLOR_BLACK…COLOR_WHITE); -1 = the terminal's default.
public enum TermColor: Int16, Sendable {
    case standard = -1
    case black = 0, red, green, yellow, blue, magenta, cyan, white
}

public struct Attributes: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let bold = Attributes(rawValue: 1)
    public static let dim = Attributes(rawValue: 2)
    public static let reverse = Attributes(rawValue: 4)
    public static let underline = Attributes(rawValue: 8)
}

public struct RoleLook: Sendable, Hashable {
    public var fg: TermColor
    public var bg: TermColor
    public var attrs: Attributes
    public init(_ fg: TermColor = .standard, _ bg: TermColor = .standard, _ attrs: Attributes = []) {
        self.fg = fg
        self.bg = bg
        self.attrs = attrs
    }
}

/// Maps roles to colours. `monochrome` uses attributes only.
public struct Theme: Sendable {
    public var name: String
    public var usesColor: Bool
    private var looks: [Role: RoleLook]

    public func look(_ role: Role) -> RoleLook { looks[role] ?? RoleLook() }

    public static let `default` = Theme(name: "default", usesColor: true, looks: [
        .normal: RoleLook(),
        .dim: RoleLook(.standard, .standard, [.dim]),
        .title: RoleLook(.black, .cyan),
        .accent: RoleLook(.cyan),
        .good: RoleLook(.green, .standard, [.bold]),
        .bad: RoleLook(.red, .standard, [.bold]),
        .warn: RoleLook(.yellow, .standard, [.bold]),
        .border: RoleLook(.blue),
        .focusBorder: RoleLook(.cyan, .standard, [.bold]),
        .user: RoleLook(.magenta, .standard, [.bold]),
        .selected: RoleLook(.black, .cyan),
        .badge: RoleLook(.black, .green, [.bold]),
        .barFill: RoleLook(.green),
        .barEmpty: RoleLook(.standard, .standard, [.dim]),
        .keyHint: RoleLook(.cyan, .standard, [.bold]),
        .overlay: RoleLook(),
        .overlayTitle: RoleLook(.cyan, .standard, [.bold]),
        .cursor: RoleLook(.standard, .standard, [.reverse]),
    ])

    /// High contrast for projectors: bold, bright backgrounds, no dim text.
    public static let presentation = Theme(name: "presentation", usesColor: true, looks: [
        .normal: RoleLook(.white, .black),
        .dim: RoleLook(.white, .black),
        .title: RoleLook(.black, .white, [.bold]),
        .accent: RoleLook(.cyan, .black, [.bold]),
        .good: RoleLook(.green, .black, [.bold]),
        .bad: RoleLook(.red, .black, [.bold]),
        .warn: RoleLook(.yellow, .black, [.bold]),
        .border: RoleLook(.white, .black, [.bold]),
        .focusBorder: RoleLook(.yellow, .black, [.bold]),
        .user: RoleLook(.yellow, .black, [.bold]),
        .selected: RoleLook(.black, .yellow, [.bold]),
        .badge: RoleLook(.black, .green, [.bold]),
        .barFill: RoleLook(.green, .black, [.bold]),
        .barEmpty: RoleLook(.white, .black),
        .keyHint: RoleLook(.yellow, .black, [.bold]),
        .overlay: RoleLook(.white, .black, [.bold]),
        .overlayTitle: RoleLook(.yellow, .black, [.bold]),
        .cursor: RoleLook(.black, .white),
    ])

    /// No colours: NO_COLOR is set or the terminal has none.
    public static let monochrome = Theme(name: "mono", usesColor: false, looks: [
        .normal: RoleLook(),
        .dim: RoleLook(.standard, .standard, [.dim]),
        .title: RoleLook(.standard, .standard, [.reverse]),
        .accent: RoleLook(.standard, .standard, [.bold]),
        .good: RoleLook(.standard, .standard, [.bold]),
        .bad: RoleLook(.standard, .standard, [.bold, .underline]),
        .warn: RoleLook(.standard, .standard, [.bold, .underline]),
        .border: RoleLook(),
        .focusBorder: RoleLook(.standard, .standard, [.bold]),
        .user: RoleLook(.standard, .standard, [.bold]),
        .selected: RoleLook(.standard, .standard, [.reverse]),
        .badge: RoleLook(.standard, .standard, [.reverse, .bold]),
        .barFill: RoleLook(.standard, .standard, [.bold]),
        .barEmpty: RoleLook(.standard, .standard, [.dim]),
        .keyHint: RoleLook(.standard, .standard, [.bold]),
        .overlay: RoleLook(),
        .overlayTitle: RoleLook(.standard, .standard, [.bold]),
        .cursor: RoleLook(.standard, .standard, [.reverse]),
    ])

    public static let names = ["default", "presentation", "mono"]

    /// Picks the theme: NO_COLOR (any value) or a terminal without colours forces monochrome.
    public static func resolve(name: String, environment: [String: String], terminalHasColors: Bool) -> Theme {
        if environment["NO_COLOR"] != nil || !terminalHasColors { return .monochrome }
        switch name {
        case "presentation": return .presentation
        case "mono", "monochrome": return .monochrome
        default: return .default
        }
    }
}
