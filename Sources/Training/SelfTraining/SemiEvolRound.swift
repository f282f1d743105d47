import Foundation

/// `--self-train semievol`: SemiEvol (Luo et al., arXiv 2410.14745, §3.3 "collaborative
/// learning" and "adaptive selection"). Each round the model samples k answers (`k`, default 4,
/// at `temperature` 1) for `prompts` unlabelled prompts; the majority vote over the scorer's
/// normal form of the answers, and the answers' entropy, select confident pseudo-labels
/// (`PseudoLabelVote`: all k agree, or the entropy is below the `percentile`-th percentile of
/// the round's inconsistent prompts). The selected prompt + voted answer rows replace the
/// previous round's and fill a share `ratio` of every step's batch until the next round. With
/// a scorer that checks without a reference (`task`), every voted answer is checked and the
/// precision of the selected ones is logged (`pseudo_label_precision`).
struct SemiEvolRound: SelfTrainRound {
    let unlabelled: [SelfTrainPrompt]
    let options: SelfTrainOptions
    let scoring: SelfTrainScoring?
    let seed: UInt64

    var samplesPerPrompt: Int { options.samples }
    var temperature: Float { options.temperature }
    var topP: Float { options.topP }

    func prompts(round: Int) -> [SelfTrainPrompt] {
        SelfTrainRounds.pick(options.prompts, of: unlabelled.count, round: round, seed: seed).map { unlabelled[$0] }
    }

    func decide(round: Int, prompts: [SelfTrainPrompt], samples: [[RoundSample]]) throws -> (RoundOutcome, [[String: Any]]) {
        // Only whole, non-empty answers vote: a pseudo-label must be an answer.
        let keys = samples.map { $0.map { s -> String? in
            let key = SelfTrainScoring.answerKey(s.text, scorer: scoring?.name)
            return s.finished && !key.isEmpty ? key : nil
        } }
        let decisions = PseudoLabelVote.decide(keys: keys, logProbs: samples.map { $0.map(\.logProbs) },
                                               percentile: options.percentile)
        // The checker (when one exists) judges every voted answer, selected or not.
        var correct = [Bool?](repeating: nil, count: prompts.count)
        if let scoring, !scoring.needsReference {
            let voted = decisions.indices.filter { decisions[$0].key != nil }
            let verdicts = try scoring.accepts(voted.map { i in
                ScoringItem(prompt: prompts[i].text, completion: samples[i][decisions[i].representative].text,
                            reference: nil, source: prompts[i].source)
            })
            for (i, ok) in zip(voted, verdicts) { correct[i] = ok }
        }
        var outcome = RoundOutcome(), records: [[String: Any]] = []
        let inconsistentEntropies = decisions.filter { $0.key != nil && !$0.consistent }.map(\.entropy)
        let threshold = PseudoLabelVote.percentile(inconsistentEntropies, options.percentile)
        for (i, d) in decisions.enumerated() {
            var r: [String: Any] = ["round": round + 1, "prompt": prompts[i].text, "source": prompts[i].source,
                                    "answers": samples[i].map(\.text), "finished": samples[i].map(\.finished),
                                    "votes": d.votes, "consistent": d.consistent, "selected": d.selected]
            if d.key != nil {
                r["answer"] = samples[i][d.representative].text
                r["entropy"] = d.entropy
            }
            if let ok = correct[i] { r["correct"] = ok }
            records.append(r)
            if d.selected { outcome.rows.append(prompts[i].row(answer: samples[i][d.representative].ids)) }
        }
        let selected = decisions.indices.filter { decisions[$0].selected }
        outcome.metrics = [("self_train_round", Double(round + 1)), ("pseudo_label_prompts", Double(prompts.count)),
                           ("pseudo_label_consistent", Double(decisions.filter(\.consistent).count)),
                           ("pseudo_labels", Double(selected.count))]
        if let threshold { outcome.metrics.append(("pseudo_label_entropy_threshold", threshold)) }
        if scoring.map({ !$0.needsReference }) ?? false {
            let checked = selected.compactMap { correct[$0] }
            if !checked.isEmpty {
                outcome.metrics.append(("pseudo_label_precision", Double(checked.filter { $0 }.count) / Double(checked.count)))
            }
            let voted = correct.compactMap { $0 }
            if !voted.isEmpty {
                outcome.metrics.append(("vote_accuracy", Double(voted.filter { $0 }.count) / Double(voted.count)))
            }
        }
        return (outcome, records)
    }
}
