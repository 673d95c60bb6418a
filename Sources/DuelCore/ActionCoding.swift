import Engine
import KVCache

// Actions as JSON, for session logs: `[kind, payload]`, where `kind` is the case name and
// `payload` an object of its fields. A session log line is `[t, kind, payload]` (Sources/Session).
// Engine figures (stats, cache states) are written field by field and read back tolerantly
// (a missing field reads as 0), so logs survive new fields in either direction.

/// A JSON object key named at run time.
struct FieldKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// An event kind this version of kvduel does not know: skip it.
public struct UnknownActionKind: Error, Hashable {
    public var kind: String
}

extension Action: Codable {
    /// The case name, written as the event kind.
    public var kind: String {
        switch self {
        case .questionSubmitted: return "questionSubmitted"
        case .focusChanged: return "focusChanged"
        case .blockSelected: return "blockSelected"
        case .blockMoved: return "blockMoved"
        case .blockToggled: return "blockToggled"
        case .helpToggled: return "helpToggled"
        case .breakdownToggled: return "breakdownToggled"
        case .inputEdited: return "inputEdited"
        case .historyBrowsed: return "historyBrowsed"
        case .scrolled: return "scrolled"
        case .resetRequested: return "resetRequested"
        case .newConversationRequested: return "newConversationRequested"
        case .quitRequested: return "quitRequested"
        case .markerDropped: return "markerDropped"
        case .resized: return "resized"
        case .tick: return "tick"
        case .rssSampled: return "rssSampled"
        case .loadingProgress: return "loadingProgress"
        case .loaded: return "loaded"
        case .loadFailed: return "loadFailed"
        case .engineStarted: return "engineStarted"
        case .prefillProgress: return "prefillProgress"
        case .firstTokenArrived: return "firstTokenArrived"
        case .tokenArrived: return "tokenArrived"
        case .answerFinished: return "answerFinished"
        case .engineFailed: return "engineFailed"
        case .divergenceMeasured: return "divergenceMeasured"
        case .answerTokensKnown: return "answerTokensKnown"
        case .turnCompleted: return "turnCompleted"
        case .cacheStatesUpdated: return "cacheStatesUpdated"
        case .blockTokenCounts: return "blockTokenCounts"
        case .enginesReset: return "enginesReset"
        case .storeSampled: return "storeSampled"
        }
    }

