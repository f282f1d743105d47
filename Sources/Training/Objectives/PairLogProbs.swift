import Foundation
import TensorCore

/// The policy's log-probs of a micro-batch's paired answers, for the preference objectives that
/// need no reference model (CPOObjective, ORPOObjective): per answer the sum and the mean over
/// its loss tokens (TRL's `get_batch_logps` with `average_log_prob` false or true), the NLL
/// term's rows, and the gradient spread back from ∂L/∂(sum) per answer and ∂L/∂(log p) per NLL row. A pair's two
/// sequences share a micro-batch (`StepBatch.units`), so each answer's sums are complete here. The
/// NLL term reads the chosen answers (CPO, ORPO) or a triple's gold answers (TPO: `nllRole`),
/// whose tokens count in no pair's sum.
extension ObjectiveInput {
    /// Preference pairs in the whole step batch (each counted by its chosen answer): the pair
    /// losses' denominator, the same for any rank count.
    var globalPairs: Int { sequences.reduce(0) { $0 + ($1.pairRole == .chosen ? 1 : 0) } }
}

struct PairLogProbs {
    /// Σ_t log p_t over each answer's loss tokens and their count, keyed by step-batch index.
    var sum: [Int: Double] = [:], tokens: [Int: Double] = [:]
    /// Each loss row's log p of its target and log-sum-exp (the gradient's softmax).
    var rowLogp: [Double], lse: [Float]
    /// The token means TRL's trainers log beside the pair means (DPOObjective's).
    var figures = DPOObjective.TokenFigures()
    /// The NLL term's rows: the `nllRole` answers' loss tokens, or with `nllOverPrompt` every
    /// predicted token of the chosen sequences, prompt included (TRL's ORPOTrainer).
    var nllRow: [Bool]
    /// Those rows in the whole step batch: the NLL term's denominator (TRL's `CrossEntropyLoss`
    /// mean over the chosen labels), the same for any rank count.
    let nllTokens: Int

    init(_ input: ObjectiveInput, _ name: String, nllOverPrompt: Bool = false, nllRole: PairRole = .chosen) {
        let V = input.vocab
        rowLogp = [Double](repeating: 0, count: input.rows)
        lse = [Float](repeating: 0, count: input.rows)
        nllRow = [Bool](repeating: false, count: input.rows)
        for r in 0..<input.rows where input.sequenceId[r] >= 0 {
            let s = Int(input.sequenceId[r])
            precondition(s < input.sequences.count, "objective \(name) needs the step batch's sequences (pair links) in its input")
            if sum[s] == nil { sum[s] = 0; tokens[s] = 0 }   // present, even without loss tokens
            let role = input.sequences[s].pairRole
            nllRow[r] = role == nllRole && (input.mask[r] != 0 || nllOverPrompt && input.targets[r] >= 0)
            guard input.mask[r] != 0 || nllRow[r] else { continue }
            let z = input.logits + r * V, y = Int(input.targets[r])
            lse[r] = SoftmaxKernels.logSumExp(z, count: V)
            rowLogp[r] = Double(z[y] - lse[r])
            guard input.mask[r] != 0 else { continue }   // a prompt row: the NLL term's only
            _ = lossTarget(input, r, name)
            sum[s]! += rowLogp[r]; tokens[s]! += 1   // (a gold answer's: read by no pair)
            figures.add(z, lse: lse[r], target: y, vocab: V, role: role)
        }
        nllTokens = nllOverPrompt ? input.sequences.reduce(0) { $0 + ($1.pairRole == .chosen ? max($1.ids.count - 1, 0) : 0) }
            : Self.lossTokens(input.sequences, of: nllRole)
    }

    /// Loss tokens (lossMask[1...], position 0 is never a target) of the `role` answers of `sequences`.
    static func lossTokens(_ sequences: [StepSequence], of role: PairRole) -> Int {
        sequences.reduce(0) { n, q in n + (q.pairRole == role ? q.lossMask.dropFirst().reduce(0) { $0 + Int($1) } : 0) }
    }

    /// The mean log-prob of answer `s`'s loss tokens (0 without any).
    func mean(_ s: Int) -> Double { sum[s]! / max(tokens[s]!, 1) }

    /// The chosen answers of the micro-batch in step-batch order, each with its rejected partner.
    func pairs(_ input: ObjectiveInput, _ name: String) -> [(chosen: Int, rejected: Int)] {
        sum.keys.sorted().filter { input.sequences[$0].pairRole == .chosen }.map { s in
            let l = input.sequences[s].pair
            precondition(sum[l] != nil, "objective \(name): pair (\(s), \(l)) split across micro-batches")
            return (s, l)
        }
    }

    /// Σ −log p over the micro-batch's NLL rows (`nllRow`), and their count.
    func nll(_ input: ObjectiveInput) -> (sum: Double, tokens: Double) {
        var sum = 0.0, n = 0.0
        for r in 0..<input.rows where nllRow[r] { sum -= rowLogp[r]; n += 1 }
        return (sum, n)
    }

    /// dlogits += c·(onehot(y) − softmax(z)) on each loss row and NLL row, c = ∂L/∂(answer's
    /// log-prob sum) from `perAnswer` on loss rows, plus `perNLLToken` on the NLL rows.
    func addGradient(_ input: ObjectiveInput, _ dlogits: UnsafeMutablePointer<Float>, perAnswer: [Int: Double],
                     perNLLToken: Double, _ name: String) {
        let V = input.vocab
        for r in 0..<input.rows where (input.mask[r] != 0 || nllRow[r]) && input.sequenceId[r] >= 0 {
            let s = Int(input.sequenceId[r])
            let c = Float((input.mask[r] != 0 ? perAnswer[s, default: 0] : 0) + (nllRow[r] ? perNLLToken : 0))
            let y = Int(input.targets[r])
            _ = LogitRow.addScaledSoftmax(dlogits + r * V, input.logits + r * V, lse: lse[r], V, scale: -c)
            dlogits[r * V + y] += c
        }
    }

    /// TRL's preference diagnostics: `rewards/*` (β times each answer's reward), `logps/*` (each
    /// answer's log-prob as the loss reads it), means over pairs; the token figures over tokens.
    static func diagnostics(rewards: [(chosen: Double, rejected: Double)], logps: [(chosen: Double, rejected: Double)],
                            _ figures: DPOObjective.TokenFigures) -> (sums: [String: Double], counts: [String: Double]) {
        var d: [String: Double] = [
            "rewards/chosen": rewards.reduce(0) { $0 + $1.chosen }, "rewards/rejected": rewards.reduce(0) { $0 + $1.rejected },
            "rewards/margins": rewards.reduce(0) { $0 + $1.chosen - $1.rejected },
            "rewards/accuracies": rewards.reduce(0) { $0 + ($1.chosen > $1.rejected ? 1 : 0) },
            "logps/chosen": logps.reduce(0) { $0 + $1.chosen }, "logps/rejected": logps.reduce(0) { $0 + $1.rejected }]
        var c = d.mapValues { _ in Double(rewards.count) }
        figures.into(&d, &c)
        return (d, c)
    }
}
