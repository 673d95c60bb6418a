import Foundation
import Yams

/// A scripted duel: documents, a system prompt and turns, each naming the documents it includes,
/// in prompt order. Used by `kvduel bench` and `kvduel chat --scenario FILE`.
///
/// ```yaml
/// name: Reordered company facts
/// max_tokens: 48
/// system: You are a helpful assistant. Answer using only the documents.
/// documents:                  # optional
///   - id: brightwater
///     title: Brightwater Analytics     # optional, defaults to the id (or a file's `# heading`)
///     text: |                          # or `file: ../assets/docs/brightwater.md` (relative to this file)
///       ...
/// turns:
///   - documents: [brightwater, veltrona]  # optional: absent = same as the previous turn (first turn: all)
///     user: Where was Veltrona Robotics founded?
///     marker: Reordered           # optional: the marker autoplay drops at this turn
///     hold: 4                     # optional: seconds autoplay holds after the answers
/// ```
public struct Scenario: Sendable, Hashable {
    public var name: String
    public var maxTokens: Int
    public var system: String
    public var documents: [Document]
    public var turns: [ScenarioTurn]

    public init(name: String, maxTokens: Int, system: String, documents: [Document], turns: [ScenarioTurn]) {
        self.name = name
        self.maxTokens = maxTokens
        self.system = system
        self.documents = documents
        self.turns = turns
    }

    public static let defaultMaxTokens = 64

    /// The documents of a turn, resolved, in prompt order.
    public func documents(for turn: ScenarioTurn) -> [Document] {
        let byID = Dictionary(documents.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        return turn.documents.compactMap { byID[$0] }
    }

    /// Loads and validates a scenario file. Errors are `ScenarioError`, one line with file:line.
    public static func load(path: String) throws -> Scenario {
        let url = URL(fileURLWithPath: path)
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw ScenarioError(file: path, line: 0, message: "cannot read the file")
        }
        return try parse(yaml: text, file: path, baseDirectory: url.deletingLastPathComponent().path)
    }

    /// Parses scenario YAML. `file` only names the source in errors; `baseDirectory` resolves `file:` documents.
    public static func parse(yaml: String, file: String = "scenario.yaml", baseDirectory: String? = nil) throws -> Scenario {
        var p = ScenarioParser(file: file, base: baseDirectory)
        return try p.parse(yaml)
    }
}

public struct ScenarioTurn: Sendable, Hashable {
    /// Document ids included in this turn, in prompt order.
    public var documents: [String]
    public var user: String
    /// Line of the turn in its file (0 when built in code).
    public var line: Int
    /// Label of the marker `--autoplay` drops at this turn.
    public var marker: String?
    /// Seconds `--autoplay` holds after both answers (nil: its `--hold`).
    public var hold: Double?
    public init(documents: [String], user: String, line: Int = 0, marker: String? = nil, hold: Double? = nil) {
        self.documents = documents
        self.user = user
        self.line = line
        self.marker = marker
        self.hold = hold
    }
}

/// A scenario problem, printed as one line: `file.yaml:12: turn 3 names unknown document 'foo'`.
public struct ScenarioError: Error, CustomStringConvertible, Hashable {
    public var file: String
    public var line: Int
    public var message: String
    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }
    public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
}

private struct ScenarioParser {
    let file: String
    let base: String?

    init(file: String, base: String?) {
        self.file = file
        self.base = base
    }

    func fail(_ node: Node?, _ message: String) -> ScenarioError {
        ScenarioError(file: file, line: node?.mark?.line ?? 0, message: message)
    }

