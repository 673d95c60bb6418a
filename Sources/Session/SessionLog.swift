import DuelCore
import Engine
import Foundation

// The session log: newline-delimited JSON.
//
//   line 1:   the header (SessionHeader): format name and version, kvduel version, model name and
//             fingerprint, every option that shapes the numbers, theme, terminal size, start time,
//             machine, and the documents and system prompt the duel started with;
//   line 2…:  one event per line, `[t, kind, payload]`, t = seconds since the start; kind and
//             payload are an `Action` (DuelCore/ActionCoding.swift).
//
// Every figure the screen shows comes from these events (stats, cache states, RSS samples);
// nothing is recomputed when replaying.

public enum SessionFormat {
    public static let name = "kvduel-session"
    /// major.minor: a reader refuses a newer major version; minor versions only add kinds and fields.
    public static let version = "1.0"
    public static let major = 1
}

/// The version of kvduel written into session logs.
public let kvduelVersion = "0.3.0"

public struct SessionHeader: Codable, Sendable, Hashable {
    public struct Model: Codable, Sendable, Hashable {
        public var name: String
        /// The model's identity as the engines report it (`LlamaModel.fingerprint`); "" for demo engines.
        public var fingerprint: String
        public var fileBytes: Int
        public var file: String
        public init(name: String, fingerprint: String = "", fileBytes: Int = 0, file: String = "") {
            self.name = name
            self.fingerprint = fingerprint
            self.fileBytes = fileBytes
            self.file = file
        }
    }
    public struct Options: Codable, Sendable, Hashable {
        public var schedule: String
        public var threadsPerEngine: Int
        public var recomputeRatio: Double
        public var encoding: String
        public var storeRAMBytes: Int
        public var diskTier: Bool
        public var maxTokens: Int
        public var temperature: Double
        public var topK: Int
        public var topP: Double
        public var seed: UInt64
        /// Engines: "llama" (the real model) or "demo" (stand-ins, no model).
        public var engines: String
        public init(schedule: String, threadsPerEngine: Int, recomputeRatio: Double, encoding: String,
                    storeRAMBytes: Int, diskTier: Bool, maxTokens: Int, temperature: Double = 0, topK: Int = 0,
                    topP: Double = 1, seed: UInt64 = 0, engines: String) {
            self.schedule = schedule
            self.threadsPerEngine = threadsPerEngine
            self.recomputeRatio = recomputeRatio
            self.encoding = encoding
            self.storeRAMBytes = storeRAMBytes
            self.diskTier = diskTier
            self.maxTokens = maxTokens
            self.temperature = temperature
            self.topK = topK
            self.topP = topP
            self.seed = seed
            self.engines = engines
        }
    }
    public struct Machine: Codable, Sendable, Hashable {
        public var host: String
        public var os: String
        public var cpu: String
        public var cores: Int
        public var memoryBytes: UInt64
        public static var current: Machine {
            let p = ProcessInfo.processInfo
            return Machine(host: p.hostName, os: p.operatingSystemVersionString, cpu: cpuModel(),
                           cores: p.activeProcessorCount, memoryBytes: p.physicalMemory)
        }
    }

    public var format: String = SessionFormat.name
    public var version: String = SessionFormat.version
    public var kvduel: String = kvduelVersion
    public var title: String
    public var model: Model
    public var options: Options
    public var theme: String
    public var cols: Int
    public var rows: Int
    /// ISO 8601, UTC.
    public var started: String
    /// Unix seconds.
    public var startedUnix: Double
    public var machine: Machine
    public var system: String
    public var documents: [Document]
    public var initialOrder: [String]?

    public init(title: String, model: Model, options: Options, theme: String, cols: Int, rows: Int,
                started: Date = Date(), machine: Machine = .current, system: String, documents: [Document],
                initialOrder: [String]?) {
        self.title = title
        self.model = model
        self.options = options
        self.theme = theme
        self.cols = cols
        self.rows = rows
        let f = ISO8601DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        self.started = f.string(from: started)
        startedUnix = started.timeIntervalSince1970
        self.machine = machine
        self.system = system
        self.documents = documents
        self.initialOrder = initialOrder
    }

    /// A header for a duel about to start.
    public init(config: DuelConfig, model: Model, options: Options, cols: Int, rows: Int, title: String? = nil) {
        self.init(title: title ?? "kvduel · \(model.name)", model: model, options: options, theme: config.theme,
                  cols: cols, rows: rows, system: config.systemPrompt, documents: config.documents,
                  initialOrder: config.initialOrder)
    }

    /// The duel's configuration as it was when recording began (for replays; no model needed).
    public var config: DuelConfig {
        let info = SessionInfo(modelName: model.name, modelBytes: model.fileBytes, threadsPerEngine: options.threadsPerEngine,
                               schedule: Schedule(rawValue: options.schedule) ?? .parallel,
                               recomputeRatio: options.recomputeRatio, storeCapacityBytes: options.storeRAMBytes,
                               storage: options.encoding)
        return DuelConfig(info: info, systemPrompt: system, documents: documents, initialOrder: initialOrder,
                          maxTokens: options.maxTokens,
                          sampling: Sampling(temperature: Float(options.temperature), topK: options.topK,
                                             topP: Float(options.topP), seed: options.seed),
                          theme: theme)
    }
}

