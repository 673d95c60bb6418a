/// The input line: text plus cursor, with shell-like editing.
///
/// It works in grapheme clusters (Swift `Character`s): a terminal delivers a combining accent, a
/// ZWJ or a skin-tone modifier as a key of its own, and inserting it joins it to the character
/// before, so "e" + U+0301 is one "é" that the cursor steps over and Backspace deletes whole, and
/// a family emoji is one character. Control characters (newline, ESC, Ctrl-letters) never enter.
public struct LineEditor: Sendable, Hashable {
    public private(set) var characters: [Character]
    /// Cursor position in grapheme clusters, 0...characters.count.
    public private(set) var cursor: Int

    public init(_ text: String = "") {
        characters = Array(Self.printable(text))
        cursor = characters.count
    }

    /// `s` without control characters (C0, DEL, C1): they would move the terminal's cursor or
    /// start an escape sequence if drawn, and mean nothing in a question.
    public static func printable(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars where !(u.value < 0x20 || (u.value >= 0x7f && u.value < 0xa0)) { out.append(u) }
        return String(out)
    }

    public var text: String { String(characters) }
    public var isEmpty: Bool { characters.isEmpty }

    public enum Edit: Sendable, Hashable {
        case insert(String)
        case backspace, deleteForward
        case left, right, home, end
        case deleteWordBackward, deleteToStart, deleteToEnd
        case replaceAll(String)
    }

    public mutating func apply(_ edit: Edit) {
        switch edit {
        case .insert(let s):
            let new = Self.printable(s)
            guard !new.isEmpty else { return }
            // Re-cluster around the cursor: the inserted scalars may join the character before.
            let before = String(characters[0..<cursor]) + new
            let all = before + String(characters[cursor...])
            characters = Array(all)
            cursor = min(characters.count, before.count)
        case .backspace:
            if cursor > 0 {
                characters.remove(at: cursor - 1)
                cursor -= 1
            }
        case .deleteForward:
            if cursor < characters.count { characters.remove(at: cursor) }
        case .left: cursor = max(0, cursor - 1)
        case .right: cursor = min(characters.count, cursor + 1)
        case .home: cursor = 0
        case .end: cursor = characters.count
        case .deleteWordBackward:
            var i = cursor
            while i > 0, characters[i - 1].isWhitespace { i -= 1 }
            while i > 0, !characters[i - 1].isWhitespace { i -= 1 }
            characters.removeSubrange(i..<cursor)
            cursor = i
        case .deleteToStart:
            characters.removeSubrange(0..<cursor)
            cursor = 0
        case .deleteToEnd:
            characters.removeSubrange(cursor..<characters.count)
        case .replaceAll(let s):
            characters = Array(Self.printable(s))
            cursor = characters.count
        }
    }
}
