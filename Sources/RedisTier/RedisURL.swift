import Foundation

/// `redis://[user:password@]host:port[/db]`, parsed. The password may also come from
/// `KVDUEL_REMOTE_PASSWORD` (the URL's wins).
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String?
    public var password: String?
    public var db: Int

    public struct ParseError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public init(host: String, port: Int = 6379, user: String? = nil, password: String? = nil, db: Int = 0) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.db = db
    }

    /// Parses a URL; `environment` supplies `KVDUEL_REMOTE_PASSWORD` when the URL has no password.
    public init(parsing text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let fail = { (why: String) in ParseError(message: "remote URL \(RedisURL.masking(text)): \(why) (expected redis://[user:password@]host:port[/db])") }
        guard text.hasPrefix("redis://"), let c = URLComponents(string: text) else { throw fail("not a redis:// URL") }
        guard let h = c.host, !h.isEmpty else { throw fail("no host") }
        host = h.hasPrefix("[") && h.hasSuffix("]") ? String(h.dropFirst().dropLast()) : h
        port = c.port ?? 6379
        guard (1...65535).contains(port) else { throw fail("port out of range") }
        user = c.user.flatMap { $0.isEmpty ? nil : $0 }
        password = c.password.flatMap { $0.isEmpty ? nil : $0 } ?? environment["KVDUEL_REMOTE_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
        let path = c.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if path.isEmpty {
            db = 0
        } else if let d = Int(path), d >= 0 {
            db = d
        } else {
            throw fail("database must be a number, got '\(path)'")
        }
        guard c.query == nil, c.fragment == nil else { throw fail("no query or fragment allowed") }
    }

    /// The URL with any password replaced by `***`, for screens and logs.
    public var description: String {
        var auth = ""
        if let user { auth = user + (password != nil ? ":***" : "") + "@" } else if password != nil { auth = ":***@" }
        let h = host.contains(":") ? "[\(host)]" : host
        return "redis://\(auth)\(h):\(port)" + (db != 0 ? "/\(db)" : "")
    }

    /// `text` with the password part of its authority masked (for error messages about a URL that did not parse).
    public static func masking(_ text: String) -> String {
        guard let scheme = text.range(of: "://") else { return text }
        let rest = text[scheme.upperBound...]
        guard let at = rest.lastIndex(of: "@") else { return text }
        let auth = rest[..<at]
        guard let colon = auth.firstIndex(of: ":") else { return text }
        return String(text[..<scheme.upperBound]) + auth[..<colon] + ":***" + rest[at...]
    }
}
