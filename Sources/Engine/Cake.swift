import Dispatch
import Foundation
import KVCache
import Llama

// Cake (Jin et al., "Compute Or Load KV Cache? Why Not Both?", arXiv 2410.03065): for a stored
// prefix in a slow tier, the compute side prefills from the front while an I/O thread loads the
// stored chunks from the back; they stop where they meet. The meeting point is found at run time.

/// Where Cake's two sides stand, at token granularity, over a region of the prompt.
///
/// The compute side claims steps from the front; the I/O side, after fetching a stored chunk
/// that ends where the loaded part begins, keeps the part of it the compute side has not claimed.
/// Neither side ever takes a token the other has: they meet exactly.
///
/// On a link so fast that the I/O side loads many times faster than the compute side computes,
/// computing can win only a sliver of the region, and on a small machine it takes CPU the loading
/// needs (the client's reads, and a Redis server on the same host). Then the compute side steps
/// aside: it stops its step and decodes the chunks as they arrive (and takes up again whatever the
/// I/O side leaves, if it stops early). The decision, like the meeting point, is made at run time.
public final class CakeMeeting: @unchecked Sendable {
    public let region: Range<Int>
    /// The compute side steps aside when the I/O side has loaded more than this many times faster
    /// than it computes: computing could then take at most 1/(ratio + 1) of the region.
    public static let yieldRatio = 20.0
    private let lock = NSLock()
    private var yielded = false
    private var ioDone = false
    /// The compute side has finished `region.lowerBound..<committed` and is working up to `front`.
    private var committed: Int
    private var front: Int
    private var loadedFrom: Int
    private var abort = false

    public init(region: Range<Int>) {
        self.region = region
        committed = region.lowerBound
        front = region.lowerBound
        loadedFrom = region.upperBound
    }

    /// Tokens the compute side has computed (`region.lowerBound..<computedEnd`) and those the I/O
    /// side holds (`loadedStart..<region.upperBound`). After the meeting they tile the region.
    public var computedEnd: Int { lock.lock(); defer { lock.unlock() }; return committed }
    public var loadedStart: Int { lock.lock(); defer { lock.unlock() }; return loadedFrom }

    /// Whether the compute side stepped aside for the I/O side.
    public var computeYielded: Bool { lock.lock(); defer { lock.unlock() }; return yielded }
    /// The compute side has stepped aside and the I/O side is still at work: claim nothing yet.
    public var standingAside: Bool { lock.lock(); defer { lock.unlock() }; return yielded && !ioDone }

    /// The compute side's next step of at most `step` tokens; nil once it has met the loaded part.
    public func claimCompute(step: Int) -> Range<Int>? {
        lock.lock(); defer { lock.unlock() }
        guard front < loadedFrom else { return nil }
        let r = front..<min(front + max(1, step), loadedFrom)
        front = r.upperBound
        return r
    }

    /// Whether the compute side should go on with its step (false: the I/O side took its rows).
    public func continueStep() -> Bool {
        lock.lock(); defer { lock.unlock() }
        return !abort
    }

    /// The compute side finished its step (true), or stopped it because the I/O side took part
    /// of it (false: the part below the loaded rows is claimed again by the next step).
    @discardableResult
    public func finishStep(_ r: Range<Int>) -> Bool {
        lock.lock(); defer { lock.unlock() }
        if abort {
            abort = false
            return false
        }
        committed = r.upperBound
        return true
    }

    /// Called by the compute side between layers: `elapsed` seconds since Cake began, `computeRate`
    /// its own speed in this step (tokens/s). Steps aside (true: stop the step) when the I/O side
    /// has so far loaded more than `yieldRatio` times faster.
    public func shouldYield(elapsed: Double, computeRate: Double) -> Bool {
        lock.lock(); defer { lock.unlock() }
        if yielded { return !ioDone }   // once the I/O side has stopped, compute takes up the rest
        let loaded = region.upperBound - loadedFrom
        guard loaded > 0, elapsed > 0, computeRate > 0, !ioDone,
              Double(loaded) / elapsed > Self.yieldRatio * computeRate else { return false }
        yielded = true
        abort = true
        front = committed
        return true
    }

    /// The I/O side has stopped (met the compute side, found a chunk missing, or fetched all).
    public func ioFinished() {
        lock.lock(); defer { lock.unlock() }
        ioDone = true
    }

