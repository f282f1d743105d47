import Foundation
import Models

/// A prompt rollouts answer: its tokens (what the model continues), the reference answer the
/// scorers compare with (nil when the row has none), and the row it came from (`file:line`).
public struct RolloutPrompt: Sendable, Equatable {
    public var ids: [Int32]
    public var reference: String?
    public var source: String
    /// The training row this prompt was taken from (`--data` prompts), for its demonstration.
    public var example: Int?
    /// a2po's V*(x), once stage 1 estimated it (`OptimalValues`).
    public var optimalValue: Float?
    /// The row's other fields, for an external scorer (`RowColumns`); nil otherwise.
    public var columns: String?
    public init(ids: [Int32], reference: String?, source: String) {
        self.ids = ids; self.reference = reference; self.source = source
    }
}

/// Where rollout prompts come from, and the limits they must fit.
public enum RolloutPrompts {
    /// The prompts of the training rows (`--data`): each row's prompt part, its completion kept
    /// as the reference (and, for mixing objectives, as a demonstration).
    public static func fromExamples(_ examples: [Example]) -> [RolloutPrompt] {
        examples.enumerated().map { i, e in
            var p = RolloutPrompt(ids: Array(e.ids[0..<e.promptLength]), reference: e.answer, source: e.source)
            p.example = i
            return p
        }
    }

    /// `--prompts FILE`: rows with a prompt (`{"prompt"}`, a completion optional and kept as the
    /// reference) or messages (a final assistant turn optional, kept as the reference), tokenized
    /// exactly as training rows are; with `skipBadLines` a bad line is skipped and counted, as
    /// `--data`'s are.
    public static func fromFile(_ path: String, tokenizer: Tokenizer, template: ChatTemplate,
                                skipBadLines: Bool = false) throws -> (prompts: [RolloutPrompt], skipped: [SkippedLine]) {
        let read = try JSONLReader.read(path: path, skipBadLines: skipBadLines, rows: .prompts)
        if read.records.isEmpty {
            throw DataError(path: path, read.skipped.first.map { "no prompts (skipped \(read.skipped.count) bad line\(read.skipped.count == 1 ? "" : "s") (first: \($0)))" } ?? "no prompts")
        }
        return (try read.records.map { row in
            let (ids, reference) = try ChatFormat.prompt(of: row, tokenizer: tokenizer, template: template)
            return RolloutPrompt(ids: ids, reference: reference, source: row.source)
        }, read.skipped)
    }

    /// A note for the log when prompts are longer than `limit` (the context minus
    /// max_completion_length, below max_length, so the data's own length note does not see them),
    /// and when bad lines were skipped; nil when neither.
    public static func note(_ raw: [RolloutPrompt], limit: Int, truncation: Truncation, origin: String, skipped: [SkippedLine]) -> String? {
        let over = raw.filter { $0.ids.count > limit }.count
        var parts: [String] = []
        if over > 0 {
            let what = truncation == .drop ? "left out" : "cut (\(truncation.rawValue))"
            parts.append("\(over) of \(raw.count) prompts in \(origin) are longer than \(limit) tokens (the context minus max_completion_length) and were \(what)")
        }
        if let first = skipped.first { parts.append("skipped \(skipped.count) bad line\(skipped.count == 1 ? "" : "s") of \(origin) (first: \(first))") }
        return parts.isEmpty ? nil : "note: " + parts.joined(separator: "; ")
    }

    /// Prompts fitted to `limit` tokens (the context minus `max_completion_length`) as
    /// `--truncation` says: `right` keeps the first tokens, `left` the last, `drop` leaves the
    /// prompt out. An empty result is an error.
    public static func fit(_ prompts: [RolloutPrompt], limit: Int, truncation: Truncation, origin: String) throws -> [RolloutPrompt] {
        let fitted: [RolloutPrompt] = prompts.compactMap { p in
            guard p.ids.count > limit else { return p }
            var q = p
            switch truncation {
            case .drop: return nil
            case .right: q.ids = Array(p.ids.prefix(limit))
            case .left: q.ids = Array(p.ids.suffix(limit))
            }
            return q
        }
        if fitted.isEmpty {
            throw DataError("\(origin): every prompt is longer than \(limit) tokens (the context minus max_completion_length) and truncation is drop")
        }
        return fitted
    }

    /// The task reward reads the rule from the prompt's text, so a prompt cut to fit (`--truncation
    /// left|right`) that no longer reads as a task is refused at start-up, naming the first,
    /// rather than at the step that first samples it.
    public static func checkCutPrompts(_ raw: [RolloutPrompt], limit: Int, truncation: Truncation,
                                       rewards: [RewardFunction], tokenizer: Tokenizer, maxLengthBinds: Bool = true,
                                       contextReason: String? = nil) throws {
        guard truncation != .drop, let f = rewards.first(where: { $0.scorer is TaskScorer }) else { return }
        for p in raw where p.ids.count > limit {
            let cut = truncation == .right ? Array(p.ids.prefix(limit)) : Array(p.ids.suffix(limit))
            guard TaskScorer.answer(toPromptEnding: tokenizer.decode(cut)) == nil else { continue }
            // Raising --max-length helps only below the model's context (it was advised at 1000 over a 64-token context).
            let advice = maxLengthBinds ? "raise --max-length, lower --max-completion-length" : "lower --max-completion-length (the model's context is the limit\(contextReason.map { ": " + $0 } ?? ""))"
            throw DataError("\(p.source): the prompt's \(p.ids.count) tokens are cut to \(limit) (the context minus max_completion_length), and reward \(f.name) cannot read a cut task prompt; \(advice) or give --truncation drop")
        }
    }

