import XCTest
import DuelCore

final class ScenarioTests: XCTestCase {
    let good = """
    name: Reordered company facts
    max_tokens: 48
    system: Answer using only the documents.
    documents:
      - id: brightwater
        title: Brightwater Analytics
        text: |
          Brightwater was founded in Tromsø.
      - id: veltrona
        text: Veltrona was founded in Valence.
    turns:
      - documents: [brightwater, veltrona]
        user: Where was Veltrona Robotics founded?
      - documents: [veltrona]
        user: Who founded Brightwater?
      - user: And when?
      - documents: []
        user: Say hello.
    """

    func testParsesAGoodFile() throws {
        let s = try Scenario.parse(yaml: good, file: "good.yaml")
        XCTAssertEqual(s.name, "Reordered company facts")
        XCTAssertEqual(s.maxTokens, 48)
        XCTAssertEqual(s.system, "Answer using only the documents.")
        XCTAssertEqual(s.documents.map(\.id), ["brightwater", "veltrona"])
        XCTAssertEqual(s.documents[0].title, "Brightwater Analytics")
        XCTAssertEqual(s.documents[0].text, "Brightwater was founded in Tromsø.")
        XCTAssertEqual(s.documents[1].title, "veltrona", "title defaults to the id")
        XCTAssertEqual(s.turns.map(\.documents), [["brightwater", "veltrona"], ["veltrona"], ["veltrona"], []])
        XCTAssertEqual(s.turns[2].user, "And when?")
        XCTAssertEqual(s.turns[0].line, 12)
        XCTAssertEqual(s.documents(for: s.turns[0]).map(\.id), ["brightwater", "veltrona"])
    }

    func testDefaultsWithoutDocuments() throws {
        let s = try Scenario.parse(yaml: "turns:\n  - user: hi\n", file: "/tmp/chat.yaml")
        XCTAssertEqual(s.name, "chat")
        XCTAssertEqual(s.maxTokens, Scenario.defaultMaxTokens)
        XCTAssertEqual(s.system, DuelConfig.defaultSystemPrompt)
        XCTAssertEqual(s.turns.map(\.documents), [[]])
    }

    func testFileDocumentsAreRelativeToTheScenario() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvduel-scn-\(getpid())")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("docs"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "# Orchid Lane Coffee\n\nRoasts in Kraków.\n".write(to: dir.appendingPathComponent("docs/orchid.md"), atomically: true, encoding: .utf8)
        let yaml = "documents:\n  - id: orchid\n    file: docs/orchid.md\nturns:\n  - user: Where?\n"
        let path = dir.appendingPathComponent("s.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let s = try Scenario.load(path: path)
        XCTAssertEqual(s.documents, [Document(id: "orchid", title: "Orchid Lane Coffee", text: "Roasts in Kraków.")])
        XCTAssertEqual(s.turns[0].documents, ["orchid"], "first turn without documents: all of them")
    }

    func testShippedDemosParse() throws {
        let demos = TestDocs.repoRoot().appendingPathComponent("demos")
        let rag = try Scenario.load(path: demos.appendingPathComponent("rag-reorder.yaml").path)
        XCTAssertEqual(rag.documents.count, 6)
        XCTAssertTrue((5...6).contains(rag.turns.count))
        XCTAssertGreaterThan(Set(rag.turns.map(\.documents)).count, 4, "the order changes between questions")
        for d in rag.documents {
            let words = d.text.split(whereSeparator: { $0 == " " || $0 == "\n" }).count
            XCTAssertTrue((110...370).contains(words), "\(d.id): \(words) words")
        }
        let chat = try Scenario.load(path: demos.appendingPathComponent("long-chat.yaml").path)
        XCTAssertTrue(chat.documents.isEmpty)
        XCTAssertTrue((10...14).contains(chat.turns.count))
        XCTAssertTrue((96...128).contains(chat.maxTokens))
        XCTAssertGreaterThan(chat.turns.count * chat.maxTokens, 1500, "history can grow past 2000 tokens")
        let mixed = try Scenario.load(path: demos.appendingPathComponent("mixed.yaml").path)
        XCTAssertFalse(mixed.documents.isEmpty)
        XCTAssertEqual(mixed.turns[1].documents, mixed.turns[0].documents, "follow-ups keep the documents")
        let same = try Scenario.load(path: demos.appendingPathComponent("rag-followups.yaml").path)
        XCTAssertEqual(same.documents.count, 5)
        XCTAssertGreaterThanOrEqual(same.turns.count, 4)
        XCTAssertEqual(Set(same.turns.map(\.documents)).count, 1, "the same documents in the same order every turn")
    }

