import CKernels

/// Raw pointers cross into worker closures through this wrapper.
@usableFromInline struct SendablePointer<T>: @unchecked Sendable {
    @usableFromInline let p: UnsafeMutablePointer<T>
    @inlinable init(_ p: UnsafeMutablePointer<T>) { self.p = p }
}

/// Persistent worker threads (C, `kv_pool_*`): the forward pass opens about 150 short parallel
/// regions per decoded token, too short for a Dispatch wake-up each. Workers spin briefly, then park.
/// One pool belongs to one context and runs one region at a time.
final class WorkerPool {
    let threads: Int
    private let pool: OpaquePointer

    init(threads: Int) {
        self.threads = max(1, threads)
        pool = kv_pool_create(Int32(self.threads - 1))
    }

    deinit { kv_pool_destroy(pool) }

    /// Calls `body(i)` for i in 0..<n, on the calling thread and the workers.
    func run(_ n: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            var f = body
            withUnsafeMutablePointer(to: &f) { fp in
                kv_pool_run(pool, Int32(n), { ctx, i in
                    ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(i))
                }, UnsafeMutableRawPointer(fp))
            }
        }
    }
}

/// Splits `0..<count` into `chunks` × `pool.threads` contiguous ranges (aligned to `align`), claimed
/// by the workers as they come (several chunks per thread let the caller take over a slow worker's
/// share on a loaded machine). With one thread the work runs inline on the caller.
@inline(__always)
func parallelRanges(_ count: Int, pool: WorkerPool, align: Int = 1, chunks: Int = 1, _ body: (Range<Int>) -> Void) {
    if pool.threads <= 1 { body(0..<count); return }
    let n = min(pool.threads * chunks, max(1, count / max(align, 1)))
    if n <= 1 { body(0..<count); return }
    let units = (count + align - 1) / align
    pool.run(n) { i in
        let lo = min(count, units * i / n * align)
        let hi = i == n - 1 ? count : min(count, units * (i + 1) / n * align)
        if lo < hi { body(lo..<hi) }
    }
}
