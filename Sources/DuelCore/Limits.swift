import Foundation

/// Command-line values checked against the machine before anything runs: a one-line error for
/// nonsense, a clamp with a one-line note for what is merely more than the machine has.
public enum Limits {
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let description: String
        public init(_ d: String) { description = d }
    }

    /// A checked value and, when it was changed, the line saying so.
    public struct Checked<T: Equatable>: Equatable {
        public var value: T
        public var note: String?
        public init(value: T, note: String?) {
            self.value = value
            self.note = note
        }
    }

    public static var physicalMemoryBytes: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory) }
    public static var cores: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// `--cache-mb` (a RAM budget in MiB) as bytes. Not positive: an error. More than the physical
    /// memory (including values whose byte count would overflow): clamped to it, with a note.
    public static func cacheBytes(megabytes mb: Int, physicalMemory: Int = physicalMemoryBytes,
                                  option: String = "--cache-mb") throws -> Checked<Int> {
        guard mb > 0 else { throw Error("\(option) must be positive, got \(mb)") }
        let physicalMB = max(1, physicalMemory >> 20)
        if mb > physicalMB {
            return Checked(value: physicalMB << 20,
                           note: "\(option) \(mb) is more than this machine's memory; using \(physicalMB) MiB")
        }
        return Checked(value: mb << 20, note: nil)
    }

    /// `--threads`: not positive is an error; more than the cores is clamped to them (more workers
    /// than cores only make the pool's threads wait for each other), with a note.
    public static func threads(_ n: Int, cores: Int = cores) throws -> Checked<Int> {
        guard n > 0 else { throw Error("--threads must be positive, got \(n)") }
        let cores = max(1, cores)
        if n > cores {
            return Checked(value: cores, note: "--threads \(n) is more than the \(cores) cores; using \(cores)")
        }
        return Checked(value: n, note: nil)
    }

    /// `--max-tokens`: at least 1 (and at most `contextLength` when known).
    public static func maxTokens(_ n: Int, contextLength: Int? = nil) throws -> Int {
        guard n > 0 else { throw Error("--max-tokens must be at least 1, got \(n)") }
        if let c = contextLength, n > c {
            throw Error("--max-tokens \(n) is more than the model's context of \(c) tokens")
        }
        return n
    }
}
