/// 1 when the completion is the built-in tasks' answer to the prompt, from the same solver that
/// generated the data (`TaskGenerator.expectedCompletion`). It needs no reference: the rule,
/// variant and phrasing are read from the prompt, so it scores a held-out set on a rule variant,
/// unlabelled prompts, and noisy sets against the truth rather than the corrupted reference.
public final class TaskScorer: Scorer {
    public let name = "task"
    public init() {}
    public func score(_ items: [ScoringItem]) throws -> [Float] {
        try items.map { item in
            guard let answer = Self.answer(toPromptEnding: item.prompt) else {
                throw ScorerError("\(item.source): the task scorer needs a built-in task prompt (make-data), got \(RecipeError.quote(item.prompt))")
            }
            return ScorerRegistry.normalise(item.completion) == ScorerRegistry.normalise(answer) ? 1 : 0
        }
    }

    /// The answer to the longest end of `prompt` that is a task: the prompt the model saw is
    /// decoded from its ids, so a tokenizer's beginning-of-text token can precede the task.
    static func answer(toPromptEnding prompt: String) -> String? {
        var rest = Substring(prompt)
        while !rest.isEmpty {
            if let answer = TaskGenerator.expectedCompletion(forPrompt: String(rest)) { return answer }
            rest = rest.dropFirst()
        }
        return nil
    }
}
