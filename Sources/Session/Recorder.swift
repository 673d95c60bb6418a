import DuelCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes the session log as the duel runs (`chat --record FILE`): an `ActionSink` on the app loop.
///
/// The file is created 0600 before the screen opens (an unwritable path is a one-line error then).
/// The header waits for the model to load, so it can carry the model's fingerprint; after it, each
/// event is written with its own `write(2)` as it happens (as asciinema does), so a crash loses at
/// most the event being written. Clock ticks, help toggles and quit are not recorded: ticks are
/// implied by the times, and the help overlay and quitting belong to the viewer.
public final class SessionRecorder: ActionSink, @unchecked Sendable {
    public let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var header: SessionHeader
    private var headerWritten = false
    private var pending: [SessionEvent] = []
    private var t0: Double?
    private var closed = false
    public private(set) var eventsWritten = 0
    /// Set when a write failed; recording stops there.
    public private(set) var writeError: String?

    /// Creates (or truncates) `path` with mode 0600. Throws `SessionLogError` with one line.
    public init(path: String, header: SessionHeader) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw SessionLogError("cannot record to \(path): it is a directory")
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw SessionLogError("cannot record to \(path): \(String(cString: strerror(errno)))")
        }
        fchmod(fd, 0o600)
        self.fd = fd
        self.path = path
        self.header = header
    }

    deinit { close() }

    /// The model's identity, once loaded (call before the app sees `.loaded`).
    public func setModel(fingerprint: String, name: String? = nil, fileBytes: Int? = nil) {
        lock.lock(); defer { lock.unlock() }
        header.model.fingerprint = fingerprint
        if let name { header.model.name = name }
        if let fileBytes { header.model.fileBytes = fileBytes }
    }

    /// Writes the header now (the engines need no loading, or the header should not wait).
    public func writeHeaderNow() {
        lock.lock(); defer { lock.unlock() }
        flushHeader()
    }

    public static func isRecorded(_ action: Action) -> Bool {
        switch action {
        case .tick, .helpToggled, .breakdownToggled, .quitRequested: return false
        default: return true
        }
    }

    public func observe(_ action: Action, at now: Double) {
        lock.lock(); defer { lock.unlock() }
        guard !closed, writeError == nil else { return }
        if t0 == nil { t0 = now }
        guard Self.isRecorded(action) else { return }
        let event = SessionEvent(t: max(0, now - t0!), action: action)
        if !headerWritten {
            pending.append(event)
            switch action {
            case .resized(let c, let r):
                header.cols = c
                header.rows = r
            case .loaded, .loadFailed: flushHeader()
            default: break
            }
            return
        }
        write(event)
    }

    /// Writes what is pending and closes the file.
    public func close() {
        lock.lock(); defer { lock.unlock() }
        guard !closed else { return }
        flushHeader()
        closed = true
        Glibc.close(fd)
    }

    private func flushHeader() {
        guard !headerWritten, !closed else { return }
        headerWritten = true
        do {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            writeLine(String(decoding: try e.encode(header), as: UTF8.self))
        } catch {
            writeError = "cannot encode the session header: \(error)"
        }
        let p = pending
        pending = []
        for ev in p { write(ev) }
    }

    private func write(_ event: SessionEvent) {
        do {
            writeLine(try event.line())
            eventsWritten += 1
        } catch {
            writeError = "cannot encode a \(event.action.kind) event: \(error)"
        }
    }

    private func writeLine(_ line: String) {
        guard writeError == nil else { return }
        var bytes = Array((line + "\n").utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                writeError = "cannot write \(path): \(String(cString: strerror(errno)))"
                return
            }
            off += n
        }
    }
}