    /// `[kind, payload]`.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(kind)
        try encodePayload(to: c.superEncoder())
    }

    public init(from decoder: Decoder) throws {
        var c = try decoder.unkeyedContainer()
        let kind = try c.decode(String.self)
        try self.init(kind: kind, payload: c.superDecoder())
    }

    /// Writes this action's fields as one JSON object.
    public func encodePayload(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: FieldKey.self)
        func put<T: Encodable>(_ k: String, _ v: T) throws { try c.encode(v, forKey: FieldKey(k)) }
        switch self {
        case .questionSubmitted(let q): try put("text", q)
        case .focusChanged(let f): try put("focus", f.rawValue)
        case .blockSelected(let i): try put("index", i)
        case .blockMoved(let from, let to): try put("from", from); try put("to", to)
        case .blockToggled(let id): try put("id", id)
        case .inputEdited(let e):
            switch e {
            case .insert(let s): try put("edit", "insert"); try put("text", s)
            case .replaceAll(let s): try put("edit", "replaceAll"); try put("text", s)
            case .backspace: try put("edit", "backspace")
            case .deleteForward: try put("edit", "deleteForward")
            case .left: try put("edit", "left")
            case .right: try put("edit", "right")
            case .home: try put("edit", "home")
            case .end: try put("edit", "end")
            case .deleteWordBackward: try put("edit", "deleteWordBackward")
            case .deleteToStart: try put("edit", "deleteToStart")
            case .deleteToEnd: try put("edit", "deleteToEnd")
            }
        case .historyBrowsed(let older): try put("older", older)
        case .scrolled(let n): try put("lines", n)
        case .markerDropped(let label): if let label { try put("label", label) }
        case .resized(let cols, let rows): try put("cols", cols); try put("rows", rows)
        case .tick(let now): try put("now", now)
        case .rssSampled(let b): try put("bytes", b)
        case .loadingProgress(let f, let m): try put("fraction", f); try put("message", m)
        case .loadFailed(let m): try put("message", m)
        case .engineStarted(let p): try put("pane", p.label)
        case .prefillProgress(let p, let done, let total): try put("pane", p.label); try put("done", done); try put("total", total)
        case .firstTokenArrived(let p, let ttft): try put("pane", p.label); try put("ttft", ttft)
        case .tokenArrived(let p, let text): try put("pane", p.label); try put("text", text)
        case .answerFinished(let p, let stats, let cumulative):
            try put("pane", p.label); try put("stats", StatsWire(stats)); try put("cumulative", StatsWire(cumulative))
        case .engineFailed(let p, let m): try put("pane", p.label); try put("message", m)
        case .divergenceMeasured(let d):
            try put("identical", d.identical)
            if let kl = d.firstTokenKL, kl.isFinite { try put("firstTokenKL", kl) }
            if let i = d.firstDifferingToken { try put("firstDifferingToken", i) }
        case .answerTokensKnown(let t): try put("tokens", t)
        case .cacheStatesUpdated(let states): try put("states", states.mapValues(CacheWire.init))
        case .blockTokenCounts(let counts): try put("counts", counts)
        case .enginesReset(let cumulative): try put("cumulative", StatsWire(cumulative))
        case .storeSampled(let tiers): try put("tiers", tiers)
        case .helpToggled, .breakdownToggled, .resetRequested, .newConversationRequested, .quitRequested, .loaded, .turnCompleted:
            break
        }
    }

    /// Reads an action of `kind` from its payload object. Throws `UnknownActionKind` for kinds
    /// this version does not know.
    public init(kind: String, payload decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: FieldKey.self)
        func get<T: Decodable>(_ k: String, _ t: T.Type = T.self) throws -> T { try c.decode(T.self, forKey: FieldKey(k)) }
        func opt<T: Decodable>(_ k: String, _ t: T.Type = T.self) throws -> T? { try c.decodeIfPresent(T.self, forKey: FieldKey(k)) }
        func pane() throws -> PaneID {
            let s: String = try get("pane")
            guard let p = PaneID.allCases.first(where: { $0.label == s }) else {
                throw DecodingError.dataCorruptedError(forKey: FieldKey("pane"), in: c, debugDescription: "unknown pane '\(s)'")
            }
            return p
        }
        switch kind {
        case "questionSubmitted": self = .questionSubmitted(try get("text"))
        case "focusChanged":
            guard let f = Focus(rawValue: try get("focus")) else {
                throw DecodingError.dataCorruptedError(forKey: FieldKey("focus"), in: c, debugDescription: "unknown focus")
            }
            self = .focusChanged(f)
        case "blockSelected": self = .blockSelected(try get("index"))
        case "blockMoved": self = .blockMoved(from: try get("from"), to: try get("to"))
        case "blockToggled": self = .blockToggled(id: try get("id"))
        case "helpToggled": self = .helpToggled
        case "breakdownToggled": self = .breakdownToggled
        case "inputEdited":
            let e: String = try get("edit")
            switch e {
            case "insert": self = .inputEdited(.insert(try get("text")))
            case "replaceAll": self = .inputEdited(.replaceAll(try get("text")))
            case "backspace": self = .inputEdited(.backspace)
            case "deleteForward": self = .inputEdited(.deleteForward)
            case "left": self = .inputEdited(.left)
            case "right": self = .inputEdited(.right)
            case "home": self = .inputEdited(.home)
            case "end": self = .inputEdited(.end)
            case "deleteWordBackward": self = .inputEdited(.deleteWordBackward)
            case "deleteToStart": self = .inputEdited(.deleteToStart)
            case "deleteToEnd": self = .inputEdited(.deleteToEnd)
            default: throw UnknownActionKind(kind: "inputEdited/\(e)")
            }
        case "historyBrowsed": self = .historyBrowsed(older: try get("older"))
        case "scrolled": self = .scrolled(lines: try get("lines"))
        case "resetRequested": self = .resetRequested
        case "newConversationRequested": self = .newConversationRequested
        case "quitRequested": self = .quitRequested
        case "markerDropped": self = .markerDropped(label: try opt("label"))
        case "resized": self = .resized(cols: try get("cols"), rows: try get("rows"))
        case "tick": self = .tick(now: try get("now"))
        case "rssSampled": self = .rssSampled(bytes: try get("bytes"))
        case "loadingProgress": self = .loadingProgress(fraction: try get("fraction"), message: try get("message"))
        case "loaded": self = .loaded
        case "loadFailed": self = .loadFailed(try get("message"))
        case "engineStarted": self = .engineStarted(pane: try pane())
        case "prefillProgress": self = .prefillProgress(pane: try pane(), done: try get("done"), total: try get("total"))
        case "firstTokenArrived": self = .firstTokenArrived(pane: try pane(), ttft: try get("ttft"))
        case "tokenArrived": self = .tokenArrived(pane: try pane(), text: try get("text"))
        case "answerFinished":
            self = .answerFinished(pane: try pane(), stats: try get("stats", StatsWire.self).stats,
                                   cumulative: try get("cumulative", StatsWire.self).stats)
        case "engineFailed": self = .engineFailed(pane: try pane(), message: try get("message"))
        case "divergenceMeasured":
            self = .divergenceMeasured(Divergence(identical: try get("identical"), firstTokenKL: try opt("firstTokenKL"),
                                                  firstDifferingToken: try opt("firstDifferingToken")))
        case "answerTokensKnown": self = .answerTokensKnown(try get("tokens"))
        case "turnCompleted": self = .turnCompleted
        case "cacheStatesUpdated": self = .cacheStatesUpdated(try get("states", [String: CacheWire].self).mapValues(\.state))
        case "blockTokenCounts": self = .blockTokenCounts(try get("counts"))
        case "enginesReset": self = .enginesReset(cumulative: try get("cumulative", StatsWire.self).stats)
        case "storeSampled": self = .storeSampled(tiers: try get("tiers"))
        default: throw UnknownActionKind(kind: kind)
        }
    }
}

