import Foundation
import TensorCore

/// Odds Ratio Preference Optimization, Hong et al., arXiv:2403.07691, §4 (Eqs. 6–7), as TRL's
/// `ORPOTrainer` (trl.experimental, 1.16) computes it — no reference model:
///
///   ℓ      = the mean log-prob of an answer's loss tokens (TRL's `average_log_prob=True`),
///   O      = (ℓ_w − ℓ_l) − (log(1 − e^{ℓ_w}) − log(1 − e^{ℓ_l})),   the log odds ratio,
///   L      = (1/N_w) Σ_{chosen tokens} −log p − β·(1/P) Σ_pairs log σ(O),
///
/// the NLL over every predicted token of the chosen sequences, the prompt's too, as TRL's
/// `concatenated_forward` takes it ("computed over the full prompt and response");
/// β = `beta` (the paper's λ; TRL's default 0.1). ∂O/∂ℓ_w = 1/(1 − e^{ℓ_w}), ∂O/∂ℓ_l =
/// −1/(1 − e^{ℓ_l}). P pairs and N_w chosen tokens are the whole step batch's, so the loss does
/// not depend on the rank count (TRL's NLL is each device's mean). Diagnostics, TRL's names:
/// `rewards/chosen`, `rewards/rejected` (β·ℓ), `rewards/margins`, `rewards/accuracies`,
/// `logps/chosen`, `logps/rejected` (ℓ), `log_odds_ratio` (log σ(O)), `log_odds_chosen` (O),
/// means over pairs; `nll_loss` over the chosen tokens; `logits/*`, `mean_token_accuracy` and
/// `entropy` over loss tokens, as CPOObjective.
public final class ORPOObjective: Objective {
    public let name = "orpo"
    public let requirements = ObjectiveRequirements(pairs: true)
    let beta: Double

    public init(beta: Float = 0.1) throws {
        try checkArg(beta > 0, "orpo", "beta must be > 0, got \(beta)")
        self.beta = Double(beta)
    }

    /// The largest mean log-prob the odds ratio reads (see `lossAndGradient`).
    static let ceiling = -1e-7

    /// log(1 − e^x) for x < 0, accurate on both sides of −log 2 (Mächler's log1mexp).
    static func log1mexp(_ x: Double) -> Double { x > -M_LN2 ? log(-expm1(x)) : log1p(-exp(x)) }

    public func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
        let lp = PairLogProbs(input, name, nllOverPrompt: true)
        let scale = Double(inverseCount(input.globalPairs))
        var odds = 0.0, perAnswer: [Int: Double] = [:], ratioSum = 0.0, oddsSum = 0.0
        var rewards: [(chosen: Double, rejected: Double)] = [], logps = rewards
        for (s, l) in lp.pairs(input, name) {
            // A mean log-prob that rounds to 0 in float32 (a certain answer) would make the odds
            // infinite and the gradient 0/0: held at −1e-7, where 1 − e^ℓ is still positive
            // (TRL's float32 odds_ratio_loss gives inf and NaN there).
            let lw = min(lp.mean(s), Self.ceiling), ll = min(lp.mean(l), Self.ceiling)
            let o = (lw - ll) - (Self.log1mexp(lw) - Self.log1mexp(ll))
            let logSig = -DPOLoss.softplus(-o)
            odds += logSig
            // ∂(−β·log σ(O))/∂O = −β·σ(−O); through the means to each answer's log-prob sum.
            let g = -beta * DPOLoss.logistic(-o) * scale
            // (Held at the ceiling, an answer's term is constant in it: no gradient through it.)
            perAnswer[s] = lp.mean(s) > Self.ceiling ? 0 : g / -expm1(lw) / max(lp.tokens[s]!, 1)
            perAnswer[l] = lp.mean(l) > Self.ceiling ? 0 : -g / -expm1(ll) / max(lp.tokens[l]!, 1)
            rewards.append((beta * lw, beta * ll)); logps.append((lw, ll))
            ratioSum += logSig; oddsSum += o
        }
        let nllScale = Double(inverseCount(lp.nllTokens)), nll = lp.nll(input)
        lp.addGradient(input, dlogits, perAnswer: perAnswer, perNLLToken: -nllScale, name)
        var (d, c) = PairLogProbs.diagnostics(rewards: rewards, logps: logps, lp.figures)
        d["nll_loss"] = nll.sum; c["nll_loss"] = nll.tokens
        d["log_odds_ratio"] = ratioSum; d["log_odds_chosen"] = oddsSum
        c["log_odds_ratio"] = Double(rewards.count); c["log_odds_chosen"] = Double(rewards.count)
        return ObjectiveResult(loss: nll.sum * nllScale - beta * odds * scale, diagnostics: d, diagnosticCounts: c)
    }
}
