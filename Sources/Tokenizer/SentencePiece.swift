/// SentencePiece-style BPE (`tokenizer.ggml.model = llama`), equivalent to llama.cpp's
/// `llm_tokenizer_spm_session`: the text (spaces escaped to `▁`) starts as one symbol per UTF-8
/// character; the adjacent pair whose concatenation is a vocabulary token with the highest score
/// (leftmost on ties) is merged until none is. Symbols that are not tokens become byte tokens
/// (`<0xXX>`).
final class SPMModel {
    let tokenIDs: [[UInt8]: Int32]
    let scores: [Float]
    /// Token for each byte: `<0xXX>`, else the one-byte string, else unknown (or -1).
    let byteToken: [Int32]

    init(tokenIDs: [[UInt8]: Int32], scores: [Float], unknownID: Int32?) {
        self.tokenIDs = tokenIDs
        self.scores = scores
        let hex = Array("0123456789ABCDEF".utf8)
        var bt = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            let name: [UInt8] = Array("<0x".utf8) + [hex[b >> 4], hex[b & 15]] + Array(">".utf8)
            if let id = tokenIDs[name] {
                bt[b] = id
            } else if let id = tokenIDs[[UInt8(b)]] {
                bt[b] = id
            } else if let unk = unknownID {
                bt[b] = unk
            }
        }
        byteToken = bt
    }

    static let escapedSpace: [UInt8] = [0xE2, 0x96, 0x81]  // U+2581 "▁"

    private struct Bigram {
        var score: Float
        var left: Int32
        var right: Int32
        var size: Int32
        func precedes(_ o: Bigram) -> Bool { score > o.score || (score == o.score && left < o.left) }
    }

    /// Encodes already-escaped text (spaces replaced by `▁`, space prefix added) into `out`.
    func encode(_ text: [UInt8], into out: inout [Int32]) {
        if text.isEmpty { return }
        var start: [Int32] = []
        var len: [Int32] = []
        var i = 0
        while i < text.count {
            let b = text[i]
            let n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4
            let m = min(n, text.count - i)
            start.append(Int32(i))
            len.append(Int32(m))
            i += m
        }
        let count = start.count
        var next = (0..<count).map { Int32($0 + 1 < count ? $0 + 1 : -1) }
        var prev = (0..<count).map { Int32($0 - 1) }
        var heap: [Bigram] = []

        func tryAdd(_ l: Int32, _ r: Int32) {
            if l < 0 || r < 0 { return }
            let s = Int(start[Int(l)])
            let size = Int(len[Int(l)] + len[Int(r)])
            guard let id = tokenIDs[Array(text[s..<(s + size)])] else { return }
            let score = Int(id) < scores.count ? scores[Int(id)] : 0
            heap.append(Bigram(score: score, left: l, right: r, size: Int32(size)))
            var c = heap.count - 1
            while c > 0 {
                let p = (c - 1) / 2
                if heap[c].precedes(heap[p]) { heap.swapAt(c, p); c = p } else { break }
            }
        }
        func pop() -> Bigram? {
            guard let last = heap.popLast() else { return nil }
            if heap.isEmpty { return last }
            let top = heap[0]
            heap[0] = last
            var p = 0
            while true {
                let l = 2 * p + 1
                if l >= heap.count { break }
                var m = l
                if l + 1 < heap.count && heap[l + 1].precedes(heap[l]) { m = l + 1 }
                if heap[m].precedes(heap[p]) { heap.swapAt(m, p); p = m } else { break }
            }
            return top
        }

        for k in 1..<max(count, 1) { tryAdd(Int32(k - 1), Int32(k)) }
        while let b = pop() {
            let l = Int(b.left), r = Int(b.right)
            if len[l] == 0 || len[r] == 0 || len[l] + len[r] != b.size { continue }
            len[l] += len[r]
            len[r] = 0
            next[l] = next[r]
            if next[r] >= 0 { prev[Int(next[r])] = b.left }
            tryAdd(prev[l], b.left)
            tryAdd(b.left, next[l])
        }
        var k: Int32 = 0
        while k >= 0 {
            let s = Int(start[Int(k)]), e = s + Int(len[Int(k)])
            if let id = tokenIDs[Array(text[s..<e])] {
                out.append(id)
            } else {
                for j in s..<e where byteToken[Int(text[j])] >= 0 { out.append(byteToken[Int(text[j])]) }
            }
            k = next[Int(k)]
        }
    }
}
