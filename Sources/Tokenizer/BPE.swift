/// Byte-level BPE merging, equivalent to llama.cpp's `llm_tokenizer_bpe_session`: the word's bytes
/// start as one symbol each; the adjacent pair with the lowest merge rank (leftmost on ties) is
/// merged until no pair has a rank.
///
/// Symbols are integers. Every string that can appear as a symbol (a byte, a merge side or a merge
/// result) has an id: its token id when it is in the vocabulary, otherwise a "virtual" id
/// >= `tokenCount`. Two symbols are equal exactly when their texts are, so merging on ids is the
/// same as llama.cpp merging on strings. Symbols left with a virtual id fall back to byte tokens.
final class BPEModel {
    let tokenCount: Int
    /// Initial symbol for each raw byte.
    let byteSymbol: [Int32]
    /// Token for each raw byte (byte fallback), or -1.
    let byteToken: [Int32]
    /// (left << 32 | right) -> (rank << 32 | result).
    let merges: [UInt64: UInt64]

    init(tokenIDs: [[UInt8]: Int32], tokenCount: Int, merges mergeStrings: [String]) {
        self.tokenCount = tokenCount
        var virtualIDs: [[UInt8]: Int32] = [:]
        var nextVirtual = Int32(tokenCount)
        func symbol(_ bytes: [UInt8]) -> Int32 {
            if let id = tokenIDs[bytes] { return id }
            if let id = virtualIDs[bytes] { return id }
            let id = nextVirtual
            nextVirtual += 1
            virtualIDs[bytes] = id
            return id
        }
        var byteSymbol = [Int32](repeating: 0, count: 256)
        var byteToken = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            let text = ByteLevel.byteToUTF8[b]
            byteSymbol[b] = symbol(text)
            if let id = tokenIDs[text] { byteToken[b] = id }
        }
        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(mergeStrings.count)
        for (rank, merge) in mergeStrings.enumerated() {
            // llama.cpp splits at the first space after the first byte.
            let bytes = Array(merge.utf8)
            guard bytes.count >= 3, let sp = bytes[1...].firstIndex(of: 0x20) else { continue }
            let left = Array(bytes[..<sp])
            let right = Array(bytes[(sp + 1)...])
            let l = symbol(left)
            let r = symbol(right)
            let result = symbol(left + right)
            let key = UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))
            if table[key] == nil {  // first occurrence wins, as in llama.cpp's map emplace
                table[key] = UInt64(UInt32(rank)) << 32 | UInt64(UInt32(bitPattern: result))
            }
        }
        self.byteSymbol = byteSymbol
        self.byteToken = byteToken
        self.merges = table
    }

    struct Bigram {
        var rank: Int32
        var left: Int32
        var right: Int32
        var leftID: Int32
        var rightID: Int32
        var result: Int32

        @inline(__always) func precedes(_ o: Bigram) -> Bool {
            rank < o.rank || (rank == o.rank && left < o.left)
        }
    }

    /// Reusable buffers, so that encoding a word does not allocate.
    struct Scratch {
        var ids: [Int32] = []
        var next: [Int32] = []
        var prev: [Int32] = []
        var len: [Int32] = []
        var heap: [Bigram] = []
    }

    @inline(__always)
    func lookup(_ l: Int32, _ r: Int32) -> UInt64? {
        merges[UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))]
    }

    /// Merges one pre-tokenized word (raw bytes) and appends its tokens to `out`.
    func encode(_ word: UnsafeBufferPointer<UInt8>, scratch s: inout Scratch, into out: inout [Int32]) {
        let n = word.count
        if n == 0 { return }
        if n == 1 {
            appendSymbol(byteSymbol[Int(word[0])], word, 0, 1, &out)
            return
        }
        s.ids.removeAll(keepingCapacity: true)
        s.next.removeAll(keepingCapacity: true)
        s.prev.removeAll(keepingCapacity: true)
        s.len.removeAll(keepingCapacity: true)
        s.heap.removeAll(keepingCapacity: true)
        for i in 0..<n {
            s.ids.append(byteSymbol[Int(word[i])])
            s.prev.append(Int32(i - 1))
            s.next.append(i + 1 < n ? Int32(i + 1) : -1)
            s.len.append(1)
        }
        for i in 1..<n { addBigram(Int32(i - 1), Int32(i), &s) }

        while let b = popHeap(&s.heap) {
            let l = Int(b.left), r = Int(b.right)
            // Skip bigrams made stale by an earlier merge.
            if s.len[l] == 0 || s.len[r] == 0 || s.ids[l] != b.leftID || s.ids[r] != b.rightID { continue }
            s.ids[l] = b.result
            s.len[l] += s.len[r]
            s.len[r] = 0
            s.next[l] = s.next[r]
            if s.next[r] >= 0 { s.prev[Int(s.next[r])] = b.left }
            addBigram(s.prev[l], b.left, &s)
            addBigram(b.left, s.next[l], &s)
        }
        // Symbol i starts at byte i; symbol 0 is never merged away.
        var i: Int32 = 0
        while i >= 0 {
            let k = Int(i)
            appendSymbol(s.ids[k], word, k, k + Int(s.len[k]), &out)
            i = s.next[k]
        }
    }

    @inline(__always)
    private func appendSymbol(_ id: Int32, _ word: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int,
                              _ out: inout [Int32]) {
        if Int(id) < tokenCount {
            out.append(id)
        } else {
            for j in from..<to where byteToken[Int(word[j])] >= 0 { out.append(byteToken[Int(word[j])]) }
        }
    }

    @inline(__always)
    private func addBigram(_ l: Int32, _ r: Int32, _ s: inout Scratch) {
        if l < 0 || r < 0 { return }
        let li = s.ids[Int(l)], ri = s.ids[Int(r)]
        guard let v = lookup(li, ri) else { return }
        pushHeap(&s.heap, Bigram(rank: Int32(truncatingIfNeeded: v >> 32), left: l, right: r,
                                 leftID: li, rightID: ri, result: Int32(bitPattern: UInt32(truncatingIfNeeded: v))))
    }

    @inline(__always)
    private func pushHeap(_ h: inout [Bigram], _ e: Bigram) {
        h.append(e)
        var c = h.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            if h[c].precedes(h[p]) { h.swapAt(c, p); c = p } else { break }
        }
    }

    @inline(__always)
    private func popHeap(_ h: inout [Bigram]) -> Bigram? {
        guard let last = h.popLast() else { return nil }
        if h.isEmpty { return last }
        let top = h[0]
        h[0] = last
        var p = 0
        let n = h.count
        while true {
            let l = 2 * p + 1
            if l >= n { break }
            var m = l
            if l + 1 < n && h[l + 1].precedes(h[l]) { m = l + 1 }
            if h[m].precedes(h[p]) { h.swapAt(m, p); p = m } else { break }
        }
        return top
    }
}
