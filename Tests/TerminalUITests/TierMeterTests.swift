import XCTest
import DuelCore
import Engine
import TerminalUI

/// Store meters per tier: bytes, hit tokens by tier, the remote state, and rejections/write
/// errors (issue 10 item 4) once counted.
final class TierMeterTests: XCTestCase {
    func remoteState(_ state: String, rejected: Int = 0, writeErrors: Int = 0) -> AppState {
        var s = Fixtures.loaded(cols: 160, rows: 45)
        var info = s.info
        info.remote = "redis://alice:***@10.0.0.5:6391"
        s.info = info
        reduce(&s, .questionSubmitted("Where was Veltrona founded?"))
        var st = Fixtures.stats(prompt: 2120, exact: 2119, ttft: 0.05, live: 3 << 20, store: 24 << 20)
        var ram = TierFigures(name: "ram"); ram.storeBytes = 24 << 20
        var disk = TierFigures(name: "disk"); disk.storeBytes = 0; disk.writeErrors = writeErrors
        var remote = TierFigures(name: "remote")
        remote.hitTokens = 2119
        remote.bytesRead = 24_930_000
        remote.roundTrips = 1
        remote.readSeconds = 0.021
        remote.rejectedEntries = rejected
        remote.state = state
        st.tiers = [ram, disk, remote]
        reduce(&s, .answerFinished(pane: .cached, stats: st, cumulative: st))
        var tiers = [TierStats(name: "ram"), TierStats(name: "disk"), TierStats(name: "remote")]
        tiers[0].bytes = 24 << 20
        tiers[1].writeErrors = writeErrors
        tiers[2].bytes = 30 << 20
        tiers[2].rejectedEntries = rejected
        tiers[2].state = state
        reduce(&s, .storeSampled(tiers: tiers))
        return s
    }

    func testRemoteTierShownWithHitsStateAndMaskedURL() {
        let g = render(remoteState("ok"))
        XCTAssertTrue(g.row(0).contains("remote redis://alice:***@10.0.0.5:6391"), g.row(0))
        XCTAssertTrue(g.text.contains("store 24 MiB RAM + 0 B disk + 30 MiB remote"), "store bytes per tier\n\(g.text)")
        XCTAssertTrue(g.text.contains("hit tokens ram 0 · disk 0 · remote 2119"), g.text)
        XCTAssertTrue(g.text.contains("remote: ok"), g.text)
        XCTAssertTrue(g.text.contains("1 round trip"), g.text)
        XCTAssertFalse(g.text.contains("rejected"), "nothing to warn about")
    }

    func testUnreachableAndRejectionsAreShown() {
        var s = remoteState("ok", rejected: 3, writeErrors: 1)
        var tiers = s.storeTiers
        tiers[2].state = "unreachable"
        reduce(&s, .storeSampled(tiers: tiers))
        let g = render(s)
        XCTAssertTrue(g.text.contains("remote: unreachable"), "the state changes without a new answer\n\(g.text)")
        XCTAssertTrue(g.text.contains("3 rejected"), g.text)
        XCTAssertTrue(g.text.contains("1 write error"), g.text)
    }

    func testLocalOnlyMeterUnchanged() {
        // Without a remote tier and with one source of hits, no extra meter lines.
        var s = Fixtures.loaded(cols: 160, rows: 45)
        reduce(&s, .questionSubmitted("q"))
        reduce(&s, .answerFinished(pane: .cached, stats: Fixtures.stats(prompt: 100, exact: 90, ttft: 0.1, store: 1 << 20),
                                   cumulative: RequestStats()))
        let g = render(s)
        XCTAssertTrue(g.text.contains("RAM + 0 B disk"), g.text)
        XCTAssertFalse(g.text.contains("remote"), g.text)
        XCTAssertFalse(g.text.contains("hit tokens"), g.text)
    }
}
