import CKernels
import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What makes two loads of a model give the same numbers, hashed:
///
///   fingerprint = SHA-256("kvduel.model-identity", formatVersion, SHA-256(whole GGUF file),
///                         build identity, CPU architecture)
///
/// The whole file covers every tensor byte and all metadata (tokenizer, RoPE base, norms…). The
/// build identity (`kv_build_identity()`, e.g. "x86_64+avx2+fma+f16c/ckernels-v3") covers what
/// the file does not: AVX2/FMA, NEON and portable builds round differently. The run-time choice
/// of matrix-product path (AVX-512 VNNI, AVX-VNNI, AVX2…) is not part of it: those give the same bits.
/// `formatVersion` is bumped whenever the engine's numbers (or its stored KV layout) change.
///
/// Hashing ~100 MB takes a fraction of a second, a multi-GB model several; so the file digest is
/// remembered in `<cache directory>/model-identity.json` (0600, written atomically) under the
/// file's (path, size, mtime, ctime, inode, device), with nanoseconds. Any change to the file
/// changes its mtime or ctime, so a stale digest is never used; an unreadable or corrupt memo is
/// ignored and rewritten.
public struct ModelIdentity: Sendable, Equatable {
    /// Bump when the forward pass's numerics or the KV layout change.
    public static let formatVersion = 2

    /// SHA-256 of the whole file, lowercase hex.
    public let fileSHA256: String
    /// `kv_build_identity()`: the arithmetic this build computes with.
    public let kernelPath: String
    /// The combined digest (hex), what cache keys are derived from.
    public let digest: String
    /// Whether `fileSHA256` came from the memo (no hashing this time).
    public let memoised: Bool
    /// Time spent on the identity (hashing, or reading the memo).
    public let seconds: Double

    public static var kernelPath: String { String(cString: kv_build_identity()) }

    static var architecture: String {
        #if arch(x86_64)
        return "x86_64"
        #elseif arch(arm64)
        return "arm64"
        #else
        return "other"
        #endif
    }

    /// Identity of the file at `path`. `memoDirectory` nil: always hash, remember nothing.
    /// `progress` gets the hashed fraction (0…1) while hashing.
    public static func of(path: String, memoDirectory: String?,
                          progress: ((Double) -> Void)? = nil) throws -> ModelIdentity {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let (sha, memoised) = try fileDigest(path: path, memoDirectory: memoDirectory, progress: progress)
        let kernel = kernelPath
        var h = SHA256()
        h.update(data: Array("kvduel.model-identity|v\(formatVersion)|\(sha)|\(kernel)|\(architecture)".utf8))
        let digest = h.finalize().map { String(format: "%02x", $0) }.joined()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return ModelIdentity(fileSHA256: sha, kernelPath: kernel, digest: digest, memoised: memoised, seconds: seconds)
    }

    // MARK: file digest, remembered

    /// What the memo is keyed by: any write to the file changes mtime or ctime (both with ns).
    struct FileStamp: Codable, Equatable {
        var path: String
        var size: Int64
        var mtimeSec: Int64
        var mtimeNsec: Int64
        var ctimeSec: Int64
        var ctimeNsec: Int64
        var inode: UInt64
        var device: UInt64

        init(path: String, _ st: stat) {
            self.path = path
            size = Int64(st.st_size)
            #if canImport(Darwin)
            mtimeSec = Int64(st.st_mtimespec.tv_sec); mtimeNsec = Int64(st.st_mtimespec.tv_nsec)
            ctimeSec = Int64(st.st_ctimespec.tv_sec); ctimeNsec = Int64(st.st_ctimespec.tv_nsec)
            #else
            mtimeSec = Int64(st.st_mtim.tv_sec); mtimeNsec = Int64(st.st_mtim.tv_nsec)
            ctimeSec = Int64(st.st_ctim.tv_sec); ctimeNsec = Int64(st.st_ctim.tv_nsec)
            #endif
            inode = UInt64(st.st_ino)
            device = UInt64(st.st_dev)
        }
    }

    struct MemoEntry: Codable, Equatable {
        var stamp: FileStamp
        var sha256: String
    }

    struct Memo: Codable {
        var version = 1
        var entries: [MemoEntry] = []
    }

    static let memoFileName = "model-identity.json"
    /// Most files remembered; the oldest are dropped first.
    static let memoLimit = 64

    static func fileDigest(path: String, memoDirectory: String?,
                           progress: ((Double) -> Void)?) throws -> (String, Bool) {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ModelIdentityError.io("cannot open '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var before = stat()
        guard fstat(fd, &before) == 0 else { throw ModelIdentityError.io("cannot stat '\(path)'") }
        let stamp = FileStamp(path: absolute, before)
        let memoPath = memoDirectory.map { $0 + "/" + memoFileName }
        var memo = memoPath.flatMap(readMemo) ?? Memo()
        progress?(0)
        if let hit = memo.entries.first(where: { $0.stamp == stamp }) { return (hit.sha256, true) }

        var h = SHA256()
        let size = Int(before.st_size)
        let chunk = 8 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var done = 0
        while true {
            let n = read(fd, buffer.baseAddress!, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw ModelIdentityError.io("cannot read '\(path)': \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            h.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            done += n
            if size > 0 { progress?(min(1, Double(done) / Double(size))) }
        }
        let sha = h.finalize().map { String(format: "%02x", $0) }.joined()
        // Remember it only if the file did not change while it was read.
        var after = stat()
        if let memoPath, fstat(fd, &after) == 0, FileStamp(path: absolute, after) == stamp, done == size {
            memo.entries.removeAll { $0.stamp.path == absolute }
            memo.entries.append(MemoEntry(stamp: stamp, sha256: sha))
            if memo.entries.count > memoLimit { memo.entries.removeFirst(memo.entries.count - memoLimit) }
            writeMemo(memo, to: memoPath)
        }
        return (sha, false)
    }

    /// The memo, or nil when missing, unreadable or malformed (it is then rewritten on the next hash).
    static func readMemo(_ path: String) -> Memo? {
        guard let data = FileManager.default.contents(atPath: path),
              let memo = try? JSONDecoder().decode(Memo.self, from: data), memo.version == 1 else { return nil }
        let hex = Set("0123456789abcdef")
        return Memo(entries: memo.entries.filter { $0.sha256.count == 64 && $0.sha256.allSatisfy(hex.contains) })
    }

    /// Writes a temp file (0600) and renames it over the memo. Best effort: a cache directory that
    /// cannot be written only costs hashing again next time.
    static func writeMemo(_ memo: Memo, to path: String) {
        let dir = (path as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: dir) {
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                     attributes: [.posixPermissions: 0o700])
        }
        guard let data = try? JSONEncoder().encode(memo) else { return }
        let tmp = "\(dir)/.\(memoFileName).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return }
        var ok = fchmod(fd, 0o600) == 0
        ok = ok && data.withUnsafeBytes { raw -> Bool in
            var off = 0
            while off < raw.count {
                let n = write(fd, raw.baseAddress! + off, raw.count - off)
                if n > 0 { off += n } else if n < 0 && errno == EINTR { continue } else { return false }
            }
            return true
        }
        ok = close(fd) == 0 && ok
        if !ok || rename(tmp, path) != 0 { unlink(tmp) }
    }
}

public enum ModelIdentityError: Error, CustomStringConvertible {
    case io(String)
    public var description: String {
        switch self { case let .io(s): return s }
    }
}