/// `RequestStats` field by field; a missing field reads as 0.
struct StatsWire: Codable {
    var stats: RequestStats
    init(_ s: RequestStats) { stats = s }

    private static let ints: [(String, WritableKeyPath<RequestStats, Int>)] = [
        ("promptTokens", \.promptTokens), ("reusedExact", \.reusedExact), ("reusedBlended", \.reusedBlended),
        ("recomputed", \.recomputed), ("computedFresh", \.computedFresh), ("generatedTokens", \.generatedTokens),
        ("kvBytesLive", \.kvBytesLive), ("evictions", \.evictions), ("checkedTokens", \.checkedTokens),
    ]
    private static let doubles: [(String, WritableKeyPath<RequestStats, Double>)] = [
        ("ttftSeconds", \.ttftSeconds), ("lookupSeconds", \.lookupSeconds), ("loadSeconds", \.loadSeconds),
        ("prefillSeconds", \.prefillSeconds), ("decodeSeconds", \.decodeSeconds),
        ("recomputeRatio", \.recomputeRatio), ("postAnswerSeconds", \.postAnswerSeconds),
    ]

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: FieldKey.self)
        for (k, p) in Self.ints { try c.encode(stats[keyPath: p], forKey: FieldKey(k)) }
        for (k, p) in Self.doubles { try c.encode(stats[keyPath: p], forKey: FieldKey(k)) }
        if !stats.tiers.isEmpty { try c.encode(stats.tiers, forKey: FieldKey("tiers")) }
        if stats.breakdown != TTFTBreakdown() { try c.encode(stats.breakdown, forKey: FieldKey("breakdown")) }
        if let cake = stats.cake { try c.encode(cake, forKey: FieldKey("cake")) }
    }
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: FieldKey.self)
        var s = RequestStats()
        for (k, p) in Self.ints { s[keyPath: p] = try c.decodeIfPresent(Int.self, forKey: FieldKey(k)) ?? 0 }
        for (k, p) in Self.doubles { s[keyPath: p] = try c.decodeIfPresent(Double.self, forKey: FieldKey(k)) ?? 0 }
        // Per-tier figures (hits, bytes, remote state). Logs written before there were tiers carry
        // only the RAM and disk store bytes.
        if let tiers = try c.decodeIfPresent([TierFigures].self, forKey: FieldKey("tiers")) {
            s.tiers = tiers
        } else {
            for (k, p) in [("storeBytesRAM", \RequestStats.storeBytesRAM), ("storeBytesDisk", \.storeBytesDisk)] {
                if let v = try c.decodeIfPresent(Int.self, forKey: FieldKey(k)), v != 0 { s[keyPath: p] = v }
            }
        }
        s.breakdown = try c.decodeIfPresent(TTFTBreakdown.self, forKey: FieldKey("breakdown")) ?? TTFTBreakdown()
        s.cake = try c.decodeIfPresent(CakeSplit.self, forKey: FieldKey("cake"))
        stats = s
    }
}

/// A block's cache state: `"cached"`, `"none"` or a fraction held (partly cached).
struct CacheWire: Codable {
    var state: SegmentCacheState
    init(_ s: SegmentCacheState) { state = s }
    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch state {
        case .cached: try c.encode("cached")
        case .notCached: try c.encode("none")
        case .partial(let f): try c.encode(f)
        }
    }
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let f = try? c.decode(Double.self) {
            state = .partial(f)
        } else {
            state = try c.decode(String.self) == "cached" ? .cached : .notCached
        }
    }
}
