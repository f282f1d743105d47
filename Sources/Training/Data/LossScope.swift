/// Which tokens of a row the loss trains, under TRL's names (`SFTConfig.completion_only_loss`,
/// `SFTConfig.assistant_only_loss`).
///
/// The defaults train the answer only: the completion of a `{prompt, completion}` row, the
/// assistant turns of a `{messages}` row. Turned off, a row trains on every token it has — the
/// prompt, the system and user turns and the template's own tokens too — as TRL does with
/// `completion_only_loss=False` and with its default `assistant_only_loss=False`. Only the mask
/// changes: ids, `promptLength` (where generation starts) and the reference answer stay.
public struct LossScope: Sendable, Equatable {
    /// `{prompt, completion}` rows: loss on the completion (and its end token) only.
    public var completionOnly: Bool
    /// `{messages}` rows: loss on the assistant turns only.
    public var assistantOnly: Bool

    public init(completionOnly: Bool = true, assistantOnly: Bool = true) {
        self.completionOnly = completionOnly
        self.assistantOnly = assistantOnly
    }

    public static let answersOnly = LossScope()

    /// `example` as `record` gives it, with every position trained when this scope says so.
    /// Position 0 stays untrained: nothing precedes it to predict it from.
    func apply(_ example: Example, record: DataRecord) -> Example {
        let everyToken: Bool
        switch record {
        case .promptCompletion: everyToken = !completionOnly
        case .messages: everyToken = !assistantOnly
        case .text: return example   // every token already
        case .promptedConversation:
            // TRL's mask: (completion_only_loss ? every token after the prompt : all) times
            // (assistant_only_loss ? the assistant turns' tokens : all). `example` has the
            // assistant mask, and `promptLength` ends the prompt (PromptedConversation.swift).
            var e = example
            for i in e.ids.indices {
                let inCompletion = i >= e.promptLength
                e.lossMask[i] = i == 0 ? 0 : (completionOnly && !inCompletion) ? 0 : assistantOnly ? example.lossMask[i] : 1
            }
            return e
        }
        guard everyToken else { return example }
        var e = example
        e.lossMask = [UInt8](repeating: 1, count: e.ids.count)
        if !e.lossMask.isEmpty { e.lossMask[0] = 0 }
        return e
    }
}