    /// Whether fetching the stored chunk covering `chunk` can still help: it ends where the loaded
    /// part begins and the compute side has not finished it.
    public func wants(_ chunk: Range<Int>) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return chunk.upperBound == loadedFrom && committed < chunk.upperBound
    }

    /// The I/O side has fetched the chunk covering `chunk`: returns the part it keeps (what the
    /// compute side has not finished) and claims it; nil when the compute side has finished all
    /// of it meanwhile. A compute step in progress over those rows is stopped; the rows of that
    /// step below the chunk go back to the compute side.
    public func offerLoaded(_ chunk: Range<Int>) -> Range<Int>? {
        lock.lock(); defer { lock.unlock() }
        guard chunk.upperBound == loadedFrom else { return nil }
        let from = max(chunk.lowerBound, committed)
        guard from < chunk.upperBound else { return nil }
        if from < front {
            abort = true
            front = committed
        }
        loadedFrom = from
        return from..<chunk.upperBound
    }
}

extension ReuseEngine {
    /// What Cake's two sides did in one turn.
    struct CakeOutcome {
        var computed: Range<Int>
        /// The compute side stepped aside for a much faster I/O side.
        var yielded: Bool
        var loaded: Range<Int>
        /// Loaded tokens per tier (index into `store.tiers`).
        var loadedPerTier: [Int: Int] = [:]
        /// The I/O side found this chunk start damaged or gone (the compute side took it).
        var rewriteFrom = Int.max
        var tier: String
        /// Compute side, from the start until it met the loaded part (critical path).
        var computeSeconds = 0.0
        /// Decoding what the I/O side fetched into the cache, after the meeting (critical path).
        var waitSeconds = 0.0
        /// I/O time hidden behind compute.
        var overlappedSeconds = 0.0
    }

    /// First compute step, in tokens; each later step doubles, up to `maxComputeStep`. A small
    /// first step lets a fast tier win the whole prefix after little compute. Steps stay small
    /// enough that a step stopped by arriving rows loses little work (here a 128-token batch
    /// prefills as fast per token as a 512-token one).
    static let firstComputeStep = 16
    static let maxComputeStep = 128

