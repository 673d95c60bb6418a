import Engine
import Foundation
import KVCache
import Llama
import XCTest

/// The plan (`ReusePlan.make`) at toy sizes with exact ranges, Cake's meeting protocol step by
/// step, the link throttle's arithmetic, and the three load strategies on the real model.
final class ReusePlanTests: XCTestCase {
    private func seg(_ role: PromptSegment.Role, _ n: Int, from start: Int32 = 0) -> PromptSegment {
        PromptSegment(role: role, tokens: (0..<n).map { start + Int32($0) })
    }

    private func plan(_ segments: [PromptSegment], live: [Int32] = [], liveExact: Int? = nil,
                      chain: [(Range<Int>, Int)] = [], stored: [Int: Int] = [:],
                      strategy: LoadStrategy = .cake) -> ReusePlan {
        ReusePlan.make(.init(segments: segments, liveTokens: live, liveExact: liveExact ?? live.count,
                             storedChain: chain.map { (tokens: $0.0, tier: $0.1) }, segmentTier: { stored[$0] },
                             minSegmentTokens: 16, strategy: strategy))
    }

    func testColdPromptIsComputedWhole() {
        let p = plan([seg(.system, 10), seg(.question, 30, from: 100)])
        XCTAssertEqual(p.live, 0)
        XCTAssertEqual(p.steps, [.compute(0..<40)])
    }

    func testLiveContextThenComputeTheNewTokens() {
        let prompt = [seg(.system, 10), seg(.history, 50, from: 100), seg(.question, 8, from: 500)]
        let live = prompt[0].tokens + prompt[1].tokens + [7, 7, 7]      // the previous answer's tail differs
        let p = plan(prompt, live: live)
        XCTAssertEqual(p.live, 60)
        XCTAssertEqual(p.liveExact, 60)
        XCTAssertEqual(p.steps, [.compute(60..<68)])
    }

    func testStoredChainExtendsTheExactLivePartAndTheLastTokenIsComputed() {
        // Live holds 0..<100 but only 0..<40 exactly (a blended turn); RAM holds chunks 0..<64, 64..<128.
        let prompt = [seg(.question, 128)]
        let live = Array(prompt[0].tokens[0..<100])
        let p = plan(prompt, live: live, liveExact: 40, chain: [(0..<64, 0), (64..<128, 0)])
        XCTAssertEqual(p.live, 40)
        XCTAssertEqual(p.steps, [.load(.init(key: 0, tokens: 40..<64, skip: 40, tier: 0)),
                                 .load(.init(key: 1, tokens: 64..<127, skip: 0, tier: 0)),
                                 .compute(127..<128)])
        XCTAssertEqual(p.prefixEnd, 127)
    }

    func testSlowChunksFollowTheStrategy() {
        let prompt = [seg(.question, 300)]
        let chain: [(Range<Int>, Int)] = [(0..<100, 0), (100..<200, 2), (200..<300, 1)]
        XCTAssertEqual(plan(prompt, chain: chain, strategy: .load).steps,
                       [.load(.init(key: 0, tokens: 0..<100, skip: 0, tier: 0)),
                        .load(.init(key: 1, tokens: 100..<200, skip: 0, tier: 2)),
                        .load(.init(key: 2, tokens: 200..<299, skip: 0, tier: 1)),
                        .compute(299..<300)])
        XCTAssertEqual(plan(prompt, chain: chain, strategy: .compute).steps,
                       [.load(.init(key: 0, tokens: 0..<100, skip: 0, tier: 0)), .compute(100..<300)])
        XCTAssertEqual(plan(prompt, chain: chain, strategy: .cake).steps,
                       [.load(.init(key: 0, tokens: 0..<100, skip: 0, tier: 0)),
                        .cake([.init(key: 1, tokens: 100..<200, skip: 0, tier: 2),
                               .init(key: 2, tokens: 200..<299, skip: 0, tier: 1)]),
                        .compute(299..<300)])
    }