    mutating func parse(_ yaml: String) throws -> Scenario {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let e as YamlError {
            throw yamlSyntaxError(e, yaml: yaml)
        }
        guard let root else { throw ScenarioError(file: file, line: 1, message: "the file is empty") }
        guard let top = root.mapping else { throw fail(root, "expected a mapping with `turns:` at the top level") }
        try checkKeys(top, allowed: ["name", "max_tokens", "system", "documents", "turns"], what: "scenario")

        let name = try string(top, "name", required: false) ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        var maxTokens = Scenario.defaultMaxTokens
        if let n = value(top, "max_tokens") {
            guard let s = n.scalar, let v = Int(s.string), v > 0 else {
                throw fail(n, "max_tokens must be a positive integer, not '\(n.scalar?.string ?? "a collection")'")
            }
            maxTokens = v
        }
        let system = try string(top, "system", required: false) ?? DuelConfig.defaultSystemPrompt

        var documents: [Document] = []
        if let docsNode = value(top, "documents") {
            guard let seq = docsNode.sequence else { throw fail(docsNode, "documents must be a list") }
            for (i, d) in seq.enumerated() {
                let doc = try document(d, index: i + 1)
                if documents.contains(where: { $0.id == doc.id }) {
                    throw fail(d, "document \(i + 1) repeats the id '\(doc.id)'")
                }
                documents.append(doc)
            }
        }

        guard let turnsNode = value(top, "turns") else { throw fail(root, "missing `turns:`") }
        guard let turnSeq = turnsNode.sequence else { throw fail(turnsNode, "turns must be a list") }
        guard turnSeq.count > 0 else { throw fail(turnsNode, "turns is empty") }
        let known = Set(documents.map(\.id))
        var previous = documents.map(\.id)
        var turns: [ScenarioTurn] = []
        for (i, t) in turnSeq.enumerated() {
            let n = i + 1
            guard let m = t.mapping else { throw fail(t, "turn \(n) must be a mapping with `user:`") }
            try checkKeys(m, allowed: ["user", "documents", "marker", "hold"], what: "turn \(n)")
            guard let user = try string(m, "user", required: false), !user.isEmpty else {
                throw fail(t, "turn \(n) has no `user:` question")
            }
            var ids = previous
            if let dn = value(m, "documents") {
                ids = []
                if case .scalar(let s) = dn, s.string.isEmpty || s.string == "null" || s.string == "~" {
                    // `documents:` with nothing = no documents.
                } else {
                    guard let seq = dn.sequence else { throw fail(dn, "turn \(n): documents must be a list of ids") }
                    for item in seq {
                        guard let id = item.scalar?.string else { throw fail(item, "turn \(n): document ids must be plain names") }
                        guard known.contains(id) else { throw fail(item, "turn \(n) names unknown document '\(id)'") }
                        guard !ids.contains(id) else { throw fail(item, "turn \(n) names document '\(id)' twice") }
                        ids.append(id)
                    }
                }
            }
            previous = ids
            let marker = try string(m, "marker", required: false)
            var hold: Double?
            if let h = value(m, "hold") {
                guard let v = h.scalar.flatMap({ Double($0.string) }), v >= 0, v.isFinite else {
                    throw fail(h, "turn \(n): hold must be a number of seconds ≥ 0, not '\(h.scalar?.string ?? "a collection")'")
                }
                hold = v
            }
            turns.append(ScenarioTurn(documents: ids, user: user, line: t.mark?.line ?? 0, marker: marker, hold: hold))
        }
        return Scenario(name: name, maxTokens: maxTokens, system: system, documents: documents, turns: turns)
    }

    func document(_ node: Node, index: Int) throws -> Document {
        guard let m = node.mapping else { throw fail(node, "document \(index) must be a mapping with `id:`") }
        try checkKeys(m, allowed: ["id", "title", "text", "file"], what: "document \(index)")
        guard let id = try string(m, "id", required: false), !id.isEmpty else {
            throw fail(node, "document \(index) has no `id:`")
        }
        var title = try string(m, "title", required: false)
        let text = try string(m, "text", required: false)
        let fileRef = try string(m, "file", required: false)
        switch (text, fileRef) {
        case (.some, .some):
            throw fail(value(m, "file"), "document '\(id)' has both `text:` and `file:`; keep one")
        case (nil, nil):
            throw fail(node, "document '\(id)' needs `text:` or `file:`")
        case (let t?, nil):
            return Document(id: id, title: title ?? id, text: t.trimmingWhitespace())
        case (nil, let f?):
            let path = f.hasPrefix("/") ? f : ((base ?? ".") as NSString).appendingPathComponent(f)
            guard let loaded = try? Document.load(path: path, id: id) else {
                throw fail(value(m, "file"), "document '\(id)': cannot read file '\(f)'")
            }
            if title == nil { title = loaded.title }
            return Document(id: id, title: title ?? id, text: loaded.text)
        }
    }

    func value(_ m: Node.Mapping, _ key: String) -> Node? {
        for (k, v) in m where k.scalar?.string == key { return v }
        return nil
    }

    func string(_ m: Node.Mapping, _ key: String, required: Bool) throws -> String? {
        guard let v = value(m, key) else { return nil }
        guard let s = v.scalar else { throw fail(v, "`\(key)` must be text, not a list or mapping") }
        return s.string
    }

    func checkKeys(_ m: Node.Mapping, allowed: Set<String>, what: String) throws {
        for (k, _) in m {
            let name = k.scalar?.string ?? "?"
            if !allowed.contains(name) {
                let list = allowed.sorted().joined(separator: ", ")
                throw fail(k, "\(what) has unknown key '\(name)' (expected one of: \(list))")
            }
        }
    }

    func yamlSyntaxError(_ e: YamlError, yaml: String) -> ScenarioError {
        switch e {
        case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _), let .composer(_, problem, mark, _):
            return ScenarioError(file: file, line: mark.line, message: "YAML syntax error: \(problem)")
        case let .reader(problem, offset, _, yaml):
            var line = 1
            if let offset {
                line = 1 + yaml.utf8.prefix(offset).filter { $0 == UInt8(ascii: "\n") }.count
            }
            return ScenarioError(file: file, line: line, message: "YAML error: \(problem)")
        default:
            let firstLine = "\(e)".split(separator: "\n").first.map(String.init) ?? "YAML error"
            return ScenarioError(file: file, line: 0, message: firstLine)
        }
    }
}
