import Foundation
import Models

/// How a `messages` record is laid out as text. Prompt/completion records ignore the
/// template: they are concatenated as they are, because their text already is the format.
///
/// A small closed set of layouts rather than a user-supplied template string: each must also
/// know which tokens are trained, which a string template cannot say. A model's own
/// tokenizer_config.json template is mapped onto a layout by `ChatTemplate.resolve`, with the
/// one thing of it that varies between models of a family: the system turn it writes when a
/// conversation has none (`ChatTemplateDefaults.swift`).
public struct ChatTemplate: Sendable, Hashable {
    public enum Layout: String, Sendable, CaseIterable {
        /// `<|im_start|>{role}\n{content}<|im_end|>\n` per message (Qwen, SmolLM2, many SFT sets).
        /// Assistant content and its `<|im_end|>` are trained; no `<|endoftext|>` is added,
        /// since `<|im_end|>` is what ends a turn at generation time.
        case chatml
        /// `{role}: {content}\n` per message, then `<|endoftext|>`. Assistant content and its
        /// newline are trained, and the final `<|endoftext|>` when the last turn is the
        /// assistant's. For tokenizers without chat specials.
        case plain
        /// Llama-3 (Meta-Llama-3-Instruct's tokenizer_config.json template): `<|begin_of_text|>`,
        /// then per message `<|start_header_id|>{role}<|end_header_id|>\n\n{content | trim}<|eot_id|>`.
        /// Assistant content and its `<|eot_id|>` are trained.
        case llama3
    }

    public let layout: Layout
    /// The system message a conversation that does not start with one gets, as the model's own
    /// template writes it (Qwen2's "You are a helpful assistant.", Qwen2.5's "You are Qwen, …",
    /// SmolLM2's): transformers' `apply_chat_template`, and so TRL and every server, puts it
    /// there, so training without it would teach a prompt the model never sees. nil: none.
    public let defaultSystem: String?
    /// Llama 3.1's and 3.2's system turn, which their templates always write: the knowledge
    /// cut-off and a date, then the conversation's own system message. nil: none (Llama 3).
    public let dateHeader: Llama3DateHeader?

    /// Qwen3's reasoning blocks in ChatML assistant turns (`ThinkingReplies.swift`).
    public let thinking: Bool

    public init(_ layout: Layout, defaultSystem: String? = nil, dateHeader: Llama3DateHeader? = nil, thinking: Bool = false) {
        self.layout = layout
        self.defaultSystem = defaultSystem
        self.dateHeader = dateHeader
        self.thinking = thinking
    }

    /// The text of message `index` of `laidOut`'s result after its ChatML header: with
    /// `thinking`, an assistant turn as Qwen3's template writes it; else the content.
    func chatMLContent(_ messages: [ChatMessage], _ index: Int, lastQuery: Int) -> String {
        guard thinking, messages[index].role == .assistant else { return messages[index].content }
        return ThinkingReplies.reply(messages, index, lastQuery: lastQuery)
    }

    /// The reference answer of a conversation whose last assistant turn is `message`: its
    /// reply without reasoning under `thinking`.
    func answer(_ message: ChatMessage) -> String { thinking ? ThinkingReplies.parts(message).reply : message.content }

    public static let chatml = ChatTemplate(.chatml)
    public static let plain = ChatTemplate(.plain)
    public static let llama3 = ChatTemplate(.llama3)
    /// The built-in templates, without default system messages.
    public static var allCases: [ChatTemplate] { Layout.allCases.map { ChatTemplate($0) } }

    /// The name `--chat-template` takes.
    public var rawValue: String { layout.rawValue }
    public init?(rawValue: String) {
        guard let layout = Layout(rawValue: rawValue) else { return nil }
        self.init(layout)
    }