    func testPrefixEndingInsideAStoredDocumentBacksOffToItsStart() {
        // Chain covers 0..<64; the document spans 40..<90 and is stored as a segment (in RAM).
        let prompt = [seg(.system, 40), seg(.document(id: "a"), 50, from: 200), seg(.question, 20, from: 600)]
        let p = plan(prompt, chain: [(0..<64, 0)], stored: [1: 0])
        XCTAssertEqual(p.steps, [.load(.init(key: 0, tokens: 0..<40, skip: 0, tier: 0)),
                                 .blend(.init(segment: 1, tokens: 40..<90, tier: 0)),
                                 .compute(90..<110)])
    }

    func testShortOrFinalSegmentsAreComputedNotBlended() {
        // A stored 10-token document is below minSegmentTokens; the question is never a segment.
        let prompt = [seg(.system, 5), seg(.document(id: "s"), 10, from: 50), seg(.document(id: "b"), 30, from: 100), seg(.question, 20, from: 300)]
        let p = plan(prompt, stored: [1: 0, 2: 1, 3: 0])
        XCTAssertEqual(p.steps, [.compute(0..<15), .blend(.init(segment: 2, tokens: 15..<45, tier: 1)), .compute(45..<65)])
        // The steps tile the prompt after the live part.
        XCTAssertEqual(p.steps.reduce(0) { $0 + $1.tokens.count }, 65)
    }
}

final class CakeMeetingTests: XCTestCase {
    func testComputeAloneTakesGrowingStepsToTheEnd() {
        let m = CakeMeeting(region: 0..<100)
        var steps: [Range<Int>] = []
        var step = 16
        while let r = m.claimCompute(step: step) { XCTAssertTrue(m.finishStep(r)); steps.append(r); step *= 2 }
        XCTAssertEqual(steps, [0..<16, 16..<48, 48..<100])
        XCTAssertEqual(m.computedEnd, 100)
        XCTAssertEqual(m.loadedStart, 100)
    }

    func testTheIOSideTakesWhatComputeHasNotFinishedAndStopsItsStep() {
        let m = CakeMeeting(region: 0..<1024)
        XCTAssertEqual(m.claimCompute(step: 16), 0..<16)
        XCTAssertTrue(m.finishStep(0..<16))
        XCTAssertEqual(m.claimCompute(step: 32), 16..<48)                       // in progress
        XCTAssertTrue(m.wants(768..<1024))
        XCTAssertEqual(m.offerLoaded(768..<1024), 768..<1024)
        XCTAssertEqual(m.offerLoaded(256..<512), nil, "not adjacent to the loaded part")
        XCTAssertEqual(m.offerLoaded(512..<768), 512..<768)
        XCTAssertEqual(m.offerLoaded(256..<512), 256..<512)
        XCTAssertEqual(m.offerLoaded(0..<256), 16..<256, "keeps what compute has not finished")
        XCTAssertFalse(m.continueStep(), "the step over 16..<48 is stopped")
        XCTAssertFalse(m.finishStep(16..<48))
        XCTAssertNil(m.claimCompute(step: 64), "met")
        XCTAssertEqual(m.computedEnd, 16)
        XCTAssertEqual(m.loadedStart, 16)
        XCTAssertFalse(m.wants(0..<256))
    }

    func testAStoppedStepGivesItsRowsBelowTheChunkBackToCompute() {
        // Compute finished 0..<496 and works on 496..<768; the I/O side brings 512..<768.
        let m = CakeMeeting(region: 0..<1024)
        for r in [0..<16, 16..<48, 48..<112, 112..<240, 240..<496] { XCTAssertEqual(m.claimCompute(step: r.count), r); XCTAssertTrue(m.finishStep(r)) }
        XCTAssertEqual(m.offerLoaded(768..<1024), 768..<1024)
        XCTAssertEqual(m.claimCompute(step: 512), 496..<768)
        XCTAssertEqual(m.offerLoaded(512..<768), 512..<768)
        XCTAssertFalse(m.finishStep(496..<768))
        XCTAssertEqual(m.claimCompute(step: 512), 496..<512, "the gap below the loaded chunk")
        XCTAssertTrue(m.finishStep(496..<512))
        XCTAssertNil(m.claimCompute(step: 512))
        XCTAssertEqual(m.computedEnd, 512)
        XCTAssertEqual(m.loadedStart, 512)
        XCTAssertNil(m.offerLoaded(256..<512), "compute finished it")
    }

