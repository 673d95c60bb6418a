/// The input line: text plus cursor, with shell-like editing.
public struct LineEditor: Sendable, Hashable {
    public private(set) var characters: [Character]
    /// Cursor position in characters, 0...characters.count.
    public private(set) var cursor: Int

    public init(_ text: String = "") {
        characters = Array(text)
        cursor = characters.count
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
            let new = Array(s.filter { $0 != "\n" && $0 != "\r" && $0 != "\t" })
            characters.insert(contentsOf: new, at: cursor)
            cursor += new.count
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
            characters = Array(s)
            cursor = characters.count
        }
    }
}