/// One event: an action at `t` seconds since the start.
public struct SessionEvent: Sendable, Hashable {
    public var t: Double
    public var action: Action
    public init(t: Double, action: Action) {
        self.t = t
        self.action = action
    }

    /// One log line (no newline): `[t, kind, payload]`.
    public func line() throws -> String {
        let data = try lineEncoder.encode(Wire(event: self))
        return String(decoding: data, as: UTF8.self)
    }

    /// `[t, kind, payload]`; kind and payload are the action's own coding.
    struct Wire: Codable {
        var event: SessionEvent
        init(event: SessionEvent) { self.event = event }
        func encode(to encoder: Encoder) throws {
            var c = encoder.unkeyedContainer()
            try c.encode((event.t * 1e6).rounded() / 1e6)
            try c.encode(event.action.kind)
            try event.action.encodePayload(to: c.superEncoder())
        }
        init(from decoder: Decoder) throws {
            var c = try decoder.unkeyedContainer()
            let t = try c.decode(Double.self)
            let kind = try c.decode(String.self)
            guard t.isFinite, t >= 0 else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "bad time \(t)")
            }
            event = SessionEvent(t: t, action: try Action(kind: kind, payload: c.superDecoder()))
        }
    }
}

private let lineEncoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return e
}()

/// A session log problem that stops reading it: one line, naming the file.
public struct SessionLogError: Error, CustomStringConvertible, Hashable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A session log as read: the header, the events up to any damage, and what was wrong.
public struct SessionLog: Sendable {
    public var header: SessionHeader
    public var events: [SessionEvent]
    /// One line when the log was cut short or damaged: the events before it are all here.
    public var warning: String?
    /// Events of kinds this version does not know, skipped.
    public var skippedUnknown = 0

    /// Reads a log file. Throws `SessionLogError` (one line) when there is nothing to replay.
    public static func read(path: String) throws -> SessionLog {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
                throw SessionLogError("\(path) is a directory, not a session log")
            }
            throw SessionLogError("cannot read \(path)")
        }
        return try parse(data, name: path)
    }

    /// Parses a log. `name` only names the source in messages.
    public static func parse(_ data: Data, name: String = "session log") throws -> SessionLog {
        let bytes = [UInt8](data)
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        for (i, b) in bytes.enumerated() where b == UInt8(ascii: "\n") {
            lines.append(bytes[start..<i])
            start = i + 1
        }
        if start < bytes.count { lines.append(bytes[start...]) }
        guard let first = lines.first, !first.isEmpty else { throw SessionLogError("\(name) is empty, not a session log") }

        // The header: check the format and version before decoding the rest of it.
        guard let obj = try? JSONSerialization.jsonObject(with: Data(first)) as? [String: Any],
              obj["format"] as? String == SessionFormat.name else {
            throw SessionLogError("\(name) is not a kvduel session log (its first line is not a \(SessionFormat.name) header)")
        }
        let version = obj["version"] as? String ?? "?"
        guard let major = Int(version.split(separator: ".").first ?? ""), major >= 1 else {
            throw SessionLogError("\(name): unreadable session format version '\(version)'")
        }
        if major > SessionFormat.major {
            throw SessionLogError("\(name) uses session format \(version), newer than this kvduel reads (\(SessionFormat.major).x); update kvduel to replay it")
        }
        let header: SessionHeader
        do { header = try JSONDecoder().decode(SessionHeader.self, from: Data(first)) } catch {
            throw SessionLogError("\(name): the header is damaged (\(shortReason(error)))")
        }

        var log = SessionLog(header: header, events: [])
        let decoder = JSONDecoder()
        var lastT = 0.0
        for (i, line) in lines.enumerated().dropFirst() {
            if line.isEmpty && i == lines.count - 1 { break }
            do {
                var e = try decoder.decode(SessionEvent.Wire.self, from: Data(line)).event
                e.t = max(e.t, lastT)   // times never go back
                lastT = e.t
                log.events.append(e)
            } catch is UnknownActionKind {
                log.skippedUnknown += 1
            } catch {
                log.warning = damageWarning(name: name, line: i + 1, total: lines.count, events: log.events)
                break
            }
        }
        return log
    }

    static func damageWarning(name: String, line: Int, total: Int, events: [SessionEvent]) -> String {
        let at = events.last.map { String(format: "%.1f s", $0.t) } ?? "the start"
        let what = line == total ? "is cut short" : "is damaged"
        return "warning: \(name) line \(line) \(what); replayed the \(events.count) events before it (up to \(at))"
    }

    static func shortReason(_ error: Error) -> String {
        if let e = error as? DecodingError {
            switch e {
            case .keyNotFound(let k, _): return "missing '\(k.stringValue)'"
            case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
                return c.codingPath.map(\.stringValue).joined(separator: ".") + ": " + c.debugDescription
            @unknown default: return "\(e)"
            }
        }
        return "\(error)"
    }

    /// Length in seconds (the last event's time).
    public var duration: Double { events.last?.t ?? 0 }

    /// Markers in order: event index, time and label.
    public var markers: [(index: Int, t: Double, label: String?)] {
        events.enumerated().compactMap { i, e in
            if case .markerDropped(let l) = e.action { return (i, e.t, l) }
            return nil
        }
    }
}

/// The CPU model from /proc/cpuinfo ("" where unknown).
func cpuModel() -> String {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "" }
    for line in text.split(separator: "\n") where line.hasPrefix("model name") {
        return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
    }
    return ""
}