    func testTheComputeSideStepsAsideForAMuchFasterLink() {
        let m = CakeMeeting(region: 0..<1024)
        XCTAssertEqual(m.claimCompute(step: 16), 0..<16)
        XCTAssertFalse(m.shouldYield(elapsed: 0.01, computeRate: 100), "nothing loaded yet")
        XCTAssertEqual(m.offerLoaded(768..<1024), 768..<1024)                 // 256 tokens in 10 ms: 25,600 tok/s
        XCTAssertFalse(m.shouldYield(elapsed: 0.01, computeRate: 2000), "12.8x faster: both sides go on")
        XCTAssertFalse(m.standingAside)
        XCTAssertTrue(m.continueStep())
        XCTAssertTrue(m.shouldYield(elapsed: 0.01, computeRate: 1000), "25.6x faster: compute steps aside")
        XCTAssertFalse(m.continueStep(), "its step is stopped")
        XCTAssertFalse(m.finishStep(0..<16))
        XCTAssertTrue(m.standingAside)
        XCTAssertTrue(m.computeYielded)
        for c in [512..<768, 256..<512, 0..<256] { XCTAssertEqual(m.offerLoaded(c), c, "the I/O side takes all of \(c)") }
        m.ioFinished()
        XCTAssertFalse(m.standingAside)
        XCTAssertNil(m.claimCompute(step: 16), "met at the start: all loaded")
        XCTAssertEqual(m.computedEnd, 0)
        XCTAssertEqual(m.loadedStart, 0)
    }

    func testAfterSteppingAsideComputeTakesUpWhatTheIOSideLeaves() {
        // The I/O side steps in fast, then finds the next chunk gone and stops.
        let m = CakeMeeting(region: 0..<1024)
        XCTAssertEqual(m.claimCompute(step: 16), 0..<16)
        XCTAssertTrue(m.finishStep(0..<16))
        XCTAssertEqual(m.claimCompute(step: 32), 16..<48)
        XCTAssertEqual(m.offerLoaded(768..<1024), 768..<1024)
        XCTAssertTrue(m.shouldYield(elapsed: 0.001, computeRate: 1000))
        XCTAssertFalse(m.finishStep(16..<48))
        XCTAssertTrue(m.standingAside)
        m.ioFinished()
        XCTAssertFalse(m.shouldYield(elapsed: 0.002, computeRate: 1000), "nothing to stand aside for once the I/O side has stopped")
        XCTAssertEqual(m.claimCompute(step: 512), 16..<528, "compute resumes from what it had finished")
        XCTAssertTrue(m.finishStep(16..<528))
        XCTAssertEqual(m.claimCompute(step: 512), 528..<768)
        XCTAssertTrue(m.finishStep(528..<768))
        XCTAssertNil(m.claimCompute(step: 512))
        XCTAssertEqual(m.computedEnd, 768)
        XCTAssertEqual(m.loadedStart, 768)
    }

    func testLinkArithmetic() {
        // 1 MB at 10 MB/s from an idle link with no burst: 0.1 s; plus 2 round trips of 5 ms.
        XCTAssertEqual(Throttle.finish(now: 10, busyUntil: 0, bytes: 1_000_000, roundTrips: 2, bytesPerSecond: 1e7,
                                       latency: 0.005, burstBytes: 0), 10.11, accuracy: 1e-9)
        // A busy link queues the transfer behind the one in progress.
        XCTAssertEqual(Throttle.finish(now: 10, busyUntil: 10.5, bytes: 1_000_000, roundTrips: 0, bytesPerSecond: 1e7,
                                       latency: 0, burstBytes: 0), 10.6, accuracy: 1e-9)
        // An idle link has at most `burstBytes` of credit: 0.5 MB of credit at 10 MB/s = 0.05 s.
        XCTAssertEqual(Throttle.finish(now: 10, busyUntil: 0, bytes: 1_000_000, roundTrips: 0, bytesPerSecond: 1e7,
                                       latency: 0, burstBytes: 500_000), 10.05, accuracy: 1e-9)
        // No bandwidth limit: only latency.
        XCTAssertEqual(Throttle.finish(now: 3, busyUntil: 0, bytes: 1 << 30, roundTrips: 1, bytesPerSecond: nil,
                                       latency: 0.02, burstBytes: 0), 3.02, accuracy: 1e-9)
        let t = Throttle(bytesPerSecond: 2e6, latency: 0)
        let slept = t.pass(bytes: 200_000 + 65_536)
        XCTAssertEqual(slept, 0.1, accuracy: 0.02, "200 kB past the burst at 2 MB/s")
    }
}

