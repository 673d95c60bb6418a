import XCTest
import DuelCore
import Engine

enum TestDocs {
    static let docs = [
        Document(id: "a", title: "Alpha Corp", text: "Alpha Corp was founded in Oslo in 1999."),
        Document(id: "b", title: "Beta Ltd", text: "Beta Ltd makes bicycles in Porto."),
        Document(id: "c", title: "Gamma GmbH", text: "Gamma GmbH sells maps in Graz."),
    ]
    static let info = SessionInfo(modelName: "test", threadsPerEngine: 1)

    static func state(loaded: Bool = true, documents: [Document] = docs) -> AppState {
        var s = AppState(config: DuelConfig(info: info, documents: documents, maxTokens: 16), cols: 160, rows: 45, now: 10)
        if loaded { reduce(&s, .loaded) }
        return s
    }

    /// Presses keys through the keymap and the reducer; returns all effects.
    @discardableResult
    static func press(_ keys: [Key], _ s: inout AppState) -> [Effect] {
        var effects: [Effect] = []
        for k in keys {
            for a in actions(for: k, in: s) { effects += reduce(&s, a) }
        }
        return effects
    }

    static func type(_ text: String, _ s: inout AppState) {
        press(text.map { Key.char($0) }, &s)
    }

    static func repoRoot(file: String = #filePath) -> URL {
        URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
}
