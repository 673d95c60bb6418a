import Foundation
import Engine

// Stand-ins for the real engine and tokenizer: used by the UI tests and by the demo mode
// (`runDuelDemo`), so the screen can be tried without a model. Nothing here is a model.

/// Remembers which word each `WordPromptBuilder` token id stands for, so `DemoEngine` can read prompts.
public final class WordVocabulary: @unchecked Sendable {
    private let lock = NSLock()
    private var words: [Int32: String] = [:]
    public init() {}
    func record(_ id: Int32, _ word: Substring) {
        lock.lock(); words[id] = String(word); lock.unlock()
    }
    public func decode(_ ids: [Int32]) -> String {
        lock.lock(); defer { lock.unlock() }
        return ids.map { words[$0] ?? "?" }.joined(separator: " ")
    }
}

/// How slow a `DemoEngine` pretends to be. `.instant` sleeps never (tests).
public struct DemoTiming: Sendable, Hashable {
    public var prefillSecondsPerToken: Double
    public var decodeSecondsPerToken: Double
    public var lookupSeconds: Double
    public init(prefillSecondsPerToken: Double, decodeSecondsPerToken: Double, lookupSeconds: Double) {
        self.prefillSecondsPerToken = prefillSecondsPerToken
        self.decodeSecondsPerToken = decodeSecondsPerToken
        self.lookupSeconds = lookupSeconds
    }
    public static let instant = DemoTiming(prefillSecondsPerToken: 0, decodeSecondsPerToken: 0, lookupSeconds: 0)
    /// Roughly a 135M model on one core: ~6.5 ms per prompt token, ~25 ms per generated token.
    public static let realistic = DemoTiming(prefillSecondsPerToken: 0.0065, decodeSecondsPerToken: 0.025, lookupSeconds: 0.004)
}

/// A fake `InferenceEngine`. With `reuse`, it keeps every segment it has seen and reports exact
/// prefix reuse or blended reuse (recomputing `recomputeRatio` of a reused segment), like the
/// reuse engine; without, it recomputes everything, like the baseline. Its answer is the document
/// sentence that shares the most words with the question (or a canned reply), so the demo reads well.
public final class DemoEngine: InferenceEngine, @unchecked Sendable {
    public let label: String
    public let reuse: Bool
    public var timing: DemoTiming
    public var recomputeRatio: Double
    private let vocabulary: WordVocabulary?
    private var stored: Set<[Int32]> = []
    private var lastSequence: [Int32] = []
    private var totals = RequestStats()
    private let bytesPerToken = 18_432   // 30 layers × 3 KV heads × 64 dims × 2 (K,V) × int8 ≈ 23 KB; rounded

    public init(label: String, reuse: Bool, timing: DemoTiming = .instant, recomputeRatio: Double = 0.15,
                vocabulary: WordVocabulary? = nil) {
        self.label = label
        self.reuse = reuse
        self.timing = timing
        self.recomputeRatio = recomputeRatio
        self.vocabulary = vocabulary
    }

    public var cumulative: RequestStats { totals }

    public func reset() {
        stored.removeAll()
        lastSequence.removeAll()
        totals = RequestStats()
    }

    public func cacheState(of tokens: [Int32]) -> SegmentCacheState {
        guard reuse, !tokens.isEmpty else { return .notCached }
        if stored.contains(tokens) { return .cached }
        // Partly: the longest stored segment that starts the same way.
        var best = 0
        for s in stored {
            var n = 0
            while n < min(s.count, tokens.count), s[n] == tokens[n] { n += 1 }
            best = max(best, n)
        }
        // A shared opening tag is not reuse worth reporting.
        return best >= 16 ? .partial(Double(best) / Double(tokens.count)) : .notCached
    }

    public func generate(_ request: EngineRequest, cancel: CancelFlag?,
                         onEvent: (EngineEvent) -> Void) throws -> GenerationResult {
        let start = monotonicSeconds()
        var stats = RequestStats()
        stats.recomputeRatio = reuse ? recomputeRatio : 0
        let prompt = request.promptTokens
        stats.promptTokens = prompt.count
        onEvent(.started(promptTokens: prompt.count))

        // Decide reuse per segment.
        var offset = 0
        var exactSoFar = reuse
        for seg in request.segments {
            let n = seg.tokens.count
            let sameAsBefore = offset + n <= lastSequence.count && Array(lastSequence[offset..<offset + n]) == seg.tokens
            if exactSoFar && sameAsBefore {
                stats.reusedExact += n
            } else {
                exactSoFar = false
                if reuse, seg.role != .question, stored.contains(seg.tokens) {
                    let r = Int((Double(n) * recomputeRatio).rounded(.up))
                    stats.recomputed += r
                    stats.reusedBlended += n - r
                } else {
                    stats.computedFresh += n
                }
            }
            offset += n
        }

        // Prefill, in chunks, reporting progress.
        let work = stats.computedFresh + stats.recomputed
        pause(timing.lookupSeconds)
        var done = 0
        while done < work {
            if cancel?.isCancelled == true { break }
            let chunk = min(64, work - done)
            pause(Double(chunk) * timing.prefillSecondsPerToken)
            done += chunk
            onEvent(.prefillProgress(done: done, total: work))
        }
        let prefillEnd = monotonicSeconds()

        // Decode.
        let words = answerWords(request)
        var tokens: [Int32] = []
        var text = ""
        var firstTokenAt = prefillEnd
        for (i, w) in words.enumerated() {
            if cancel?.isCancelled == true { break }
            if i > 0 { pause(timing.decodeSecondsPerToken) }
            let piece = (i == 0 ? "" : " ") + w
            let id = WordPromptBuilder.tokens(w).first ?? 0
            if i == 0 {
                firstTokenAt = monotonicSeconds()
                stats.ttftSeconds = timing == .instant ? Double(work) * 0.0065 + 0.004 : firstTokenAt - start
                onEvent(.firstToken(ttftSeconds: stats.ttftSeconds))
            }
            tokens.append(id)
            text += piece
            onEvent(.token(id: id, text: piece))
        }
        let end = monotonicSeconds()
        stats.generatedTokens = tokens.count
        stats.lookupSeconds = timing.lookupSeconds
        stats.prefillSeconds = prefillEnd - start
        stats.decodeSeconds = timing == .instant ? Double(max(0, tokens.count - 1)) * 0.025 : end - firstTokenAt
        stats.kvBytesLive = (prompt.count + tokens.count) * bytesPerToken

        if reuse {
            for seg in request.segments where seg.role != .question { stored.insert(seg.tokens) }
            stats.storeBytesRAM = stored.reduce(0) { $0 + $1.count } * bytesPerToken
        }
        lastSequence = prompt + tokens
        totals.accumulate(stats)
        let result = GenerationResult(tokens: tokens, text: text, stats: stats)
        onEvent(.finished(stats))
        return result
    }