    /// Prompts longer than their room (the context minus max_completion_length) with
    /// `--truncation` not given: refused, where its default (right) cut them silently — a cut on
    /// the right takes off a prompt's end, where a chat template puts the generation prompt
    /// (`<|im_start|>assistant`), and every rollout of it came out empty. TRL's GRPOTrainer and
    /// RLOOTrainer cut prompts on the left (truncation_side="left"); given, any setting is taken.
    public static func checkDefaultCut(_ raw: [RolloutPrompt], limit: Int, truncationGiven: Bool, origin: String) throws {
        guard !truncationGiven, let p = raw.first(where: { $0.ids.count > limit }) else { return }
        let over = raw.filter { $0.ids.count > limit }.count
        throw DataError("\(p.source): \(over) of \(raw.count) prompts in \(origin) are longer than \(limit) tokens (the context minus max_completion_length; this one \(p.ids.count)), and --truncation is not given: its default, right, would cut their ends, where a chat template puts the generation prompt; give --truncation left (keeps the end, as TRL's GRPOTrainer cuts prompts), right or drop")
    }

    /// The task reward reads the rule from the end of the text the model sees, so every prompt
    /// must end with a built-in task prompt: a `{messages}` row or a chat template wraps it
    /// (`…<|im_start|>assistant`), and each rollout's scoring failed at the first step.
    public static func checkTaskPrompts(_ prompts: [RolloutPrompt], rewards: [RewardFunction], tokenizer: Tokenizer) throws {
        guard let f = rewards.first(where: { $0.scorer is TaskScorer }) else { return }
        for p in prompts {
            let text = tokenizer.decode(p.ids)
            guard TaskScorer.answer(toPromptEnding: text) == nil else { continue }
            // A plain {prompt} row of another task was told a chat template wrapped it.
            let special = Set(tokenizer.specialTokens.values)
            let why = p.ids.dropFirst(p.ids.first == tokenizer.bosId ? 1 : 0).contains(where: special.contains)
                ? "a chat template or {messages} row wraps it: give {prompt} rows, which no template wraps, or another reward"
                : "not a built-in task's prompt: give make-data's tasks, or another reward"
            throw DataError("\(p.source): reward \(f.name) reads a built-in task prompt (make-data) at the end of what the model sees, and this prompt ends with \(RecipeError.quote(String(text.suffix(30)))) (\(why))")
        }
    }

    /// A prompt of no token gives the model nothing to continue (its rollouts came out empty and
    /// were logged as cut at the limit, a review found): refused by its line.
    public static func checkNonEmpty(_ prompts: [RolloutPrompt]) throws {
        guard let p = prompts.first(where: { $0.ids.isEmpty }) else { return }
        throw DataError("\(p.source): the prompt is empty (no token for the model to continue)")
    }

    /// A reward function that compares with a reference needs one on every prompt.
    public static func checkReferences(_ prompts: [RolloutPrompt], rewards: [RewardFunction]) throws {
        guard let f = rewards.first(where: \.needsReference), let p = prompts.first(where: { $0.reference == nil }) else { return }
        throw DataError("\(p.source): reward \(f.name) needs a reference answer, and this prompt has none")
    }

    /// The token that ends a completion in this data (what the model learnt to stop with):
    /// the last trained token of the first example with one — end-of-text for prompt/completion
    /// rows, `<|im_end|>` / `<|eot_id|>` for chat turns. When every row is only a prompt (grpo's
    /// prompt-only data), the token `template` ends an assistant turn with if the rows are
    /// conversations (`conversations`), else end-of-text: prompt-only chat rows stopped at
    /// end-of-text alone and ran to max_completion_length (a hostile review). One id, so a
    /// rollout that stopped can carry it as its final trained token.
    public static func stopId(_ examples: [Example], tokenizer: Tokenizer, template: ChatTemplate = .chatml, conversations: Bool = false) -> Int32 {
        if let e = examples.first(where: { !$0.isPromptOnly }), let last = e.lossMask.lastIndex(of: 1) { return e.ids[last] }
        let turn = [ChatMessage(role: .user, content: "x"), ChatMessage(role: .assistant, content: "y")]
        guard conversations, let probe = try? ChatFormat.conversation(turn, source: "", tokenizer: tokenizer, template: template),
              let last = probe.lossMask.lastIndex(of: 1) else { return tokenizer.eosId }
        return probe.ids[last]
    }

    /// `stopId` of a run's training rows.
    static func stopId(_ setup: RunSetup) -> Int32 {
        let template = (try? ChatTemplate.resolve(setup.recipe.chatTemplate, tokenizer: setup.tokenizer).template) ?? .chatml
        return stopId(setup.train.examples, tokenizer: setup.tokenizer, template: template, conversations: setup.train.report.conversations > 0)
    }
}