    /// The conversation as the template lays it out: with `defaultSystem` first when it does
    /// not start with a system message (as Qwen2.5's `messages[0]['role'] == 'system'` test);
    /// with `dateHeader`, a first system message holding the header and the conversation's own
    /// system message trimmed — text the layout must not trim again (`llama3Content`).
    public func laidOut(_ messages: [ChatMessage]) -> [ChatMessage] {
        let hasSystem = messages.first?.role == .system
        if let dateHeader {
            let own = hasSystem ? ChatFormat.jinjaTrim(messages[0].content) : ""
            return [ChatMessage(role: .system, content: dateHeader.text + own)] + messages.dropFirst(hasSystem ? 1 : 0)
        }
        guard let defaultSystem, !hasSystem else { return messages }
        return [ChatMessage(role: .system, content: defaultSystem)] + messages
    }

    /// Llama 3's text of message `index` of `laidOut`'s result: its content trimmed (the
    /// template's `| trim`), but for the system turn `laidOut` wrote whole with `dateHeader`.
    func llama3Content(_ messages: [ChatMessage], _ index: Int) -> String {
        index == 0 && dateHeader != nil ? messages[0].content : ChatFormat.jinjaTrim(messages[index].content)
    }
}

/// Turns parsed records into tokenized `Example`s with loss masks.
///
/// Every piece of user-supplied text goes through `encodePlain`, and template tokens are
/// inserted by id: a dataset line containing the literal text `<|im_end|>` must not be able
/// to end a turn early or fake an assistant reply.
public enum ChatFormat {
    public static func example(from record: SourcedRecord, tokenizer: any Tokenizer,
                               template: ChatTemplate = .chatml) throws -> Example {
        switch record.record {
        case .promptCompletion(let prompt, let completion):
            return promptCompletion(prompt: prompt, completion: completion, source: record.source,
                                    tokenizer: tokenizer)
        case .messages(let messages):
            return try conversation(messages, source: record.source, tokenizer: tokenizer, template: template)
        case .promptedConversation(let prompt, let completion):
            // The mask of a {messages} row; LossScope.apply narrows it to the completion.
            return try conversation(prompt + [completion], source: record.source, tokenizer: tokenizer, template: template)
        case .text(let text):
            return plainText(text, source: record.source, tokenizer: tokenizer)
        }
    }

    /// ids = [bos if the tokenizer adds one] + encode(text) + [eos], every token trained, as TRL
    /// tokenizes a `text` row: `tokenizer(text + eos_token)`, so special-token strings in the
    /// text are special tokens (text rows are often transcripts a template already rendered,
    /// `<|im_start|>user…`), and no second end token follows a text that ends with one. Unlike
    /// prompt/completion rows, no turn structure rests on the text, so nothing can be forged.
    /// A text that starts with the BOS string does not get a second BOS (as `generate` does).
    /// No prompt and no reference answer: such rows are scored for loss, never generated from.
    public static func plainText(_ text: String, source: String, tokenizer: any Tokenizer) -> Example {
        let body = tokenizer.encode(text)
        let bos = tokenizer.bosId.flatMap { body.first == $0 ? nil : [$0] } ?? []
        let ids = bos + body + (body.last == tokenizer.eosId ? [] : [tokenizer.eosId])
        return Example(ids: ids, lossMask: [0] + [UInt8](repeating: 1, count: ids.count - 1),
                       promptLength: bos.count, answer: nil, source: source)
    }

    /// ids = [bos if the tokenizer adds one] + encodePlain(prompt) + encodePlain(completion) + [eos];
    /// loss on completion + eos.
    public static func promptCompletion(prompt: String, completion: String, source: String,
                                        tokenizer: any Tokenizer) -> Example {
        let promptIds = (tokenizer.bosId.map { [$0] } ?? []) + tokenizer.encodePlain(prompt)
        let completionIds = tokenizer.encodePlain(completion) + [tokenizer.eosId]
        return Example(ids: promptIds + completionIds,
                       lossMask: [UInt8](repeating: 0, count: promptIds.count)
                           + [UInt8](repeating: 1, count: completionIds.count),
                       promptLength: promptIds.count, answer: completion, source: source)
    }

