/// Recency order of keys: O(1) insert, touch, remove and oldest. A doubly linked list threaded
/// through arrays (slots are reused through a free list), indexed by a dictionary. Not thread-safe:
/// each tier guards its own instance with its lock.
struct LRUList<Key: Hashable> {
    private var keys: [Key?] = []
    private var prev: [Int] = []
    private var next: [Int] = []
    private var slotOf: [Key: Int] = [:]
    private var free: [Int] = []
    private var head = -1  // oldest
    private var tail = -1  // newest

    var count: Int { slotOf.count }
    var isEmpty: Bool { slotOf.isEmpty }
    var oldest: Key? { head < 0 ? nil : keys[head] }

    func contains(_ key: Key) -> Bool { slotOf[key] != nil }

    /// Inserts `key` as the newest, or makes it the newest if present.
    mutating func touch(_ key: Key) {
        if let s = slotOf[key] {
            guard s != tail else { return }
            unlink(s)
            linkAsNewest(s)
            return
        }
        let s: Int
        if let f = free.popLast() {
            s = f
            keys[s] = key
        } else {
            s = keys.count
            keys.append(key)
            prev.append(-1)
            next.append(-1)
        }
        slotOf[key] = s
        linkAsNewest(s)
    }

    @discardableResult
    mutating func remove(_ key: Key) -> Bool {
        guard let s = slotOf.removeValue(forKey: key) else { return false }
        unlink(s)
        keys[s] = nil
        free.append(s)
        return true
    }

    mutating func removeAll() {
        self = LRUList()
    }

    /// Keys from oldest to newest.
    var oldestFirst: [Key] {
        var out: [Key] = []
        out.reserveCapacity(count)
        var s = head
        while s >= 0 {
            out.append(keys[s]!)
            s = next[s]
        }
        return out
    }

    private mutating func unlink(_ s: Int) {
        let p = prev[s], n = next[s]
        if p >= 0 { next[p] = n } else { head = n }
        if n >= 0 { prev[n] = p } else { tail = p }
        prev[s] = -1
        next[s] = -1
    }

    private mutating func linkAsNewest(_ s: Int) {
        prev[s] = tail
        next[s] = -1
        if tail >= 0 { next[tail] = s } else { head = s }
        tail = s
    }
}
