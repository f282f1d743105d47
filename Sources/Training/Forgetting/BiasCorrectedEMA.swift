import Foundation
import TensorCore

/// `--bema`: the bias-corrected exponential moving average of the weights (BEMA; Block &
/// Zhang, "EMA Without the Lag: Bias-Corrected Iterate Averaging Schemes", arXiv 2508.00180,
/// §3, Algorithm 1), as TRL's `BEMACallback` computes it:
///
///   EMA_t = (1 − β_t)·EMA_{t−1} + β_t·θ_t,   β_t = max((ρ + γ·t)^−κ, β_min)
///   θ'_t  = α_t·(θ_t − θ_0) + EMA_t,         α_t = (ρ + γ·t)^−η
///
/// with t the optimizer steps done (applied or skipped: TRL's `global_step`), ρ = `bema_lag`,
/// γ = `bema_multiplier`, κ = `bema_ema_power`, η = `bema_bias_power`, β_min =
/// `bema_min_ema_multiplier`. θ_0 and EMA start at the initial weights; at step τ =
/// `bema_update_after` (when τ > 0) both are reset to θ_τ; the average moves at the steps t > τ
/// where (t − τ) is a multiple of φ = `bema_update_freq`, and between them θ' keeps its last
/// value — so `OUT/bema/` is the average at the last such step, as TRL saves it. The EMA's
/// lag is what α_t·(θ_t − θ_0) corrects: early on, when the EMA still sits near θ_0, the
/// correction carries the average most of the way to θ_t; as α_t decays it fades.
///
/// Only the trainable tensors average (TRL's callback takes the parameters that require a
/// gradient; with any frozen one, or a peft model, its copy of the model does not line up and
/// it fails); frozen ones are the model's, so with LoRA `OUT/bema/` is an adapter. θ_0, EMA
/// and θ' are one copy each of the trainable tensors, replicated on every rank (they read the
/// replicated weights), checkpointed (`bema_theta0`, `bema_ema`, `bema`) and restored bit for
/// bit. The arithmetic is TRL's, in float32 with the coefficients from Double:
/// `ema.mul_(1 − β).add_(θ, alpha=β)`, then `θ' = ema + α·(θ − θ_0)`.
public final class BiasCorrectedEMA {
    /// TRL's `BEMACallback` arguments, with its defaults.
    public struct Schedule: Sendable, Equatable {
        public var updateFreq = 400, updateAfter = 0, lag = 10
        public var emaPower = 0.5, biasPower = 0.2, multiplier = 1.0, minEMAMultiplier = 0.0
        public init() {}

        /// β_t = (ρ + γ·t)^−κ, at least β_min (TRL's `_ema_beta`).
        public func beta(_ t: Int) -> Double { max(pow(Double(lag) + multiplier * Double(t), -emaPower), minEMAMultiplier) }
        /// α_t = (ρ + γ·t)^−η (TRL's `_bema_alpha`).
        public func alpha(_ t: Int) -> Double { pow(Double(lag) + multiplier * Double(t), -biasPower) }

        /// Whether the average moves after `t` steps.
        public func updates(at t: Int) -> Bool { t > updateAfter && (t - updateAfter) % updateFreq == 0 }
        /// The first step the average moves at.
        public var firstUpdate: Int { updateAfter + updateFreq }
        /// The last step at or before `t` the average moved at (nil: none yet, θ' is θ_0).
        public func lastUpdate(atOrBefore t: Int) -> Int? {
            t < firstUpdate ? nil : t - (t - updateAfter) % updateFreq
        }
    }

    public let schedule: Schedule
    /// θ_0, EMA and θ': the trainable tensors only, in the model's order.
    let theta0: ParameterStore, ema: ParameterStore
    public let average: ParameterStore
    /// (model offset, own offset, floats) per trainable tensor.
    let spans: [(model: Int, own: Int, count: Int)]
    public let snapshots: [ParameterSnapshot]

    /// Starts from `initial`'s weights: θ_0 = EMA = θ' = them (TRL's `on_train_begin`).
    public init(schedule: Schedule, initial: ParameterStore, trainable names: [String]) {
        self.schedule = schedule
        let entries = names.map { name -> ParameterStore.Entry in
            guard let e = initial.entry(name) else { preconditionFailure("BiasCorrectedEMA: no parameter \(name)") }
            return e
        }
        let layout = entries.map { (name: $0.name, shape: $0.shape) }
        theta0 = ParameterStore(layout: layout); ema = ParameterStore(layout: layout); average = ParameterStore(layout: layout)
        spans = zip(entries, theta0.entries).map { (model: $0.offset, own: $1.offset, count: $0.count) }
        snapshots = [ParameterSnapshot("bema_theta0", parameters: theta0), ParameterSnapshot("bema_ema", parameters: ema),
                     ParameterSnapshot("bema", parameters: average)]
        for store in [theta0, ema, average] { copy(from: initial, into: store) }
    }

    /// After `t` optimizer steps (TRL's `on_step_end` with `global_step` = t): resets θ_0 and
    /// the EMA at τ, moves the average when due. Whether the average moved.
    @discardableResult
    public func afterStep(_ t: Int, weights: ParameterStore) -> Bool {
        if t == schedule.updateAfter {
            copy(from: weights, into: theta0)
            copy(from: weights, into: ema)
            return false
        }
        guard schedule.updates(at: t) else { return false }
        let beta = schedule.beta(t)
        let keep = Float(1 - beta), take = Float(beta), alpha = Float(schedule.alpha(t))
        let p = weights.values, t0 = theta0.values, e = ema.values, a = average.values
        for s in spans {
            for i in 0..<s.count {
                let w = p[s.model + i], j = s.own + i
                e[j] = e[j] * keep + take * w
                a[j] = e[j] + alpha * (w - t0[j])
            }
        }
        return true
    }

    /// Writes the average into `model`'s trainable tensors (the rest of `model` stays as it is:
    /// a replica of the trained model, whose frozen tensors are the initial ones).
    public func write(into model: ParameterStore) {
        for s in spans { (model.values + s.model).update(from: average.values + s.own, count: s.count) }
    }

    /// Exchanges the average with `model`'s trainable tensors: once to save the model as the
    /// average (no replica: a run that fits in memory while training still fits at its end),
    /// once more to put the trained weights back.
    public func swap(with model: ParameterStore) {
        let m = model.values, a = average.values
        for s in spans {
            for i in 0..<s.count { let t = m[s.model + i]; m[s.model + i] = a[s.own + i]; a[s.own + i] = t }
        }
    }

    private func copy(from weights: ParameterStore, into store: ParameterStore) {
        for s in spans { (store.values + s.own).update(from: weights.values + s.model, count: s.count) }
    }
}
