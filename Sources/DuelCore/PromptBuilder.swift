import Engine

/// The seam between the UI and the tokenizer/chat template. The lead implements it with the real
/// tokenizer; tests and the demo use `WordPromptBuilder` (one token per word).
///
/// Contract:
/// - `segments` returns the whole prompt, in order: one `.system` segment, one `.document(id:)`
///   segment per included document (in the given order), `.history` segment(s) for earlier turns,
///   and one `.question` segment that ends with whatever opens the assistant's answer.
/// - `documentTokens(d)` returns exactly the tokens of the `.document(id: d.id)` segment that
///   `segments` would emit for `d`, wherever `d` sits in the prompt (segments are position-free).
///   The UI uses it for the panel's token counts and for `InferenceEngine.cacheState(of:)`.
/// - Both methods are called off the UI thread too, so they must be thread-safe.
public protocol PromptBuilder: Sendable {
    func segments(system: String, documents: [Document], history: [Turn], question: String) -> [PromptSegment]
    func documentTokens(_ document: Document) -> [Int32]
    /// Tokens that close an assistant turn (see `EngineRequest.turnSuffix`).
    var turnSuffix: [Int32] { get }
}

extension PromptBuilder {
    public func tokenCount(of document: Document) -> Int { documentTokens(document).count }
    /// Tokens that close an assistant turn (see `EngineRequest.turnSuffix`); none by default.
    public var turnSuffix: [Int32] { [] }
}

/// A stand-in prompt builder: one token per whitespace-separated word, ids from a stable hash.
/// Deterministic across runs (no `Hasher`), so tests and demos can rely on it.
public struct WordPromptBuilder: PromptBuilder {
    public init() {}

    public static func tokens(_ text: String) -> [Int32] {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map { word in
            var h: UInt32 = 2166136261
            for b in word.utf8 { h = (h ^ UInt32(b)) &* 16777619 }
            return Int32(bitPattern: h & 0x7fff_ffff)
        }
    }

    /// The text of a document segment: `<doc> Title | text </doc>`.
    public static func documentText(_ document: Document) -> String {
        "<doc> " + document.title + " | " + document.text + " </doc>"
    }

    public func documentTokens(_ document: Document) -> [Int32] {
        Self.tokens(Self.documentText(document))
    }

    public func segments(system: String, documents: [Document], history: [Turn], question: String) -> [PromptSegment] {
        var out = [PromptSegment(role: .system, tokens: Self.tokens("<system> " + system))]
        for d in documents {
            out.append(PromptSegment(role: .document(id: d.id), tokens: documentTokens(d)))
        }
        for t in history {
            out.append(PromptSegment(role: .history, tokens: Self.tokens("<user> " + t.question + " <assistant> " + t.answer)))
        }
        out.append(PromptSegment(role: .question, tokens: Self.tokens("<user> " + question + " <assistant>")))
        return out
    }
}
