import ArgumentParser
import Distributed
import Foundation
import Models
import TensorCore
import Training

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate completions: greedy (temperature 0) or sampled, for one prompt or a JSONL of prompts.",
        discussion: """
        A single --prompt streams tokens to the terminal as they are produced. --prompts is \
        sharded over ranks and printed in input order; each prompt samples from its own seeded \
        stream, so the output is the same for any number of ranks. --num-return-sequences N \
        samples N completions per prompt, printed prompt by prompt (N rows per prompt; --json \
        tells them apart).
        """)

    @Option(help: "Model directory or preset.") var model: String
    @Option(help: "A LoRA adapter directory (peft format) to apply to --model, its base.") var adapter: String?
    @Option(help: "One prompt (raw text; special tokens such as <|im_start|> are recognised; the BOS the tokenizer adds, as Llama 3's, is put first).") var prompt: String?
    @Option(help: "JSONL with a \"prompt\" or \"messages\" field per line (a completion or final assistant turn is not needed, and ignored). Rows are tokenized as train tokenizes them: a prompt as text after the tokenizer's BOS, messages with the chat template's markers as special tokens and the contents as text.") var prompts: String?
    @Option(name: .customLong("chat-template"), help: "For --prompts' messages: auto (the model's own), chatml, llama3 or plain — the template the model was trained with.") var chatTemplate = "auto"
    @Option(Settings.maxNewTokens) var maxNewTokens = 32
    @Option(Settings.temperature) var temperature: Float = 0
    @Option(Settings.topK) var topK = 0
    @Option(Settings.topP) var topP: Float = 1
    @Option(name: .customLong("stop"), help: "Stop string (repeatable); generation ends before it. Escapes \\n, \\t, \\r and \\\\ are read as the character, so --stop '\\n' stops at a newline.") var stop: [String] = []
    @Option(Settings.numReturnSequences) var numReturnSequences = 1
    @Option(Settings.seed.named("seed", help: "Seed for sampled answers (temperature > 0).")) var seed: UInt64 = 0
    @Flag(help: "One JSON object per completion ({prompt, text, finish, ids}; with --num-return-sequences N > 1, {prompt, sample, text, finish, ids}, sample 0…N−1).") var json = false
    @Option(help: "Write the completions, as they would be printed, to FILE (whole or not at all) instead of printing them: under mpirun a failed write of standard output (a full disk behind `>`) is not reported, mpirun exits 0.") var out: String?
    @Option(Settings.threads) var threads: Int?
    @Option(Settings.watchdog) var watchdog = 300.0

    func validate() throws {
        if (prompt == nil) == (prompts == nil) { throw RecipeError("give exactly one of --prompt or --prompts") }
        try Settings.maxNewTokens.check(maxNewTokens)
        try Settings.temperature.check(temperature)
        try Settings.topK.check(topK)
        try Settings.topP.check(topP)
        try Settings.numReturnSequences.check(numReturnSequences)
        try Settings.threads.check(threads)
        try Settings.watchdog.check(watchdog)
        if stop.contains(where: \.isEmpty) { throw RecipeError("--stop: an empty stop string would end every generation at once") }
        if let bad = stop.first(where: { Self.unknownEscape($0) != nil }) {
            throw RecipeError("--stop \(RecipeError.quote(bad)): \\\(Self.unknownEscape(bad)!) is not an escape (\\n, \\t, \\r and \\\\ are; write a backslash as \\\\)")
        }
        // (--seed stays free: a sweep over temperatures keeps one seed, 0 included.)
        if temperature == 0, let (flag, _) = [("--top-k", topK != 0), ("--top-p", topP != 1)].first(where: { $0.1 }) {
            throw RecipeError("\(flag) acts on sampling, and --temperature 0 (the default) is greedy: give --temperature T > 0, or drop \(flag)")
        }
        // transformers refuses it too ("Greedy methods without beam search do not support
        // num_return_sequences different than 1"): N copies of the greedy answer.
        if numReturnSequences > 1 && temperature == 0 {
            throw RecipeError("--num-return-sequences \(numReturnSequences) at --temperature 0 would print the greedy answer \(numReturnSequences) times: give --temperature T > 0 to sample, or drop --num-return-sequences")
        }
        if prompt?.isEmpty == true { throw RecipeError("--prompt is empty: give the text the model continues") }
        if prompt != nil && chatTemplate != "auto" {
            throw RecipeError("--chat-template formats --prompts' messages; --prompt is raw text (write the template's markers into it)")
        }
    }

    /// The stop strings with `\n`, `\t`, `\r` and `\\` read as the characters (as llama.cpp's
    /// CLI does): a shell passes `--stop "\n"` as a backslash and an n, which no model writes.
    var stopStrings: [String] { stop.map(Self.unescape) }

    /// The character after the first backslash that starts no escape ("" for a trailing one).
    static func unknownEscape(_ s: String) -> String? {
        var escaped = false
        for c in s {
            if escaped {
                if !"ntr\\".contains(c) { return String(c) }
                escaped = false
            } else if c == "\\" { escaped = true }
        }
        return escaped ? "" : nil
    }

    static func unescape(_ s: String) -> String {
        var out = "", escaped = false
        for c in s {
            if escaped {
                switch c {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "\\": out.append("\\")
                default: out.append("\\"); out.append(c)   // not an escape (refused by validate)
                }
                escaped = false
            } else if c == "\\" { escaped = true } else { out.append(c) }
        }
        if escaped { out.append("\\") }
        return out
    }

    func run() throws {
        let comm = Runtime.start(threads: threads, watchdog: watchdog)
        SameInputs.check(settings: [("prompt", prompt ?? ""), ("prompts", prompts == nil ? "no" : "yes"), ("max-new-tokens", "\(maxNewTokens)"),
                                    ("temperature", "\(temperature)"), ("top-k", "\(topK)"), ("top-p", "\(topP)"),
                                    ("stop", stop.joined(separator: "\u{1}")), ("seed", "\(seed)"), ("json", "\(json)"),
                                    ("num-return-sequences", "\(numReturnSequences)"),
                                    ("chat-template", chatTemplate), ("adapter", adapter == nil ? "no" : "yes"), ("out", out == nil ? "no" : "yes")])
        Runtime.checkOutputFile(out, inputs: prompts.map { [("--prompts", $0)] } ?? [], model: model, adapter: adapter)
        let (m, tok) = Fatal.collective { try AdapterDirectory.loadModel(model, adapter: adapter) }
        SameInputs.check(Runtime.modelLabel(model, adapter: adapter), model: m, tokenizer: tok)
        Runtime.noteAdapter(model: model, adapter: adapter, loaded: m, comm: comm)
        Runtime.noteGenerationDefaults(m, label: model, sampling: temperature == 0
            ? "this run decodes greedily (--temperature 0); give --temperature, --top-p, --top-k to sample"
            : "this run samples at --temperature \(temperature), --top-p \(topP), --top-k \(topK)", comm: comm)
        // (text, where it came from: "--prompt" or FILE:LINE, token ids)
        let sourced: [(text: String, source: String, ids: [Int32])] = Fatal.collective {
            // As transformers' `tokenizer(text)`: special tokens recognised, and the BOS a
            // Llama-3 tokenizer's post-processor adds (which train, eval and score put first).
            if let prompt {
                let ids = tok.encode(prompt)
                return [(prompt, "--prompt", tok.bosId.map { ids.first == $0 ? ids : [$0] + ids } ?? ids)]
            }
            let template = try ChatTemplate.resolve(chatTemplate, tokenizer: tok, label: "--chat-template").template
            return try JSONLReader.read(path: prompts!, rows: .prompts).records.map { r in
                // As train, eval and GRPO tokenize a prompt row: the tokenizer's BOS, the text as
                // text; a conversation's template markers as special tokens, its contents as text
                // (a literal "<|im_end|>" in a message stays text and cannot close its turn).
                let ids = try ChatFormat.prompt(of: r, tokenizer: tok, template: template).ids
                if case .promptCompletion(let p, _) = r.record { return (p, r.source, ids) }
                return (tok.decode(ids), r.source, ids)
            }
        }
        if let prompts { SameInputs.check("--prompts \(prompts)", file: prompts) }
        if let prompts, chatTemplate != ChatTemplate.auto {
            Fatal.agree(ChatTemplateRecord.unusedTemplate("--chat-template \(chatTemplate)", in: prompts, rows: "prompt rows are text",
                                                          drop: "--chat-template", hasMessages: ChatTemplateRecord.hasMessages(prompts)))
        }
        if comm.isCoordinator, let prompts, ChatTemplateRecord.hasMessages(prompts) { Runtime.noteChatTemplate(chatTemplate, tokenizer: tok) }
        let texts = sourced.map(\.text)
        let ids = sourced.map(\.ids)
        if let i = ids.firstIndex(where: { $0.count >= m.maxSequenceLength }) {
            Fatal.agree("\(sourced[i].source): the prompt has \(ids[i].count) tokens; the model's context is \(m.contextDescription)")
        } else if let i = ids.firstIndex(where: { tok.holdsNoText($0[...]) }) {
            Fatal.agree("\(sourced[i].source): the prompt is empty (no tokens for the model to continue)")
        } else { Fatal.agree(nil) }
        let options = SamplingOptions(maxNewTokens: maxNewTokens, temperature: temperature, topK: topK, topP: topP,
                                      stopIds: Evaluator.stopIds(tok, model: m), stopStrings: stopStrings)
        if prompt != nil && !json && numReturnSequences == 1 && out == nil {
            // One prompt: rank 0 streams it; other ranks have nothing to do.
            if comm.isCoordinator { stream(m, tok, ids[0], text: texts[0], options: options) }
            Runtime.finish()
            return
        }
        // Completion k is sample k % n of prompt k / n, from its own stream: sample 0 keeps the
        // stream a single completion uses, so --num-return-sequences adds rows without
        // changing the first; the others are rank-invariant as it is.
        let n = numReturnSequences
        let gens = ShardedGeneration.generate(m, prompts: ids.flatMap { Array(repeating: $0, count: n) }, options: options,
                                              comm: comm, decodeText: { tok.decode($0) }) { k in
            RNG(seed: seed, stream: UInt64(k % n) << 32 | UInt64(k / n))
        }
        Fatal.agree(gens.firstIndex(where: \.nonFinite).map { k in
            Self.nonFiniteMessage(sourced[k / n].source, position: ids[k / n].count + gens[k].ids.count + 1)
        })
        var lines: [String] = []
        if comm.isCoordinator {
            noteContextLimit(gens.indices.filter { gens[$0].finish == .length && gens[$0].ids.count < maxNewTokens },
                             of: gens.count, model: m)
            for (k, g) in gens.enumerated() {
                let text = g.text ?? tok.decode(g.ids), prompt = texts[k / n]
                if json {
                    let sample: [(String, Any)] = n > 1 ? [("sample", k % n)] : []
                    lines.append(String(MetricsLog.json([("prompt", prompt)] + sample + [("text", text), ("finish", g.finish.rawValue)]).dropLast())
                                 + ", \"ids\": [\(g.ids.map(String.init).joined(separator: ", "))]}")
                } else {
                    lines.append(prompt + text)
                }
            }
        }
        if let out {
            Fatal.agree(comm.isCoordinator ? writeAtomically(lines.map { $0 + "\n" }.joined(), to: out) : nil, code: Fatal.Code.output)
        } else {
            for line in lines { print(line) }
        }
        Runtime.finish()
    }

    /// Generation ends at the model's context as at --max-new-tokens (finish "length", as
    /// transformers says), which silently gave shorter answers than asked for.
    func noteContextLimit(_ rows: [Int], of count: Int, model m: LanguageModel) {
        guard !rows.isEmpty else { return }
        let which = count == 1 ? "the generation" : "\(rows.count) of \(count) generations"
        StandardError.write("sft-dist: note: \(which) stopped at the model's context (\(m.maxSequenceLength) tokens, prompt included\(m.contextReason.map { "; " + $0 } ?? "")) before --max-new-tokens \(maxNewTokens)\n")
    }

    static func nonFiniteMessage(_ source: String, position: Int, end: String = "nothing written") -> String {
        "\(source): the model's logits for token \(position) are not finite: its weights give non-finite values (a run that diverged?); \(end)"
    }

    /// Prints tokens as they come, but only what is safe: never half a UTF-8 character, and
    /// never the last few characters that could still turn out to begin a stop string.
    func stream(_ m: LanguageModel, _ tok: Tokenizer, _ ids: [Int32], text: String, options: SamplingOptions) {
        var generated: [Int32] = [], shown = 0
        let holdBack = max(0, (stopStrings.map(\.count).max() ?? 0) - 1)
        // The prompt is printed with the first token: a model whose first logits are NaN
        // prints nothing, only the error.
        var promptShown = false
        func showPrompt() { if !promptShown { print(text, terminator: ""); fflush(stdout); promptShown = true } }
        let g = Generator.generate(m, prompts: [ids], options: options, rngs: [RNG(seed: seed, stream: 0)],
                                   decodeText: { tok.decode($0) }, onToken: { _, id in
            showPrompt()
            generated.append(id)
            // A token can complete a stop string and run past it (" NLA" for --stop A): the
            // generator then ends the text before the stop (SamplingOptions.stopCut); print no further.
            let decoded = tok.decode(generated)
            let cut = options.stopCut(in: decoded)
            let text = Array(cut.map { decoded[..<$0] } ?? decoded[...])
            var safe = cut == nil ? text.count - holdBack : text.count
            while safe > shown && text[safe - 1] == "\u{FFFD}" { safe -= 1 }
            if safe > shown { print(String(text[shown..<safe]), terminator: ""); fflush(stdout); shown = safe }
        })[0]
        if g.nonFinite {
            if promptShown { print("") }
            Fatal.fail(Self.nonFiniteMessage("--prompt", position: ids.count + g.ids.count + 1,
                                             end: promptShown ? "generation stopped there" : "nothing written"))
        }
        showPrompt()
        let final = Array(g.text ?? tok.decode(g.ids))
        print(shown < final.count ? String(final[shown...]) : "")
        fflush(stdout)
        noteContextLimit(g.finish == .length && g.ids.count < options.maxNewTokens ? [0] : [], of: 1, model: m)
    }
}
