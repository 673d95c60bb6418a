import CKernels
import Foundation

/// The least time a decoded token's attention over a long cache can take on this CPU, measured:
/// - its arithmetic, as kv_attend does it: every 8-lane slice of every K and V row converted from
///   f16 once, then one fused multiply-add per query head of its group (the scores, then the
///   values); at the rate this CPU runs that mix (`kv_attend_mix_burst`) on every thread at once;
/// - its reading: every layer's K and V, f16, at the rate all threads together stream memory.
/// The floor is the larger of the two. The softmax and the sums across lanes are left out, and
/// reading and arithmetic are taken to overlap perfectly, so real attention is slower.
public struct AttentionFloor: Sendable {
    /// Row slices (8 lanes, converted, then one FMA per query head of a group) per second, all
    /// threads together, for this model's group size.
    public let slicesPerSecond: Double
    /// Bytes per second read from memory (past every cache), all threads together.
    public let bytesPerSecond: Double
    public let threads: Int

    public init(slicesPerSecond: Double, bytesPerSecond: Double, threads: Int) {
        self.slicesPerSecond = slicesPerSecond
        self.bytesPerSecond = bytesPerSecond
        self.threads = threads
    }

    /// Measures both rates on `context`'s threads, each thread working at the same time: about
    /// 0.1 s of the arithmetic, then a pass over its own 64 MiB (512 MiB shared out on more than 8
    /// threads: past the caches of most CPUs). The best of `repeats`.
    public static func measure(on context: LlamaContext, repeats: Int = 3) -> AttentionFloor {
        let threads = context.threads, group = Int32(context.config.groupSize)
        let iters = 12_000_000 / max(1, Int(group))   // rounds of 4 slices
        let words = min(8 << 20, (64 << 20) / threads)   // 64-bit words a thread
        let buffer = UnsafeMutablePointer<UInt64>.allocate(capacity: threads * words)
        defer { buffer.deallocate() }
        let sink = UnsafeMutablePointer<UInt64>.allocate(capacity: threads)
        defer { sink.deallocate() }
        let bp = SendablePointer(buffer), sp = SendablePointer(sink)
        context.parallelFor(threads) { i in   // each thread's pages, written by it
            for w in 0..<words { bp.p[i * words + w] = UInt64(truncatingIfNeeded: w &* 0x9E37_79B9) }
        }
        func best(_ work: (Int) -> Void) -> Double {   // the shortest wall time of `work` on every thread at once
            var shortest = Double.infinity
            for _ in 0..<max(1, repeats) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                context.parallelFor(threads, work)
                shortest = min(shortest, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            return shortest
        }
        let mixSeconds = best { i in sp.p[i] = UInt64(kv_attend_mix_burst(iters, group).bitPattern) }
        let readSeconds = best { i in sp.p[i] = kv_stream_sum(bp.p + i * words, words) }
        return AttentionFloor(slicesPerSecond: Double(threads * iters * 4) / mixSeconds,
                              bytesPerSecond: Double(threads * words * 8) / readSeconds, threads: threads)
    }

    /// 8-lane row slices of one decoded token's attention over `keys` keys: every layer's K and V
    /// rows, each K/V head's once (each slice then takes one FMA per query head of the group).
    public static func slices(config c: LlamaConfig, keys: Double) -> Double {
        2 * Double(c.layers * c.kvHeads * c.headDim / 8) * keys
    }

    /// Bytes of K and V one decoded token's attention reads over `keys` keys (f16, every layer).
    public static func bytes(config c: LlamaConfig, keys: Double) -> Double {
        Double(c.kvBytesPerTokenF16) * keys
    }

    /// Seconds of one decoded token's attention arithmetic over `keys` keys at the measured rate.
    public func arithmeticSeconds(config: LlamaConfig, keys: Double) -> Double {
        Self.slices(config: config, keys: keys) / slicesPerSecond
    }

    /// Seconds to read one decoded token's K and V over `keys` keys at the measured rate.
    public func readSeconds(config: LlamaConfig, keys: Double) -> Double {
        Self.bytes(config: config, keys: keys) / bytesPerSecond
    }

    /// The floor: the larger of the arithmetic and the reading.
    public func seconds(config: LlamaConfig, keys: Double) -> Double {
        max(arithmeticSeconds(config: config, keys: keys), readSeconds(config: config, keys: keys))
    }

    /// An estimate of the highest decode rate over `keys` keys: a token's other work as long as
    /// measured at short context (`shortRate` tokens a second over `shortKeys` keys on average,
    /// less the floor of that short attention), plus the floor over `keys` keys.
    public func decodeBound(config: LlamaConfig, keys: Double, shortRate: Double, shortKeys: Double) -> Double {
        1 / (1 / shortRate - seconds(config: config, keys: shortKeys) + seconds(config: config, keys: keys))
    }
}
