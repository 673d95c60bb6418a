import Tokenizer
import XCTest

final class ChatTemplateTests: XCTestCase {
    /// Llama 3 Instruct's template (as shipped in its tokenizer_config.json).
    static let llama3Template = """
        {% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + \
        message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}\
        {% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}\
        {{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}
        """

    func testDetection() throws {
        let smol = try Fixtures.text("smollm2.chat_template.jinja")
        XCTAssertEqual(ChatFormat.detect(smol), .chatml)
        XCTAssertEqual(ChatFormat.detect(Self.llama3Template), .llama3)
        XCTAssertEqual(ChatFormat.detect(nil), .chatml)
        XCTAssertEqual(ChatFormat.detect("{{ messages }}"), .chatml)
        XCTAssertTrue(ChatTemplate(template: smol).isRecognized)
        XCTAssertFalse(ChatTemplate(template: nil).isRecognized)
        XCTAssertFalse(ChatTemplate(template: "{{ messages }}").isRecognized)
        XCTAssertEqual(ChatTemplate(template: Self.llama3Template).format, .llama3)
    }

    func testSmolLMDefaultSystemPrompt() throws {
        let t = ChatTemplate(template: try Fixtures.text("smollm2.chat_template.jinja"))
        XCTAssertEqual(t.defaultSystemPrompt, "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        XCTAssertNil(ChatTemplate(template: nil).defaultSystemPrompt)
        XCTAssertNil(ChatTemplate(template: Self.llama3Template).defaultSystemPrompt)
        // A system block built from a variable is not a default prompt; an escaped literal is.
        XCTAssertNil(ChatTemplate.extractDefaultSystemPrompt(
            fromChatML: "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"))
        XCTAssertEqual(ChatTemplate.extractDefaultSystemPrompt(
            fromChatML: "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{% else %}"
                + "{{ '<|im_start|>system\\nYou are Qwen.\\nBe kind.<|im_end|>\\n' }}"),
            "You are Qwen.\nBe kind.")
    }

    /// Expected strings are what the SmolLM2 Jinja template renders.
    func testChatMLRendering() throws {
        let t = ChatTemplate(template: try Fixtures.text("smollm2.chat_template.jinja"))
        let sys = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        XCTAssertEqual(t.render([.user("Hi")], addGenerationPrompt: true),
                       sys + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(t.render([.system("Be terse."), .user("Hi"), .assistant("Hello!"), .user("Bye")],
                                addGenerationPrompt: false),
                       "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                       + "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n")
        XCTAssertEqual(t.render([], addGenerationPrompt: true), "<|im_start|>assistant\n")
        XCTAssertEqual(t.render([.user("  spaces kept \n")], addGenerationPrompt: false),
                       sys + "<|im_start|>user\n  spaces kept \n<|im_end|>\n", "ChatML does not trim")
        XCTAssertEqual(t.renderMessage(.user("Q")), "<|im_start|>user\nQ<|im_end|>\n")
        XCTAssertEqual(t.generationPrompt, "<|im_start|>assistant\n")
        XCTAssertEqual(t.endOfTurn, "<|im_end|>")
        let segs = t.segments([.user("a"), .assistant("b")], addGenerationPrompt: true)
        XCTAssertEqual(segs, [sys, "<|im_start|>user\na<|im_end|>\n", "<|im_start|>assistant\nb<|im_end|>\n",
                              "<|im_start|>assistant\n"])
        XCTAssertEqual(segs.joined(), t.render([.user("a"), .assistant("b")], addGenerationPrompt: true))
    }

    func testLlama3Rendering() throws {
        let t = ChatTemplate(template: Self.llama3Template)
        XCTAssertEqual(t.render([.system("Be terse."), .user("  Hi there \n")], addGenerationPrompt: true),
                       "<|start_header_id|>system<|end_header_id|>\n\nBe terse.<|eot_id|>"
                       + "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                       + "<|start_header_id|>assistant<|end_header_id|>\n\n")
        XCTAssertEqual(t.renderMessage(.assistant("\tok\n")), "<|start_header_id|>assistant<|end_header_id|>\n\nok<|eot_id|>")
        XCTAssertEqual(t.render([.user("x")], addGenerationPrompt: false),
                       "<|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>", "no default system prompt")
        XCTAssertEqual(t.endOfTurn, "<|eot_id|>")
    }

    func testModelTemplateIsDetected() throws {
        let tok = try TestModel.tokenizer()
        XCTAssertEqual(tok.chatTemplateSource, try Fixtures.text("smollm2.chat_template.jinja"))
        XCTAssertEqual(tok.chatTemplate, ChatTemplate(template: tok.chatTemplateSource))
        // The end-of-turn marker is one end-of-generation token.
        let ids = tok.encode(tok.chatTemplate.endOfTurn)
        XCTAssertEqual(ids.count, 1)
        XCTAssertTrue(tok.isEndOfGeneration(ids[0]))
    }

    /// Qwen2.5's template (abridged from its tokenizer_config.json: the branch without tools).
    static let qwenTemplate = """
        {%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\
        {%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\
        {%- endif %}{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\
        {%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
        """
    /// Mistral-7B-Instruct-v0.3's template, abridged (no tools).
    static let mistralTemplate = """
        {{- bos_token }}{%- for message in loop_messages %}{%- if message['role'] == 'user' %}\
        {{- '[INST] ' + message['content'] + '[/INST]' }}{%- elif message['role'] == 'assistant' %}\
        {{- ' ' + message['content']|trim + eos_token}}{%- endif %}{%- endfor %}
        """

    func testFamiliesAreDetectedByTheirMarkers() {
        XCTAssertEqual(ChatFormat.recognize(Self.llama3Template), .llama3)
        XCTAssertEqual(ChatFormat.recognize(Self.qwenTemplate), .chatml)
        XCTAssertEqual(ChatFormat.recognize(Self.mistralTemplate), .mistral)
        XCTAssertNil(ChatFormat.recognize("{{ messages }}"))
        XCTAssertNil(ChatFormat.recognize(nil))
        XCTAssertTrue(ChatTemplate(template: Self.mistralTemplate).isRecognized)
    }

    /// Default system prompts follow each family: Qwen's template inserts its own; Llama 3 and
    /// Mistral insert none.
    func testDefaultSystemPromptsFollowTheFamily() {
        XCTAssertEqual(ChatTemplate(template: Self.qwenTemplate).defaultSystemPrompt,
                       "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        XCTAssertNil(ChatTemplate(template: Self.llama3Template).defaultSystemPrompt)
        XCTAssertNil(ChatTemplate(template: Self.mistralTemplate).defaultSystemPrompt)
        XCTAssertEqual(ChatTemplate(template: Self.qwenTemplate).render([.user("Hi")], addGenerationPrompt: true),
                       "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                       + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    }

    /// What Mistral v0.3's template renders (BOS comes from the tokenizer).
    func testMistralRendering() {
        let t = ChatTemplate(template: Self.mistralTemplate)
        XCTAssertEqual(t.format, .mistral)
        XCTAssertEqual(t.render([.user("Hi"), .assistant("Hello!"), .user("Bye")], addGenerationPrompt: true),
                       "[INST] Hi[/INST] Hello!</s>[INST] Bye[/INST]")
        XCTAssertEqual(t.generationPrompt, "")
        XCTAssertEqual(t.endOfTurn, "</s>")
        XCTAssertEqual(t.renderMessage(.system("Be terse.")), "[SYSTEM_PROMPT]Be terse.[/SYSTEM_PROMPT]")
        XCTAssertEqual(t.renderMessage(.system("")), "")
    }

    /// `--chat-format` overrides the detection; a ChatML override keeps the template's default prompt.
    func testAChosenFormatOverridesTheDetection() {
        let forced = ChatTemplate(format: .llama3, template: Self.qwenTemplate)
        XCTAssertEqual(forced.format, .llama3)
        XCTAssertNil(forced.defaultSystemPrompt)
        let chatml = ChatTemplate(format: .chatml, template: "{{ messages }}")
        XCTAssertEqual(chatml.format, .chatml)
        XCTAssertTrue(chatml.isRecognized)
        XCTAssertEqual(ChatTemplate(format: .chatml, template: Self.qwenTemplate).defaultSystemPrompt,
                       "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
    }
}
