import Models

extension Dataset {
    /// Every example with one more token, `pad`, untrained (loss mask 0): the trainer feeds
    /// a sequence's tokens but its last as inputs, and a reward model (`--objective reward`)
    /// reads its reward at the sequence's last token that is not the pad — the eos TRL's
    /// RewardTrainer appends, or the one before it where the pad is the eos — which must then be
    /// an input. The added pad is only a target, never a loss token (`SequenceScoreHead.rewardPosition`).
    public func withTrailingPad(_ pad: Int32?) -> Dataset {
        guard let pad else { return self }
        return Dataset(examples: examples.map { e in
            var padded = e
            padded.ids.append(pad)
            padded.lossMask.append(0)
            return padded
        }, report: report)
    }

    /// Pair data as an objective reads it: under `--objective reward` with margins and the
    /// trailing pad (`pad`: the tokenizer's), under `--objective tpo` with each row's gold answer
    /// (`goldAnswers`), else as `Dataset(pairsAt:)` reads it.
    public convenience init(pairsAt path: String, tokenizer: any Tokenizer, maxLength: Int, truncation: Truncation,
                            template: ChatTemplate, skipBadLines: Bool, sequenceScores: Bool, goldAnswers: Bool = false) throws {
        let read = try Dataset(pairsAt: path, tokenizer: tokenizer, maxLength: maxLength, truncation: truncation,
                               template: template, skipBadLines: skipBadLines, readsMargins: sequenceScores, readsGold: goldAnswers)
        self.init(examples: read.withTrailingPad(sequenceScores ? tokenizer.padId : nil).examples, report: read.report)
    }
}