    /// Runs Cake over `chunks` (consecutive stored prefix chunks, already in the plan's order):
    /// claims their slots, computes from the front on this thread while an I/O thread fetches
    /// from the back, then decodes what was fetched into the slots the I/O side kept.
    func cake(_ chunks: [ReusePlan.Chunk], match: PrefixMatch, prompt: [Int32], work: KVState,
              onEvent: (EngineEvent) -> Void) -> CakeOutcome {
        let region = chunks.first!.tokens.lowerBound..<chunks.last!.tokens.upperBound
        // Slots equal prompt positions; the region's slots start where the cache ends now.
        precondition(work.count == region.lowerBound)
        work.append(tokens: Array(prompt[region]), positions: region.map { Int32($0) })
        let meeting = CakeMeeting(region: region)
        let store = self.store
        let keys = chunks.map { match.keys[$0.key] }

        // ---- I/O side: fetch only (no decoding), from the back ----
        final class Fetched: @unchecked Sendable {
            let lock = NSCondition()
            var entries: [(entry: EncodedKV, chunk: ReusePlan.Chunk, keep: Range<Int>, tier: Int)] = []
            var failedAt: Int?
            var finishedAt: UInt64 = 0
        }
        let fetched = Fetched()
        let t0 = EngineCore.now()
        Thread.detachNewThread {
            defer {
                meeting.ioFinished()
                fetched.lock.lock(); fetched.finishedAt = EngineCore.now(); fetched.lock.broadcast(); fetched.lock.unlock()
            }
            // From the back; a remote tier keeps the next GETs in flight while one is checked.
            let order = Array(chunks.indices.reversed())
            store.stream(order.map { keys[$0] }) { n, got in
                let j = order[n], c = chunks[j]
                guard meeting.wants(c.tokens) else { return false }
                guard let (entry, tier) = got, entry.tokenCount == keys[j].tokenCount,
                      zip(entry.positions[c.skip..<(c.skip + c.tokens.count)], c.tokens).allSatisfy({ $0 == Int32($1) }) else {
                    fetched.lock.lock(); fetched.failedAt = j; fetched.lock.unlock()
                    return false
                }
                guard let keep = meeting.offerLoaded(c.tokens) else { return false }
                fetched.lock.lock(); fetched.entries.append((entry, c, keep, tier)); fetched.lock.broadcast(); fetched.lock.unlock()
                return true
            }
        }

        // Decoding fetched chunks into the cache: the rows an entry keeps are the I/O side's for good.
        var written = 0
        func write(_ e: (entry: EncodedKV, chunk: ReusePlan.Chunk, keep: Range<Int>, tier: Int), parallel: Bool = true) {
            let rows = (e.chunk.skip + e.keep.lowerBound - e.chunk.tokens.lowerBound)..<(e.chunk.skip + e.keep.upperBound - e.chunk.tokens.lowerBound)
            _ = Self.write(e.entry, rows: rows, at: e.keep, positions: nil, into: work, ctx: core.ctx, parallel: parallel)
        }

        // ---- compute side: from the front, until it meets the loaded part ----
        var step = Self.firstComputeStep
        let layers = Double(core.model.config.layers)
        var asideFrom: UInt64?
        let localReads = chunks.allSatisfy { store.tiers[$0.tier].isLocal }
        while true {
            // Stepped aside for a much faster link: decode what has arrived while the rest arrives.
            while meeting.standingAside {
                if asideFrom == nil { asideFrom = EngineCore.now() }
                fetched.lock.lock()
                while fetched.entries.count == written && fetched.finishedAt == 0 { fetched.lock.wait() }
                let next = written < fetched.entries.count ? fetched.entries[written] : nil
                let backlog = fetched.entries.count - written
                fetched.lock.unlock()
                // One entry at a time. On one thread while a remote tier's I/O side still reads:
                // the client and a server on this host need the other core (two threads whenever
                // decoding fell behind measured slower there). A local tier's reads are copies
                // from the page cache (or sleeps, on a dialed link), so once decoding falls
                // behind it takes both cores. When the I/O side is done this loop ends, and what
                // is left is decoded on all threads.
                if let e = next {
                    write(e, parallel: localReads && backlog > 1)
                    written += 1
                }
            }
            guard let r = meeting.claimCompute(step: step) else { break }
            let ts = EngineCore.now()
            core.ctx.forward(tokens: Array(prompt[r]), positions: r.map { Int32($0) }, cache: work,
                             slots: Array(r), logits: .none, layerDone: { l in
                guard meeting.continueStep() else { return false }
                let now = EngineCore.now()
                let rate = Double(r.count) * Double(l + 1) / layers / max(EngineCore.seconds(ts, now), 1e-9)
                return !meeting.shouldYield(elapsed: EngineCore.seconds(t0, now), computeRate: rate)
            })
            guard meeting.finishStep(r) else { continue }
            onEvent(.prefillProgress(done: r.upperBound, total: prompt.count))
            step = min(step * 2, Self.maxComputeStep)
        }
        let t1 = EngineCore.now()
        // Once the compute side has stopped, the I/O side can keep nothing more: its list is final.
        fetched.lock.lock()
        let entries = fetched.entries, failedAt = fetched.failedAt, finished = fetched.finishedAt
        fetched.lock.unlock()

        precondition(meeting.computedEnd == meeting.loadedStart, "Cake: the two sides must meet exactly")
        var out = CakeOutcome(computed: region.lowerBound..<meeting.computedEnd, yielded: meeting.computeYielded,
                              loaded: meeting.loadedStart..<region.upperBound,
                              tier: store.tiers[chunks.last!.tier].name)
        for e in entries[written...] { write(e) }
        for e in entries { out.loadedPerTier[e.tier, default: 0] += e.keep.count }
        if let t = entries.map(\.tier).max() { out.tier = store.tiers[t].name }
        if let f = failedAt { out.rewriteFrom = keys[f].tokenRange.lowerBound }
        let t2 = EngineCore.now()
        // Computing ran from the start until the meeting, or until it stepped aside; from then on
        // the turn waited on loading (and decoding it).
        let computeEnd = asideFrom ?? t1
        out.computeSeconds = EngineCore.seconds(t0, computeEnd)
        out.waitSeconds = EngineCore.seconds(computeEnd, t2)
        let ioEnd = finished != 0 && finished < computeEnd ? finished : computeEnd
        out.overlappedSeconds = EngineCore.seconds(t0, ioEnd)
        return out
    }
}
