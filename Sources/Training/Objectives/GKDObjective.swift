import Foundation
import TensorCore

/// Generalized knowledge distillation (GKD), Agarwal et al., arXiv 2306.13649, §3 (Eq. 1, the
/// generalized Jensen-Shannon divergence; Algorithm 1, the on-policy student data), as TRL's
/// `GKDTrainer` (trl.experimental.gkd, 1.16) trains it: the student matches a frozen teacher
/// (`--ref-model`) over the whole vocabulary at every completion token, on the training set's
/// completions or, with probability `lmbda` per step, on its own samples of the same prompts
/// (Rollouts/DistillationProducer.swift; `seq_kd`: the teacher's samples on the other steps).
///
///   L = Σ_t M_t·D_β(t_t, s_t) / N_global,   s = softmax(z), t = softmax(z_teacher),
///   β = 0:  KL(t ‖ s),                       ∂L/∂z = s − t
///   β = 1:  KL(s ‖ t),                       ∂L/∂z = s ⊙ (log s − log t − KL(s ‖ t))
///   else, m = (1 − β)·s + β·t:  β·KL(t ‖ m) + (1 − β)·KL(s ‖ m),
///                                           ∂L/∂z = (1 − β)·s ⊙ (log s − log m − KL(s ‖ m))
/// — TRL's `generalized_jsd_loss`: its two ends are special cases (the mixture form tends to 0
/// there), and the mixture is not detached (its gradient through s is in the formula above).
/// Detached: the teacher. Normalisation: the step's global loss tokens (TRL's
/// `num_items_in_batch`). The divergence is taken at temperature 1, as TRL's `compute_loss`
/// calls it; `rollout_temperature` is the sampling temperature only. Arguments, TRL's names and
/// defaults: `beta` 0.5 and `lmbda` 0.5 (each in [0, 1]), `seq_kd` false.
/// Diagnostics: mean p of the targets and the student's entropy, as the other token objectives.
public final class GKDObjective: Objective {
    public let name = "gkd"
    public let requirements = ObjectiveRequirements(referenceModel: true)
    public let beta: Float
    /// The probability that a step trains on the student's own samples (TRL's `lmbda`).
    public let lmbda: Double
    /// Off the student's steps, train on the teacher's samples instead of the data's completions.
    public let seqKD: Bool
    /// Whether any step trains on sampled answers (the student's or, with seq_kd, the teacher's).
    public var samples: Bool { lmbda > 0 || seqKD }

    public init(beta: Float = 0.5, lmbda: Double = 0.5, seqKD: Bool = false) throws {
        try checkArg(beta >= 0 && beta <= 1, "gkd", "beta must be in [0, 1] (0: KL(teacher ‖ student), 1: KL(student ‖ teacher)), got \(beta)")
        try checkArg(lmbda >= 0 && lmbda <= 1, "gkd", "lmbda must be in [0, 1] (the share of steps trained on the student's own samples), got \(lmbda)")
        self.beta = beta; self.lmbda = lmbda; self.seqKD = seqKD
    }

    public func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
        let teacher = requireReference(input, name)
        let V = input.vocab
        let scale = inverseCount(input.context.globalLossTokens)
        var diag = TokenDiagnostics()
        var total = 0.0
        var logS = [Float](repeating: 0, count: V), gap = [Float](repeating: 0, count: V)
        for r in 0..<input.rows where input.mask[r] != 0 {
            let y = lossTarget(input, r, name)
            let a = input.mask[r] * scale
            let d = GeneralizedJSD.row(student: input.logits + r * V, teacher: teacher + r * V, count: V, beta: beta,
                                       logS: &logS, gap: &gap, dlogits: dlogits + r * V, scale: a)
            // ≥ 0 exactly (a student equal to its teacher summed to −6e-10 in float32).
            total += Double(input.mask[r]) * max(0, d.divergence)
            diag.sumP += Double(expf(logS[y])); diag.entropy += d.entropy; diag.count += 1
        }
        var dd: [String: Double] = [:], cc: [String: Double] = [:]
        diag.into(&dd, &cc)
        return ObjectiveResult(loss: total * Double(scale), diagnostics: dd, diagnosticCounts: cc)
    }
}

/// One position of GKD's divergence D_β(t, s) (GKDObjective) and its gradient in the student's
/// logits, accumulated (+=) times `scale`. `logS` and `gap` are [V] scratch: log s, and the
/// per-entry term whose s-weighted mean the gradient subtracts.
enum GeneralizedJSD {
    static func row(student z: UnsafePointer<Float>, teacher zt: UnsafePointer<Float>, count V: Int, beta: Float,
                    logS: inout [Float], gap: inout [Float], dlogits: UnsafeMutablePointer<Float>, scale: Float)
        -> (divergence: Double, entropy: Double) {
        let lse = SoftmaxKernels.logSumExp(z, count: V), lseT = SoftmaxKernels.logSumExp(zt, count: V)
        var divergence = 0.0, entropy = 0.0, mean = 0.0
        // Pass 1: the divergence, the entropy and gap_v (∂L/∂z = c·s ⊙ (gap − Σ s·gap), c below).
        for v in 0..<V {
            let ls = z[v] - lse, lt = zt[v] - lseT
            let s = expf(ls), t = expf(lt)
            logS[v] = ls
            entropy -= Double(s * ls)
            if beta == 0 {
                divergence += Double(t * (lt - ls))
            } else if beta == 1 {
                gap[v] = ls - lt
                divergence += Double(s * gap[v])
            } else {
                // log m = log((1 − β)s + βt), TRL's mixture_log_probs, as gap = log s − log m from
                // d = log t − log s: log m = log s + log((1 − β) + β·e^d) (d ≤ 0), or log t +
                // log(β + (1 − β)·e^(−d)) (d > 0), a sum of two terms ≥ 0; near 1 as log1p of
                // β·expm1(d) (resp. (1 − β)·expm1(−d)), so it is exactly 0 where s = t. There the
                // logsumexp of the two logs rounded to ±1e-8: a gradient of pure round-off that Adam
                // scaled to a full step (a student that is its own teacher moved off it). Away from 1
                // the plain log: log1p(−1) of a rounded 1 − β was −∞ at β < 3e-8 and d > 17.
                let d = lt - ls
                let g: Float
                if d <= 0 {
                    let a = beta * expm1f(d)
                    g = a > -0.5 ? -log1pf(a) : -logf((1 - beta) + beta * expf(d))
                } else {
                    let a = (1 - beta) * expm1f(-d)
                    g = a > -0.5 ? -d - log1pf(a) : -d - logf(beta + (1 - beta) * expf(-d))
                }
                gap[v] = g
                divergence += Double(beta * t * (d + g)) + Double((1 - beta) * s * g)
            }
            if beta != 0 { mean += Double(s * gap[v]) }
        }
        // Pass 2: the gradient.
        if beta == 0 {
            for v in 0..<V { dlogits[v] += scale * (expf(logS[v]) - expf(zt[v] - lseT)) }
        } else {
            let c = scale * (beta == 1 ? 1 : 1 - beta), m = Float(mean)
            for v in 0..<V { dlogits[v] += c * expf(logS[v]) * (gap[v] - m) }
        }
        return (divergence, entropy)
    }
}
