import Foundation

/// Turns logits into a token: greedy, or temperature with top-k and top-p, from a seeded RNG.
public struct Sampler {
    public var temperature: Float
    public var topK: Int
    public var topP: Float
    private var rng: SplitMix64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.rng = SplitMix64(seed: seed &+ 0x9E37_79B9_7F4A_7C15)
    }

    public static func argmax(_ logits: [Float]) -> Int32 {
        var best = 0
        var bv = -Float.infinity
        for i in 0..<logits.count where logits[i] > bv { bv = logits[i]; best = i }
        return Int32(best)
    }

    private mutating func nextUniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }

    public mutating func sample(_ logits: [Float]) -> Int32 {
        guard temperature > 0 else { return Self.argmax(logits) }
        var idx = Array(0..<logits.count)
        if topK > 0 && topK < idx.count {
            idx.sort { logits[$0] > logits[$1] }
            idx.removeSubrange(topK...)
        } else {
            idx.sort { logits[$0] > logits[$1] }
        }
        let mx = logits[idx[0]]
        var probs = idx.map { Double(expf((logits[$0] - mx) / temperature)) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }
        if topP < 1 {
            var cum = 0.0, cut = probs.count
            for (i, p) in probs.enumerated() { cum += p; if cum >= Double(topP) { cut = i + 1; break } }
            probs.removeSubrange(cut...)
            idx.removeSubrange(cut...)
            let s = probs.reduce(0, +)
            for i in probs.indices { probs[i] /= s }
        }
        var r = nextUniform(), i = 0
        while i < probs.count - 1 && r >= probs[i] { r -= probs[i]; i += 1 }
        return Int32(idx[i])
    }
}

/// A small, seeded, deterministic random generator (SplitMix64).
public struct SplitMix64 {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
