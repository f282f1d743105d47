import Foundation
import TensorCore

/// SRFT, "A Single-Stage Method with Supervised and Reinforcement Fine-Tuning for Reasoning",
/// Fu et al., arXiv 2506.19767, §4 (entropy-aware weighting). Demonstrations and rollouts of a
/// prompt form one group (its advantages A over rollouts ∪ demonstrations), and
///
///   L = L_SFT^demo + L_RL^demo + L_RL^self,
///   L_SFT^demo = w_SFT · Σ_{demo tokens} −log p(y_t) / N_demo,           w_SFT = sg(0.5·e^{−H}),
///   L_RL^demo  = Σ_{demo tokens} −A·p(y_t) / N_demo                      (π_β := 1, no clipping),
///   L_RL^self  = (Σ_{y+ tokens} −w_RL·log p(y_t) + Σ_{y− tokens} log p(y_t)) / N_rollout,
///                                                                         w_RL = sg(0.1·e^{H}),
///
/// y+ / y− the rollouts the verifier counts correct / not (`StepSequence.solved`: the first reward
/// function gives ≥ 1, as `accuracy` counts) — the paper's split by its 1/0 reward, not by the
/// group advantage, so a group whose rollouts are all right (or all wrong) still pulls them up
/// (pushes them down) where A = 0 would give nothing. H is the token-mean entropy of the policy over every loss token of the step batch
/// (all ranks), N_demo / N_rollout the loss tokens of each kind in the step batch: all three come
/// from the statistics pass (the mask actually applied), so the result does not depend on how the
/// batch is split over ranks and micro-batches. Detached: H (so both weights), A.
/// The rollout producer adds each sampled prompt's training row to its group
/// (`GroupedDemonstrations`: scored with the same rewards, one demonstration per prompt).
/// Arguments: `sft_coef` 0.5, `rl_coef` 0.1 (the paper's constants).
/// Diagnostics: `w_sft`, `w_rl`, `sft_loss`, `rl_demo_loss`, `rl_self_loss`, entropy, mean_p.
public final class SRFTObjective: Objective, GroupedDemonstrationObjective {
    public let name = "srft"
    public let requirements: ObjectiveRequirements
    public let sftCoef: Float, rlCoef: Float
    private let cache = StepCache<Weights>()

    struct Weights { var sft: Float, rl: Float, demoTokens: Int, rolloutTokens: Int }

    public init(sftCoef: Float = 0.5, rlCoef: Float = 0.1) throws {
        try checkArg(sftCoef >= 0 && rlCoef >= 0, "srft", "sft_coef and rl_coef must be >= 0")
        self.sftCoef = sftCoef; self.rlCoef = rlCoef
        var r = ObjectiveRequirements(statisticsPass: true)
        r.rollouts = true
        requirements = r
    }

    /// Per sequence of this micro-batch: [sequence id, Σ entropy over its loss tokens, loss
    /// tokens, 1 if a demonstration]. A sequence never spans micro-batches, so each entry is the
    /// same for any split, and `weights` sums them in sequence order: H is bit-identical for any
    /// rank count.
    public func statistics(_ input: ObjectiveInput) -> [Float] {
        let V = input.vocab
        let seq = SequenceIndex(input.sequenceId)
        var entropy = [Double](repeating: 0, count: seq.count), tokens = [Float](repeating: 0, count: seq.count)
        var ids = [Int32](repeating: -1, count: seq.count)
        for r in 0..<input.rows where input.mask[r] != 0 && seq.slot[r] >= 0 {
            let z = input.logits + r * V
            entropy[seq.slot[r]] += LogitRow.addScaledSoftmax(nil, z, lse: SoftmaxKernels.logSumExp(z, count: V), V, scale: 0)
            tokens[seq.slot[r]] += 1
            ids[seq.slot[r]] = input.sequenceId[r]
        }
        var out: [Float] = []
        for s in 0..<seq.count where tokens[s] > 0 {
            out += [Float(ids[s]), Float(entropy[s]), tokens[s], isDemonstration(input, Int(ids[s])) ? 1 : 0]
        }
        return out
    }

    func isDemonstration(_ input: ObjectiveInput, _ s: Int) -> Bool {
        precondition(s >= 0 && s < input.sequences.count, "objective srft needs the step batch's sequences in its input")
        return input.sequences[s].origin == .demonstration
    }

    static func weights(_ context: StepContext, sftCoef: Float, rlCoef: Float) -> Weights {
        var entries: [(id: Float, entropy: Float, tokens: Float, demo: Bool)] = []
        for rank in context.statistics {
            var i = 0
            while i + 3 < rank.count { entries.append((rank[i], rank[i + 1], rank[i + 2], rank[i + 3] != 0)); i += 4 }
        }
        var entropy = 0.0, tokens = 0, demo = 0
        for e in entries.sorted(by: { $0.id < $1.id }) {
            entropy += Double(e.entropy); tokens += Int(e.tokens)
            if e.demo { demo += Int(e.tokens) }
        }
        let h = tokens > 0 ? entropy / Double(tokens) : 0
        return Weights(sft: sftCoef * Float(exp(-h)), rl: rlCoef * Float(exp(h)), demoTokens: demo, rolloutTokens: tokens - demo)
    }

    public func beginStep(_ context: StepContext) {
        cache.store(context) { Self.weights($0, sftCoef: sftCoef, rlCoef: rlCoef) }
    }

    public func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
        let V = input.vocab
        let w = cache.value(input.context, objective: name) { Self.weights($0, sftCoef: sftCoef, rlCoef: rlCoef) }
        let demoScale = inverseCount(w.demoTokens), rolloutScale = inverseCount(w.rolloutTokens)
        var diag = TokenDiagnostics()
        var sft = 0.0, rlDemo = 0.0, rlSelf = 0.0
        for r in 0..<input.rows where input.mask[r] != 0 {
            let y = lossTarget(input, r, name)
            let sequence = input.sequences[Int(input.sequenceId[r])], a = sequence.advantage
            let z = input.logits + r * V
            let lse = SoftmaxKernels.logSumExp(z, count: V)
            let logp = z[y] - lse, p = expf(logp)
            let g: Float   // ∂L/∂logp of this token, scaled
            if sequence.origin == .demonstration {
                sft += Double(w.sft * -logp); rlDemo += Double(-a * p)
                g = demoScale * (-w.sft - a * p) * input.mask[r]
            } else {
                // y+ tokens pull log p up with weight w_RL, y− tokens push it down with weight 1.
                let sign: Float = sequence.solved ? -w.rl : 1
                rlSelf += Double(sign * logp)
                g = rolloutScale * sign * input.mask[r]
            }
            // ∂ℓ/∂z_v = ∂ℓ/∂logp · ([v = y] − p_v).
            diag.entropy += LogitRow.addScaledSoftmax(g != 0 ? dlogits + r * V : nil, z, lse: lse, V, scale: -g)
            if g != 0 { dlogits[r * V + y] += g }
            diag.sumP += Double(p); diag.count += 1
        }
        let ds = Double(demoScale), rs = Double(rolloutScale)
        // Each rank adds the weights once per micro-batch; the count makes the reported value the weight.
        var d: [String: Double] = ["w_sft": Double(w.sft), "w_rl": Double(w.rl), "sft_loss": sft * ds,
                                   "rl_demo_loss": rlDemo * ds, "rl_self_loss": rlSelf * rs]
        var c: [String: Double] = ["w_sft": 1, "w_rl": 1]
        diag.into(&d, &c)
        return ObjectiveResult(loss: (sft + rlDemo) * ds + rlSelf * rs, diagnostics: d, diagnosticCounts: c)
    }
}