/// The three load strategies on the default model, with the prefix stored on disk.
final class LoadStrategyTests: XCTestCase {
    private var dirs: [String] = []
    override func tearDown() { for d in dirs { try? FileManager.default.removeItem(atPath: d) } }

    private func engine(_ dir: String, _ strategy: LoadStrategy, link: Throttle? = nil) throws -> ReuseEngine {
        let (m, t) = try Fixture.realModel()
        var o = ReuseEngine.Options()
        o.encoding = .f32            // stored KV is exact: every strategy must give the same bits
        o.diskDirectory = dir
        o.loadStrategy = strategy
        o.diskThrottle = link
        return try ReuseEngine(model: m, tokenizer: t, threads: 2, options: o)
    }

    func testEveryStrategyGivesTheBaselinesBitsAndItsPartsAddUp() throws {
        let (m, t) = try Fixture.realModel()
        let dir = Fixture.tempDir("strategies")
        dirs.append(dir)
        let text = String(repeating: "The harbour of Veltrona handles grain, timber and copper ore for three provinces. ", count: 40)
        let tokens = t.encode(text)
        XCTAssertGreaterThan(tokens.count, 600)
        let request = EngineRequest(segments: [PromptSegment(role: .question, tokens: tokens)], maxTokens: 4)
        let base = try runRequest(BaselineEngine(model: m, tokenizer: t, threads: 2), request).result
        _ = try runRequest(try engine(dir, .compute), request)        // writes the chunks to disk
        let n = tokens.count
        for (strategy, link) in [(LoadStrategy.compute, nil), (.load, nil), (.cake, nil), (.cake, Throttle(bytesPerSecond: 8e6))] as [(LoadStrategy, Throttle?)] {
            let label = "\(strategy)\(link == nil ? "" : " over 8 MB/s")"
            let r = try runRequest(try engine(dir, strategy, link: link), request).result
            XCTAssertEqual(r.tokens, base.tokens, "\(label): greedy tokens")
            XCTAssertEqual(maxAbsDiff(r.firstTokenLogits ?? [], base.firstTokenLogits ?? []), 0, "\(label): first-token logits bit for bit")
            let s = r.stats
            XCTAssertEqual(s.reusedExact + s.reusedBlended + s.recomputed + s.computedFresh, n, "\(label): \(split(s))")
            XCTAssertEqual(s.breakdown.total, s.ttftSeconds, accuracy: 1e-9, "\(label): the parts add up to the TTFT")
            XCTAssertLessThanOrEqual(s.breakdown.measured, s.ttftSeconds + 1e-6, "\(label): no part counted twice")
            switch strategy {
            case .compute:
                XCTAssertEqual(s.computedFresh, n, label)
                XCTAssertNil(s.cake)
            case .load:
                XCTAssertEqual(s.reusedExact, n - 1, label)
                XCTAssertGreaterThan(s.breakdown.loadTotal, 0, label)
            case .cake:
                let c = try XCTUnwrap(s.cake, label)
                XCTAssertEqual(c.computed.lowerBound, 0, label)
                XCTAssertEqual(c.computed.upperBound, c.loaded.lowerBound, "\(label): the sides meet exactly")
                XCTAssertEqual(c.loaded.upperBound, n - 1, label)
                XCTAssertEqual(s.reusedExact, c.loaded.count, label)
                XCTAssertEqual(s[tier: "disk"]?.hitTokens, c.loaded.count, label)
                XCTAssertEqual(c.tier, "disk", label)
                if link == nil {
                    // An unthrottled local disk delivers ~25 MB of f32 KV long before 600 tokens are computed.
                    XCTAssertGreaterThan(c.loaded.count, n / 2, "\(label): the I/O side took most of it")
                }
            }
        }
    }
}
