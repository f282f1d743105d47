import Foundation

/// `--self-train rft`: rejection-sampling fine-tuning (Yuan et al., arXiv 2308.01825, §3.2).
/// Each round the model samples k answers (`k`, `temperature`) for `prompts` labelled training
/// prompts; the answers the scorer accepts against the gold answer are kept, one per distinct
/// answer (the scorer's normal form: RFT keeps distinct reasoning paths), and these rows
/// replace the previous round's and fill a share `ratio` of every step's batch.
/// Metrics: `rft_accepted` (share of samples accepted), `rft_rows`.
struct RejectionSamplingRound: SelfTrainRound {
    let labelled: [SelfTrainPrompt?]
    let options: SelfTrainOptions
    let scoring: SelfTrainScoring
    let seed: UInt64

    var samplesPerPrompt: Int { options.samples }
    var temperature: Float { options.temperature }
    var topP: Float { options.topP }

    func prompts(round: Int) -> [SelfTrainPrompt] {
        let usable = labelled.compactMap { $0 }
        return SelfTrainRounds.pick(options.prompts, of: usable.count, round: round, seed: seed).map { usable[$0] }
    }

    func decide(round: Int, prompts: [SelfTrainPrompt], samples: [[RoundSample]]) throws -> (RoundOutcome, [[String: Any]]) {
        var items: [ScoringItem] = []
        for (i, p) in prompts.enumerated() {
            for s in samples[i] {
                items.append(ScoringItem(prompt: p.text, completion: s.text, reference: p.reference, source: p.source))
            }
        }
        let verdicts = try scoring.accepts(items)
        var outcome = RoundOutcome(), records: [[String: Any]] = [], accepted = 0
        let k = samplesPerPrompt
        for (i, p) in prompts.enumerated() {
            var kept: [String] = [], seen = Set<String>()
            for (j, s) in samples[i].enumerated() where s.finished && verdicts[i * k + j] {
                accepted += 1
                guard seen.insert(SelfTrainScoring.answerKey(s.text, scorer: scoring.name)).inserted else { continue }
                kept.append(s.text)
                outcome.rows.append(p.row(answer: s.ids))
            }
            var r: [String: Any] = ["round": round + 1, "prompt": p.text, "source": p.source, "answers": samples[i].map(\.text),
                                    "accepted": (0..<k).map { samples[i][$0].finished && verdicts[i * k + $0] }, "kept": kept]
            if let ref = p.reference { r["reference"] = ref }
            records.append(r)
        }
        outcome.metrics = [("self_train_round", Double(round + 1)), ("rft_accepted", Double(accepted) / Double(max(1, items.count))),
                           ("rft_rows", Double(outcome.rows.count))]
        return (outcome, records)
    }
}