    private func pause(_ seconds: Double) {
        if seconds > 0 { usleep(UInt32(min(seconds, 10) * 1_000_000)) }
    }

    private static let stopWords: Set<String> = [
        "the", "a", "an", "of", "is", "was", "in", "on", "to", "and", "what", "who", "where", "when",
        "how", "does", "did", "do", "its", "it", "for", "by", "with", "<user>", "<assistant>", "which", "are",
    ]

    private func answerWords(_ request: EngineRequest) -> [String] {
        guard let vocabulary else {
            return Array(repeating: "word", count: min(request.maxTokens, 12))
        }
        func words(_ s: String) -> [String] { s.split(separator: " ").map(String.init) }
        let question = request.segments.last { $0.role == .question }.map { vocabulary.decode($0.tokens) } ?? ""
        let qWords = Set(words(question.lowercased()).map { $0.trimmingCharacters(in: .punctuationCharacters) })
            .subtracting(Self.stopWords)
        var best: (score: Int, sentence: String) = (0, "")
        func keyWords(_ s: Substring) -> Set<String> {
            Set(words(s.lowercased()).map { $0.trimmingCharacters(in: .punctuationCharacters) })
        }
        for seg in request.segments {
            guard case .document = seg.role else { continue }
            let decoded = vocabulary.decode(seg.tokens).replacingOccurrences(of: "<doc> ", with: "")
                .replacingOccurrences(of: " </doc>", with: "")
            // "<doc> Title | text </doc>": a title match counts for every sentence of the document.
            let parts = decoded.components(separatedBy: " | ")
            let titleScore = parts.count > 1 ? keyWords(Substring(parts[0])).intersection(qWords).count : 0
            let text = parts.count > 1 ? parts.dropFirst().joined(separator: " | ") : decoded
            for sentence in text.split(separator: ".") {
                let score = keyWords(sentence).intersection(qWords).count * 2 + titleScore
                if score > best.score { best = (score, sentence.trimmingCharacters(in: .whitespaces) + ".") }
            }
        }
        var answer: [String]
        if best.score > 0 {
            answer = words("According to the documents, " + best.sentence)
        } else {
            let topic = qWords.sorted().prefix(3).joined(separator: ", ")
            answer = words("This is a demo engine without a model, so here is a canned reply about \(topic.isEmpty ? "your question" : topic). "
                + "A real model would answer at length here; the demo streams words with a realistic delay "
                + "so that the meters, the live TTFT counter and the transcript can be tried out. "
                + "Each turn adds to the history, which both engines see, so the prompt grows and the cached side reuses more of it.")
        }
        return Array(answer.prefix(max(1, request.maxTokens)))
    }
}

extension WordPromptBuilder {
    /// A builder that records words into `vocabulary`, so `DemoEngine` can read the prompt back.
    public static func recording(into vocabulary: WordVocabulary) -> RecordingWordPromptBuilder {
        RecordingWordPromptBuilder(vocabulary: vocabulary)
    }
}

/// `WordPromptBuilder` that also fills a `WordVocabulary`.
public struct RecordingWordPromptBuilder: PromptBuilder {
    public let vocabulary: WordVocabulary
    private let inner = WordPromptBuilder()

    public func documentTokens(_ document: Document) -> [Int32] {
        record(WordPromptBuilder.documentText(document))
        return inner.documentTokens(document)
    }

    public func segments(system: String, documents: [Document], history: [Turn], question: String) -> [PromptSegment] {
        for d in documents { record(WordPromptBuilder.documentText(d)) }
        for t in history { record("<user> " + t.question + " <assistant> " + t.answer) }
        record("<user> " + question + " <assistant>")
        return inner.segments(system: system, documents: documents, history: history, question: question)
    }

    private func record(_ text: String) {
        for w in text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }) {
            if let id = WordPromptBuilder.tokens(String(w)).first { vocabulary.record(id, w) }
        }
    }
}
