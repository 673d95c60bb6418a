import Foundation

/// Why a document could not be used; the message names the file.
public struct DocumentError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

extension Document {
    /// Loads a `.txt`/`.md` file as a block. The id is the file name without extension; the title is
    /// the first line when it is a Markdown heading (`# Title`) or a `Title:` line, else the id.
    /// Throws a `DocumentError` naming the file when it is missing, a directory, unreadable, or
    /// not UTF-8 text (a NUL byte counts as binary).
    public static func load(path: String, id: String? = nil) throws -> Document {
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DocumentError("\(path): no such file")
        }
        guard !isDir.boolValue else { throw DocumentError("\(path) is a directory, not a document (use --docs for a directory)") }
        guard let data = FileManager.default.contents(atPath: path) else { throw DocumentError("\(path): cannot read it (permissions?)") }
        guard !data.contains(0), let raw = String(data: data, encoding: .utf8) else {
            throw DocumentError("\(path) is not UTF-8 text (a binary file?)")
        }
        let id = id ?? url.deletingPathExtension().lastPathComponent
        var lines = raw.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var title = id
        if let first = lines.first {
            if first.hasPrefix("# ") {
                title = String(first.dropFirst(2)).trimmingWhitespace()
                lines.removeFirst()
            } else if first.lowercased().hasPrefix("title:") {
                title = String(first.dropFirst(6)).trimmingWhitespace()
                lines.removeFirst()
            }
        }
        return Document(id: id, title: title, text: lines.joined(separator: "\n").trimmingWhitespace())
    }

    /// Loads every `*.txt` and `*.md` file in a directory, sorted by file name.
    public static func loadDirectory(_ path: String) throws -> [Document] {
        let names = try FileManager.default.contentsOfDirectory(atPath: path)
            .filter { $0.hasSuffix(".txt") || $0.hasSuffix(".md") }
            .filter { !$0.hasPrefix(".") && $0.lowercased() != "readme.md" }
            .sorted()
        return try names.map { try load(path: (path as NSString).appendingPathComponent($0)) }
    }

    /// Where the default sample documents live: `$KVDUEL_ASSETS/docs`, `./assets/docs`, or
    /// `assets/docs` next to (or above) the executable (`.build/release/kvduel` → repo root).
    public static func defaultDocumentsDirectory(executablePath: String = CommandLine.arguments.first ?? "") -> String? {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["KVDUEL_ASSETS"] {
            candidates.append((env as NSString).appendingPathComponent("docs"))
        }
        candidates.append((FileManager.default.currentDirectoryPath as NSString).appendingPathComponent("assets/docs"))
        var dir = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(dir.appendingPathComponent("assets/docs").path)
            dir = dir.deletingLastPathComponent()
        }
        var isDir: ObjCBool = false
        return candidates.first { FileManager.default.fileExists(atPath: $0, isDirectory: &isDir) && isDir.boolValue }
    }

    /// The default sample documents (empty when the assets cannot be found).
    public static func defaultDocuments() -> [Document] {
        guard let dir = defaultDocumentsDirectory() else { return [] }
        return (try? loadDirectory(dir)) ?? []
    }
}
