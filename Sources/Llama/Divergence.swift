import Foundation

/// How far apart two logit vectors are as distributions: the one KL divergence of the project
/// (golden tests, engine tests, the duel's divergence readout and the scenario bench use it).
public enum Divergence {
    /// log softmax(x), in double precision.
    public static func logSoftmax(_ x: [Float]) -> [Double] {
        let m = Double(x.max()!)
        var s = 0.0
        for v in x { s += exp(Double(v) - m) }
        let lse = m + log(s)
        return x.map { Double($0) - lse }
    }

    /// KL(softmax(p) ‖ softmax(q)) in nats; NaN when the vectors differ in size or are empty.
    public static func kl(_ p: [Float], _ q: [Float]) -> Double {
        guard p.count == q.count, !p.isEmpty else { return .nan }
        let lp = logSoftmax(p), lq = logSoftmax(q)
        var kl = 0.0
        for i in 0..<lp.count { kl += exp(lp[i]) * (lp[i] - lq[i]) }
        return kl.isNaN ? .nan : max(0, kl)
    }
}
