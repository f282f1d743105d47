import Foundation

/// `--self-train ssr` / `s3ft`: the model's own answer replaces the gold one where it is judged
/// equivalent. SSR (Selective Self-Rehearsal, Gupta et al., arXiv 2409.04787, §3): the target
/// of example (x, y) is ŷ = M(x) (greedy) when the judge accepts ŷ as equivalent to y, else y.
/// S3FT (Selective Self-to-Supervised Fine-Tuning, arXiv 2502.08130, §3) adds a second chance
/// before the gold answer: the model's paraphrase ỹ of the gold response, generated from
/// [x; y], is the target when the judge accepts it, so
///
///   target = ŷ if judge(ŷ ≡ y);  else ỹ if judge(ỹ ≡ y);  else y;   then plain NLL.
///
/// The judge is the `--self-train-scorer` against the gold answer (for `exact`/`numeric` the
/// equality of the normalised answers; the papers use answer matching or an LLM judge), and only
/// a finished answer (ended by the format's stop token) can be accepted. The paraphrase context
/// is the gold example followed by its prompt again (x y ⟨end⟩ x, `SelfTrainPrompt.demonstration`
/// + `ids`): the model answers x once more right after reading y, in any chat format, where the
/// paper prompts an instruction-tuned model to rewrite y in its own words. Each round judges
/// `prompts` labelled rows with the current model and updates their targets (else the gold
/// answer again); with `--self-train-every` ≥ `--steps` the one round at step 0 uses the
/// initial model, as both papers precompute the targets. Metrics: `self_targets_accepted`
/// (share of the round's rows whose own answer was accepted), `self_targets_paraphrased`
/// (s3ft: share trained on the accepted paraphrase).
struct SelfGeneratedTargetsRound: SelfTrainRound {
    let labelled: [SelfTrainPrompt?]
    let options: SelfTrainOptions
    let scoring: SelfTrainScoring
    let seed: UInt64
    /// S3FT's paraphrase fallback (false: SSR).
    let paraphrase: Bool

    var samplesPerPrompt: Int { 1 }
    var temperature: Float { 0 }

    enum Target: String { case own = "model", paraphrase, gold }

    /// The target rule: the own answer when accepted, else (S3FT) the accepted paraphrase, else gold.
    static func target(ownAccepted: Bool, paraphraseAccepted: Bool?) -> Target {
        ownAccepted ? .own : paraphraseAccepted == true ? .paraphrase : .gold
    }

    func prompts(round: Int) -> [SelfTrainPrompt] {
        let usable = labelled.compactMap { $0 }
        return SelfTrainRounds.pick(options.prompts, of: usable.count, round: round, seed: seed).map { usable[$0] }
    }

    /// Greedy answers to the prompts, then (S3FT) to the paraphrase contexts, in that order.
    func contexts(_ prompts: [SelfTrainPrompt]) -> [[Int32]] {
        prompts.map(\.ids) + (paraphrase ? prompts.map { $0.demonstration + $0.ids } : [])
    }

    func decide(round: Int, prompts: [SelfTrainPrompt], samples: [[RoundSample]]) throws -> (RoundOutcome, [[String: Any]]) {
        let n = prompts.count
        let own = samples.prefix(n).map { $0[0] }
        let rephrased = paraphrase ? samples[n..<(2 * n)].map { $0[0] } : []
        func judge(_ answers: [RoundSample], _ which: [Int]) throws -> [Int: Bool] {
            let verdicts = try scoring.accepts(which.map { i in
                ScoringItem(prompt: prompts[i].text, completion: answers[i].text, reference: prompts[i].reference, source: prompts[i].source)
            })
            return Dictionary(uniqueKeysWithValues: zip(which, verdicts).map { ($0, $1 && answers[$0].finished) })
        }
        let ownOK = try judge(own, Array(0..<n))
        // The paraphrase is judged only where the own answer was not accepted, as the paper asks for it.
        let paraphraseOK = paraphrase ? try judge(rephrased, (0..<n).filter { !ownOK[$0]! }) : [:]
        var outcome = RoundOutcome(), records: [[String: Any]] = [], paraphrased = 0, accepted = 0
        for (i, p) in prompts.enumerated() {
            let target = Self.target(ownAccepted: ownOK[i]!, paraphraseAccepted: paraphraseOK[i])
            switch target {
            case .own: outcome.replacements.append(p.row(answer: own[i].ids)); accepted += 1
            case .paraphrase: outcome.replacements.append(p.row(answer: rephrased[i].ids)); paraphrased += 1
            case .gold: outcome.restored.append(p.example)
            }
            var r: [String: Any] = ["round": round + 1, "prompt": p.text, "source": p.source, "generated": own[i].text,
                                    "replaced": target != .gold, "target": target.rawValue]
            if let ok = paraphraseOK[i] { r["paraphrase"] = rephrased[i].text; r["paraphrase_accepted"] = ok }
            if let ref = p.reference { r["gold"] = ref }
            records.append(r)
        }
        outcome.metrics = [("self_train_round", Double(round + 1)), ("self_targets_accepted", Double(accepted) / Double(max(1, n)))]
        if paraphrase { outcome.metrics.append(("self_targets_paraphrased", Double(paraphrased) / Double(max(1, n)))) }
        return (outcome, records)
    }
}