    func testDefaultDocumentsShip() throws {
        let docs = try Document.loadDirectory(TestDocs.repoRoot().appendingPathComponent("assets/docs").path)
        XCTAssertTrue((5...6).contains(docs.count))
        for d in docs {
            XCTAssertNotEqual(d.title, d.id, "\(d.id) has a heading")
            let words = d.text.split(whereSeparator: { $0 == " " || $0 == "\n" }).count
            XCTAssertTrue((150...400).contains(words), "\(d.id): \(words) words")
        }
    }

    func testConfigStartsFromAScenario() throws {
        var cfg = DuelConfig(info: TestDocs.info)
        cfg.apply(try Scenario.parse(yaml: good))
        XCTAssertEqual(cfg.maxTokens, 48)
        XCTAssertEqual(cfg.systemPrompt, "Answer using only the documents.")
        XCTAssertEqual(AppState(config: cfg).blocks.map(\.id), ["brightwater", "veltrona"])
    }

    // MARK: bad files: one line, with the line number

    func assertError(_ yaml: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Scenario.parse(yaml: yaml, file: "bad.yaml"), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertEqual(text, expected, file: file, line: line)
            XCTAssertFalse(text.contains("\n"), "one line", file: file, line: line)
        }
    }

    func testUnknownDocument() {
        let yaml = good.replacingOccurrences(of: "[veltrona]", with: "[veltrona, foo]")
        assertError(yaml, "bad.yaml:14: turn 2 names unknown document 'foo'")
    }

    func testYAMLSyntaxError() {
        assertError("name: x\nturns:\n  - user: [unclosed\n", "bad.yaml:4: YAML syntax error: did not find expected ',' or ']'")
    }

    func testMissingQuestion() {
        assertError("turns:\n  - documents: []\n", "bad.yaml:2: turn 1 has no `user:` question")
    }

    func testUnknownKey() {
        assertError("name: x\nturn:\n  - user: hi\n",
                    "bad.yaml:2: scenario has unknown key 'turn' (expected one of: documents, max_tokens, name, system, turns)")
    }

    func testMissingTurns() {
        assertError("name: x\n", "bad.yaml:1: missing `turns:`")
        assertError("turns: []\n", "bad.yaml:1: turns is empty")
        assertError("", "bad.yaml:1: the file is empty")
    }

    func testBadMaxTokens() {
        assertError("max_tokens: lots\nturns:\n  - user: hi\n", "bad.yaml:1: max_tokens must be a positive integer, not 'lots'")
    }

    func testDocumentProblems() {
        assertError("documents:\n  - id: a\n    text: x\n  - id: a\n    text: y\nturns:\n  - user: hi\n",
                    "bad.yaml:4: document 2 repeats the id 'a'")
        assertError("documents:\n  - title: A\n    text: x\nturns:\n  - user: hi\n", "bad.yaml:2: document 1 has no `id:`")
        assertError("documents:\n  - id: a\nturns:\n  - user: hi\n", "bad.yaml:2: document 'a' needs `text:` or `file:`")
        assertError("documents:\n  - id: a\n    text: x\n    file: a.md\nturns:\n  - user: hi\n",
                    "bad.yaml:4: document 'a' has both `text:` and `file:`; keep one")
        assertError("documents:\n  - id: a\n    file: nowhere.md\nturns:\n  - user: hi\n",
                    "bad.yaml:3: document 'a': cannot read file 'nowhere.md'")
    }

    func testDuplicateDocumentInATurn() {
        assertError("documents:\n  - id: a\n    text: x\nturns:\n  - documents: [a, a]\n    user: hi\n",
                    "bad.yaml:5: turn 1 names document 'a' twice")
    }

    func testWrongShapes() {
        assertError("- a\n- b\n", "bad.yaml:1: expected a mapping with `turns:` at the top level")
        assertError("turns:\n  - hello\n", "bad.yaml:2: turn 1 must be a mapping with `user:`")
        assertError("turns:\n  - user: hi\n    documents: a\n", "bad.yaml:3: turn 1: documents must be a list of ids")
        assertError("documents: a\nturns:\n  - user: hi\n", "bad.yaml:1: documents must be a list")
    }

    func testMissingFile() {
        XCTAssertThrowsError(try Scenario.load(path: "/nonexistent/x.yaml")) { e in
            XCTAssertEqual("\(e)", "/nonexistent/x.yaml: cannot read the file")
        }
    }
}
