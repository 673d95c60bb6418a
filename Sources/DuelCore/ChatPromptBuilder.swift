import Engine
import Tokenizer

/// The real prompt builder: the model's chat format (ChatML, Llama 3 or Mistral), one segment per part.
///
///     system open   "<|im_start|>system\n{system}"          (.system)
///     document × n  "\n\n## {title}\n{text}"                 (.document(id:), position-free)
///     system close  "<|im_end|>\n"                           (.system)
///     history × m   "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n" + answer + "<|im_end|>\n"
///     question      "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
///
/// Each segment is tokenised on its own, so a document's tokens are the same wherever it sits and
/// both engines get identical ids. A history turn reuses the answer's own token ids when known
/// (`Turn.answerTokens`), so it equals the question segment plus the answer plus `turnSuffix`: the
/// tokens the cached engine encoded after answering.
public struct ChatPromptBuilder: PromptBuilder, @unchecked Sendable {
    public let tokenizer: Tokenizer
    public let template: ChatTemplate
    private let systemOpen: (String, String)   // text before and after the system content
    private let turnClose: String              // what follows an assistant answer

    /// `template`: the format to use (`--chat-format`); the tokenizer's detected one by default.
    public init(tokenizer: Tokenizer, template: ChatTemplate? = nil) {
        self.tokenizer = tokenizer
        self.template = template ?? tokenizer.chatTemplate
        let marker = "\u{1}"
        func split(_ s: String) -> (String, String) {
            guard let r = s.range(of: marker) else { return (s, "") }
            return (String(s[..<r.lowerBound]), String(s[r.upperBound...]))
        }
        systemOpen = split(self.template.renderMessage(.system(marker)))
        turnClose = split(self.template.renderMessage(.assistant(marker))).1
    }

    /// Tokens that close an assistant turn (`<|im_end|>\n` in ChatML).
    public var turnSuffix: [Int32] { tokenizer.encode(turnClose, addBOS: false) }

    public func documentText(_ d: Document) -> String {
        "\n\n## " + d.title + "\n" + d.text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public func documentTokens(_ d: Document) -> [Int32] { tokenizer.encode(documentText(d), addBOS: false) }

    public func questionTokens(_ q: String) -> [Int32] {
        tokenizer.encode(template.renderMessage(.user(q)) + template.generationPrompt, addBOS: false)
    }

    public func segments(system: String, documents: [Document], history: [Turn], question: String) -> [PromptSegment] {
        let sys = system.isEmpty ? (template.defaultSystemPrompt ?? "") : system
        var out: [PromptSegment] = []
        if documents.isEmpty {
            out.append(PromptSegment(role: .system, tokens: tokenizer.encode(systemOpen.0 + sys + systemOpen.1)))
        } else {
            out.append(PromptSegment(role: .system, tokens: tokenizer.encode(systemOpen.0 + sys)))
            for d in documents { out.append(PromptSegment(role: .document(id: d.id), tokens: documentTokens(d))) }
            out.append(PromptSegment(role: .system, tokens: tokenizer.encode(systemOpen.1, addBOS: false)))
        }
        for turn in history {
            let answer = turn.answerTokens ?? tokenizer.encode(turn.answer, addBOS: false, parseSpecial: false)
            out.append(PromptSegment(role: .history, tokens: questionTokens(turn.question) + answer + turnSuffix))
        }
        out.append(PromptSegment(role: .question, tokens: questionTokens(question)))
        return out
    }
}
