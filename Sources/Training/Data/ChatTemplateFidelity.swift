import Foundation

/// What a template recognised as `chatml` or `llama3` by its control tokens writes otherwise than
/// the layout sft-dist lays conversations out with. Recognition looks at the tokens only, and
/// templates of the same family differ: a `| trim` or `| upper` on a turn, no newline after
/// `<|im_end|>`, a `bos_token` before the first turn. sft-dist does not run Jinja, so it cannot
/// write what such a template writes; it says so on the `chat template:` line instead of laying
/// conversations out unlike `apply_chat_template` without a word. It reads expressions, not
/// renderings: a turn written in several tags or as raw text is said though it renders alike,
/// and a difference in one branch only (a `| trim` on assistant turns alone) is not seen.
extension ChatTemplate {
    /// One phrase per difference found (empty: the turns are written as the layout writes them).
    /// `bos`: what the template's `bos_token` writes (`Tokenizer.templateBOS`; nil writes nothing).
    static func differences(from jinja: String, layout: Layout, bos: String?) -> [String] {
        guard let tags = JinjaTag.scan(jinja) else { return [] }  // said elsewhere: blocks it cannot follow
        var found: [String] = []
        switch layout {
        case .chatml:
            // Qwen2's, Qwen2.5's, SmolLM2's, Qwen3's and plain ChatML's turn, with `content` for
            // Qwen3's variable (its reasoning handled by ThinkingReplies).
            let turn = ["'<|im_start|>'", "message['role']", "'\\n'", "message['content']", "'<|im_end|>\\n'"]
            let outputs = tags.filter { $0.kind == .output }
            let turnTags = outputs.filter { t in
                let terms = terms(t)
                return terms == turn || terms == turn.enumerated().map { $0.offset == 3 ? "content" : $0.element }
            }
            if turnTags.isEmpty {
                found.append("its turns are not written as '<|im_start|>' + role + '\\n' + content + '<|im_end|>' + '\\n' (the chatml layout's)")
            } else if !turnTags.contains(where: inMessagesLoop) {
                found.append("its turns are written by a loop over another list than messages (a system message dropped or moved)")
            }
            // Outside the loop over turns, only system turns (`'<|im_start|>system…'`), the
            // generation prompt and the tools branch (transformers passes tools=None) are written.
            let outside = outputs.first { t in
                let first = terms(t).first ?? ""
                return !t.frames.contains { $0.keyword == "for" || $0.condition.contains("tools") || $0.condition.contains("add_generation_prompt") }
                    && !first.hasPrefix("'<|im_start|>system") && first != "''"
            }
            if let t = outside, let first = terms(t).first, !first.contains("bos_token") {
                found.append("it writes \(first.count > 40 ? String(first.prefix(40)) + "…" : first) outside its turns")
            }
        case .llama3:
            // Llama 3's turn trims the content (`message['content'] | trim`), as the layout does.
            if !tags.contains(where: { source($0).contains("message['content']|trim") }) {
                found.append("its turns' content is not trimmed (`| trim`), where the llama3 layout trims it")
            }
            // Llama 3's templates write bos_token first (3.0's in a `set`); one that writes
            // neither it nor <|begin_of_text|> (in a literal, or as text outside the tags, which
            // the scan does not return) starts without it, where the layout writes it.
            let writesBOS = jinja.contains("<|begin_of_text|>") || tags.contains { t in bos?.isEmpty == false && t.code.contains("bos_token") }
            if !writesBOS { found.append("it writes no \(bos == nil ? "<|begin_of_text|>" : "bos_token") before its first turn, where the llama3 layout writes <|begin_of_text|>") }
        case .plain:
            break
        }
        // Llama 3's templates write bos_token first, as the llama3 layout writes <|begin_of_text|>;
        // where the tokenizer names no BOS, bos_token writes nothing.
        if layout != .llama3, bos?.isEmpty == false, tags.contains(where: { $0.kind == .output && source($0).contains("bos_token") }) {
            found.append("it writes bos_token, which the \(layout.rawValue) layout does not")
        }
        return found
    }

    /// An output tag as its `+`-joined terms, literals quoted and adjacent literals joined:
    /// `'<|im_start|>' + message.role + '\n'` → `'<|im_start|>'`, `message['role']`, `'\n'`.
    /// (Split on the code, where each literal is `§`, so a `+` inside one splits nothing; the
    /// code is normalised before the literals go back in, so their text is never touched.)
    static func terms(_ tag: JinjaTag) -> [String] {
        var literals = tag.literals.makeIterator()
        var out: [String] = [], pending: String? = nil
        for term in tag.code.split(separator: "+", omittingEmptySubsequences: false) {
            if term == "§" {
                guard let next = literals.next(), let text = next else { return [] }
                pending = (pending ?? "") + text
                continue
            }
            if let p = pending { out.append(JinjaStringLiterals.quote(p)); pending = nil }
            var filled = ""
            for c in normalised(term, loopVariable: loopVariable(tag)) {
                guard c == "§" else { filled.append(c); continue }
                guard let next = literals.next(), let text = next else { return [] }
                filled += JinjaStringLiterals.quote(text)
            }
            out.append(filled)
        }
        if let p = pending { out.append(JinjaStringLiterals.quote(p)) }
        return out
    }

    /// The tag's code with its literals written back, normalised (`message['content']|trim`).
    static func source(_ tag: JinjaTag) -> String {
        terms(tag).joined(separator: "+")
    }

    /// A term of code (literals as `§`): `x.role` as `x['role']` (`JinjaTag.normalised`), `x.content`
    /// likewise, and the loop's variable (`for m in messages`) as `message` where it is a whole name.
    static func normalised(_ code: Substring, loopVariable: String?) -> String {
        let c = JinjaTag.normalised(code).replacingOccurrences(of: ".content", with: "['content']")
        guard let v = loopVariable, v != "message", c.hasPrefix(v + "[") else { return c }
        return "message" + c.dropFirst(v.count)
    }

    /// The variable of the innermost `for … in messages` around the tag.
    static func loopVariable(_ tag: JinjaTag) -> String? {
        tag.frames.last { $0.keyword == "for" && $0.condition.hasSuffix("inmessages") }.map { String($0.condition.dropLast("inmessages".count)) }
    }

    static func inMessagesLoop(_ tag: JinjaTag) -> Bool { loopVariable(tag) != nil }
}
