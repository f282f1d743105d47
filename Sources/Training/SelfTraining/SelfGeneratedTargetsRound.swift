import Foundation

/// `--self-train ssr` / `s3ft`: the model's own answer replaces the gold one where it is judged
/// equivalent. SSR (Selective Self-Rehearsal, Gupta et al., arXiv 2409.04787, §3) and S3FT
/// (arXiv 2502.08130, §3): the target of example x is ŷ = M(x) (greedy) when the judge — here
/// the scorer against the gold answer — accepts it, else the gold y, then plain NLL. Each
/// round judges `prompts` labelled rows with the current model and updates their targets
/// (accepted: the model's answer; rejected: the gold answer again); with
/// `--self-train-every` ≥ `--steps` the one round at step 0 uses the initial model, as both
/// papers precompute the targets. S3FT's second fallback (the model's paraphrase of the gold
/// answer, kept when judged equivalent) is not implemented, so `s3ft` trains as `ssr` does.
/// Metrics: `self_targets_accepted` (share of the round's rows whose answer was accepted).
struct SelfGeneratedTargetsRound: SelfTrainRound {
    let labelled: [SelfTrainPrompt?]
    let options: SelfTrainOptions
    let scoring: SelfTrainScoring
    let seed: UInt64

    var samplesPerPrompt: Int { 1 }
    var temperature: Float { 0 }

    func prompts(round: Int) -> [SelfTrainPrompt] {
        let usable = labelled.compactMap { $0 }
        return SelfTrainRounds.pick(options.prompts, of: usable.count, round: round, seed: seed).map { usable[$0] }
    }

    func decide(round: Int, prompts: [SelfTrainPrompt], samples: [[RoundSample]]) throws -> (RoundOutcome, [[String: Any]]) {
        let answers = samples.map { $0[0] }
        let verdicts = try scoring.accepts(zip(prompts, answers).map { p, s in
            ScoringItem(prompt: p.text, completion: s.text, reference: p.reference, source: p.source)
        })
        var outcome = RoundOutcome(), records: [[String: Any]] = []
        for (i, p) in prompts.enumerated() {
            let replaced = answers[i].finished && verdicts[i]
            if replaced { outcome.replacements.append(p.row(answer: answers[i].ids)) } else { outcome.restored.append(p.example) }
            var r: [String: Any] = ["round": round + 1, "prompt": p.text, "source": p.source, "generated": answers[i].text,
                                    "replaced": replaced]
            if let ref = p.reference { r["gold"] = ref }
            records.append(r)
        }
        outcome.metrics = [("self_train_round", Double(round + 1)),
                           ("self_targets_accepted", Double(outcome.replacements.count) / Double(max(1, prompts.count)))]
        return (outcome, records)
    }
}
