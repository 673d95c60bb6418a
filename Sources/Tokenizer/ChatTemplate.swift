/// Chat formatting without a Jinja engine: the format is recognised from the markers in
/// `tokenizer.chat_template`, and rendering reproduces what that template produces.
public enum ChatFormat: String, Sendable, CaseIterable {
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` (SmolLM, Qwen, ...).
    case chatml
    /// `<|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>` (Llama 3).
    case llama3
    /// `[INST] {user}[/INST] {assistant}</s>` (Mistral); a system message, which the older
    /// Mistral templates have no place for, is `[SYSTEM_PROMPT]{system}[/SYSTEM_PROMPT]` (v7).
    case mistral

    /// The format a template uses; ChatML when there is no template or it is not recognised.
    public static func detect(_ template: String?) -> ChatFormat {
        recognize(template) ?? .chatml
    }

    /// The format whose markers the template contains, if any.
    public static func recognize(_ template: String?) -> ChatFormat? {
        guard let t = template else { return nil }
        if t.contains("<|start_header_id|>") { return .llama3 }
        if t.contains("<|im_start|>") { return .chatml }
        if t.contains("[INST]") { return .mistral }
        return nil
    }
}

public struct ChatMessage: Equatable, Hashable, Sendable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }
}

public struct ChatTemplate: Equatable, Sendable {
    public let format: ChatFormat
    /// The system prompt the template inserts when a conversation has no system message
    /// (SmolLM: "You are a helpful AI assistant named SmolLM, trained by Hugging Face").
    public let defaultSystemPrompt: String?
    /// False when there was no template, or its format was not recognised (ChatML is used).
    public let isRecognized: Bool

    public init(format: ChatFormat, defaultSystemPrompt: String? = nil) {
        self.format = format
        self.defaultSystemPrompt = defaultSystemPrompt
        self.isRecognized = true
    }

    /// Detects the format of a Jinja chat template (nil: no template, ChatML).
    /// Default system prompts follow each family: a ChatML template's literal system block (Qwen:
    /// "You are Qwen, created by Alibaba Cloud. …", SmolLM: "You are a helpful AI assistant named
    /// SmolLM, …"); Llama 3 and Mistral templates insert none.
    public init(template: String?) {
        let recognized = ChatFormat.recognize(template)
        self.init(resolved: recognized ?? .chatml, template: template, recognized: recognized != nil)
    }

    /// A format chosen by the user (`--chat-format`), whatever the template's markers say; the
    /// template still supplies a ChatML default system prompt.
    public init(format: ChatFormat, template: String?) {
        self.init(resolved: format, template: template, recognized: true)
    }

    private init(resolved: ChatFormat, template: String?, recognized: Bool) {
        format = resolved
        isRecognized = recognized
        if resolved == .chatml, let t = template {
            defaultSystemPrompt = ChatTemplate.extractDefaultSystemPrompt(fromChatML: t)
        } else {
            defaultSystemPrompt = nil
        }
    }

    /// Text that opens the assistant's turn.
    public var generationPrompt: String {
        switch format {
        case .chatml: return "<|im_start|>assistant\n"
        case .llama3: return "<|start_header_id|>assistant<|end_header_id|>\n\n"
        case .mistral: return ""
        }
    }

    /// Text that closes a turn (its token ends generation).
    public var endOfTurn: String {
        switch format {
        case .chatml: return "<|im_end|>"
        case .llama3: return "<|eot_id|>"
        case .mistral: return "</s>"
        }
    }

    /// One message, exactly as the template renders it.
    /// (Llama 3: the BOS token is not part of the text; the tokenizer adds it.)
    public func renderMessage(_ m: ChatMessage) -> String {
        switch format {
        case .chatml:
            return "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n"
        case .llama3:
            return "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + ChatTemplate.trim(m.content) + "<|eot_id|>"
        case .mistral:
            switch m.role {
            case "system": return m.content.isEmpty ? "" : "[SYSTEM_PROMPT]" + m.content + "[/SYSTEM_PROMPT]"
            case "assistant": return " " + ChatTemplate.trim(m.content) + "</s>"
            default: return "[INST] " + m.content + "[/INST]"
            }
        }
    }

    /// The messages with the default system prompt inserted first, when the template would do so.
    public func withDefaultSystemPrompt(_ messages: [ChatMessage]) -> [ChatMessage] {
        guard let system = defaultSystemPrompt, let first = messages.first, first.role != "system" else {
            return messages
        }
        return [.system(system)] + messages
    }

    /// The rendered conversation split per message (the default system prompt, when inserted, is
    /// its own first segment), then the generation prompt if requested. Joined, they equal `render`.
    /// `defaultSystemPrompt: false` leaves a conversation without a system message as it is.
    public func segments(_ messages: [ChatMessage], addGenerationPrompt: Bool, defaultSystemPrompt: Bool = true) -> [String] {
        var out = (defaultSystemPrompt ? withDefaultSystemPrompt(messages) : messages).map(renderMessage)
        if addGenerationPrompt { out.append(generationPrompt) }
        return out
    }

    /// The whole conversation, byte for byte what the Jinja template produces.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, defaultSystemPrompt: Bool = true) -> String {
        segments(messages, addGenerationPrompt: addGenerationPrompt, defaultSystemPrompt: defaultSystemPrompt).joined()
    }

    /// Finds a literal `<|im_start|>system\n...<|im_end|>` in a ChatML template (the system
    /// message it inserts when there is none), skipping ones built from variables.
    public static func extractDefaultSystemPrompt(fromChatML template: String) -> String? {
        let opener = "<|im_start|>system"
        var rest = template[...]
        while let r = rest.range(of: opener) {
            rest = rest[r.upperBound...]
            var body: Substring
            if rest.hasPrefix("\n") {
                body = rest.dropFirst()
            } else if rest.hasPrefix("\\n") {
                body = rest.dropFirst(2)
            } else {
                continue
            }
            guard let end = body.range(of: "<|im_end|>") else { continue }
            body = body[..<end.lowerBound]
            if body.isEmpty || body.contains(where: { "'\"{}".contains($0) }) { continue }
            return unescapeJinja(String(body))
        }
        return nil
    }

    static func unescapeJinja(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out = ""
        var escaping = false
        for c in s {
            if escaping {
                switch c {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                default: out.append(c)
                }
                escaping = false
            } else if c == "\\" {
                escaping = true
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// Jinja's `trim` (Python `str.strip()`).
    static func trim(_ s: String) -> String {
        func isSpace(_ u: Unicode.Scalar) -> Bool { u.properties.isWhitespace || (0x1C...0x1F).contains(u.value) }
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }),
              let last = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(scalars[first...last])
    }
}