    /// promptLength ends right after the last assistant turn's header, so generation
    /// starts where the reference answer (the last assistant content) starts.
    public static func conversation(_ messages: [ChatMessage], source: String, tokenizer: any Tokenizer,
                                    template: ChatTemplate = .chatml) throws -> Example {
        let messages = template.laidOut(messages)
        guard let lastAssistant = messages.lastIndex(where: { $0.role == .assistant }) else {
            throw DataError("\(source): \"messages\" has no assistant turn")
        }
        var builder = MaskedTokens()
        var promptLength = 0
        switch template.layout {
        case .chatml:
            let imStart = try special("<|im_start|>", of: tokenizer, template: template, source: source)
            let imEnd = try special("<|im_end|>", of: tokenizer, template: template, source: source)
            let lastQuery = ThinkingReplies.lastQueryIndex(messages)
            for (index, message) in messages.enumerated() {
                let trained = message.role == .assistant
                builder.append([imStart] + tokenizer.encodePlain(message.role.rawValue + "\n"), trained: false)
                if index == lastAssistant { promptLength = builder.ids.count }
                let content = template.chatMLContent(messages, index, lastQuery: lastQuery)
                builder.append(tokenizer.encodePlain(content) + [imEnd], trained: trained)
                builder.append(tokenizer.encodePlain("\n"), trained: false)
            }
        case .plain:
            for (index, message) in messages.enumerated() {
                let trained = message.role == .assistant
                builder.append(tokenizer.encodePlain(message.role.rawValue + ": "), trained: false)
                if index == lastAssistant { promptLength = builder.ids.count }
                builder.append(tokenizer.encodePlain(message.content + "\n"), trained: trained)
            }
            builder.append([tokenizer.eosId], trained: messages.last?.role == .assistant)
        case .llama3:
            // The template's text pieces are tokenized one by one; HF tokenizes the rendered string,
            // which gives the same ids because specials split it and content is trimmed.
            let header = try special("<|start_header_id|>", of: tokenizer, template: template, source: source)
            let endHeader = try special("<|end_header_id|>", of: tokenizer, template: template, source: source)
            let eot = try special("<|eot_id|>", of: tokenizer, template: template, source: source)
            let bos = try tokenizer.bosId ?? special("<|begin_of_text|>", of: tokenizer, template: template, source: source)
            builder.append([bos], trained: false)
            for (index, message) in messages.enumerated() {
                let trained = message.role == .assistant
                builder.append([header] + tokenizer.encodePlain(message.role.rawValue) + [endHeader]
                               + tokenizer.encodePlain("\n\n"), trained: false)
                if index == lastAssistant { promptLength = builder.ids.count }
                let content = template.llama3Content(messages, index)
                builder.append(tokenizer.encodePlain(content) + [eot], trained: trained)
            }
        }
        return Example(ids: builder.ids, lossMask: builder.mask, promptLength: promptLength,
                       answer: template.answer(messages[lastAssistant]), source: source)
    }

    /// Jinja's `trim` as transformers runs it: Python's `str.strip()`, which removes the code
    /// points `str.isspace()` holds for — the Unicode White_Space characters and the separators
    /// U+001C–U+001F, not U+200B (Foundation's `.whitespacesAndNewlines` differs in both).
    public static func jinjaTrim(_ s: String) -> String {
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isPythonSpace($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !isPythonSpace($0) })!
        return String(scalars[first...last])
    }

    /// `[c for c in range(0x110000) if chr(c).isspace()]` in Python 3.11.
    static func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    private static func special(_ text: String, of tokenizer: any Tokenizer, template: ChatTemplate,
                                source: String) throws -> Int32 {
        guard let id = tokenizer.specialTokenId(text) else {
            throw DataError("\(source): the tokenizer has no \(text) token, which the \(template.rawValue) template needs")
        }
        return id
    }
}

/// Ids and their loss mask grown together, so they cannot drift apart.
private struct MaskedTokens {
    var ids: [Int32] = []
    var mask: [UInt8] = []

    mutating func append(_ tokens: [Int32], trained: Bool) {
        ids += tokens
        mask += [UInt8](repeating: trained ? 1 : 0, count: tokens.count)
    }
}
