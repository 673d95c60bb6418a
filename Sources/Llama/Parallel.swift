import Dispatch

/// Raw pointers cross into worker closures through this wrapper.
@usableFromInline struct SendablePointer<T>: @unchecked Sendable {
    @usableFromInline let p: UnsafeMutablePointer<T>
    @inlinable init(_ p: UnsafeMutablePointer<T>) { self.p = p }
}

/// Splits `0..<count` into `threads` contiguous ranges (aligned to `align`) and runs them at once.
/// With one thread the work runs inline on the caller, so an engine given 1 thread uses exactly 1.
@inlinable
func parallelRanges(_ count: Int, threads: Int, align: Int = 1, _ body: (Range<Int>) -> Void) {
    let n = min(threads, max(1, count / max(align, 1)))
    if n <= 1 { body(0..<count); return }
    let units = (count + align - 1) / align
    withoutActuallyEscaping(body) { body in
        let b = UnsafeSendable(body)
        DispatchQueue.concurrentPerform(iterations: n) { i in
            let lo = min(count, units * i / n * align)
            let hi = i == n - 1 ? count : min(count, units * (i + 1) / n * align)
            if lo < hi { b.value(lo..<hi) }
        }
    }
}

@usableFromInline struct UnsafeSendable<T>: @unchecked Sendable {
    @usableFromInline let value: T
    @inlinable init(_ v: T) { value = v }
}
