import Engine

/// The two sides of the duel.
public enum PaneID: Int, Sendable, Hashable, CaseIterable, Codable {
    case cached = 0
    case baseline = 1

    public var title: String {
        switch self {
        case .cached: return "cached · KV reuse"
        case .baseline: return "baseline · no reuse"
        }
    }
    public var label: String { self == .cached ? "cached" : "baseline" }
}

/// How the two engines share the machine.
public enum Schedule: String, Sendable, Hashable, CaseIterable, Codable {
    /// Both engines at once, half the threads each.
    case parallel
    /// Cached first, then baseline, each with all threads (more accurate absolute TTFT).
    case alternate
}

/// A context block: one document that can be placed in the prompt.
public struct Document: Sendable, Hashable, Codable {
    public var id: String
    public var title: String
    public var text: String
    public init(id: String, title: String, text: String) {
        self.id = id
        self.title = title
        self.text = text
    }
}

/// One finished exchange of the conversation. `answer` is the BASELINE's answer, so the next
/// prompt is identical for both engines.
public struct Turn: Sendable, Hashable, Codable {
    public var question: String
    public var answer: String
    /// The answer's token ids as generated, when known: the next prompt then holds exactly the
    /// tokens the engines produced instead of a re-tokenisation of the text.
    public var answerTokens: [Int32]?
    public init(question: String, answer: String, answerTokens: [Int32]? = nil) {
        self.question = question
        self.answer = answer
        self.answerTokens = answerTokens
    }
}

/// What the top bar says about the model and the set-up.
public struct SessionInfo: Sendable, Hashable {
    public var modelName: String
    /// Model file size in bytes (0 = unknown).
    public var modelBytes: Int
    public var threadsPerEngine: Int
    public var schedule: Schedule
    public var recomputeRatio: Double
    /// Store capacity in bytes.
    public var storeCapacityBytes: Int
    /// "int8" or "f16".
    public var storage: String
    /// The shared remote tier's URL, password masked; nil without one.
    public var remote: String? = nil
    /// How a stored prefix in a slow tier is brought in ("cake", "load", "compute"); nil: not said.
    public var loadStrategy: String? = nil
    /// Links dialed down for the demo ("remote 20 MB/s, disk 200 MB/s"); "" when none.
    public var link: String = ""
    public init(modelName: String, modelBytes: Int = 0, threadsPerEngine: Int = 1,
                schedule: Schedule = .parallel, recomputeRatio: Double = 0.15,
                storeCapacityBytes: Int = 1 << 30, storage: String = "int8") {
        self.modelName = modelName
        self.modelBytes = modelBytes
        self.threadsPerEngine = threadsPerEngine
        self.schedule = schedule
        self.recomputeRatio = recomputeRatio
        self.storeCapacityBytes = storeCapacityBytes
        self.storage = storage
    }
}

/// Whether blending changed the cached answer, reported after both answers finished.
public struct Divergence: Sendable, Hashable {
    /// The two answers have the same tokens.
    public var identical: Bool
    /// KL(baseline ‖ cached) of the first generated token's distribution, when the engine measured it.
    public var firstTokenKL: Double?
    /// Index of the first differing generated token, when they differ.
    public var firstDifferingToken: Int?
    public init(identical: Bool, firstTokenKL: Double? = nil, firstDifferingToken: Int? = nil) {
        self.identical = identical
        self.firstTokenKL = firstTokenKL
        self.firstDifferingToken = firstDifferingToken
    }
}

/// Everything the app needs to start, independent of how the engines are built.
public struct DuelConfig: Sendable {
    public var info: SessionInfo
    public var systemPrompt: String
    public var documents: [Document]
    /// Ids of the documents included at start, in prompt order; nil = all, in `documents` order.
    public var initialOrder: [String]?
    public var maxTokens: Int
    public var sampling: Sampling
    /// Theme name: "default", "presentation" or "mono".
    public var theme: String
    public init(info: SessionInfo,
                systemPrompt: String = DuelConfig.defaultSystemPrompt,
                documents: [Document] = [],
                initialOrder: [String]? = nil,
                maxTokens: Int = 96,
                sampling: Sampling = .greedy,
                theme: String = "default") {
        self.info = info
        self.systemPrompt = systemPrompt
        self.documents = documents
        self.initialOrder = initialOrder
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.theme = theme
    }

    public static let defaultSystemPrompt =
        "You are a helpful assistant. Answer briefly, using only the documents when they are relevant."

    /// Starts from a scenario's documents, system prompt and token budget (first turn's order).
    public mutating func apply(_ scenario: Scenario) {
        systemPrompt = scenario.system
        documents = scenario.documents
        initialOrder = scenario.turns.first?.documents
        maxTokens = scenario.maxTokens
    }
}
