import TensorCore

/// `--bema-update-ref-model`: TRL's experimental `bema_for_ref_model.BEMACallback` with
/// `update_ref_model=True` — "a lagged, smoothed version of the main model as the reference
/// model" (BEMA, arXiv 2508.00180). At the steps t ≥ τ_ref where (t − τ_ref) is a multiple of
/// φ_ref (`bema_ref_model_update_after`, `bema_ref_model_update_freq`; t the steps done), after
/// the average's own update, the reference the objective reads (`--ref-model`, else the initial
/// weights) becomes the policy with its trainable tensors replaced by the average θ' — TRL loads
/// the callback's running model, a copy of the policy, into it. θ' keeps its last value between
/// the average's updates, so a reference update then copies that (before the first, the
/// initial weights), as TRL's does.
///
/// Refused (Recipe+BEMA.swift) for objectives that read no reference, beside sync_ref_model
/// (both move the reference), and with LoRA (TRL then writes the average into the policy's own
/// base). The moved reference is run state, checkpointed as `reference_model` (as
/// sync_ref_model's) and restored on resume; state.json's reference checksum stays that of the
/// reference the run started from. Replicated on every rank, the same copy: ranks stay identical.
public final class BEMAReferenceUpdate {
    public let every: Int, after: Int
    let reference: ParameterStore
    public let snapshot: ParameterSnapshot

    public init(every: Int, after: Int, reference: ParameterStore) {
        precondition(every >= 1 && after >= 0, "BEMAReferenceUpdate: every \(every), after \(after)")
        self.every = every; self.after = after; self.reference = reference
        snapshot = ParameterSnapshot("reference_model", parameters: reference)
    }

    /// Whether the reference is replaced after `t` steps.
    public func updates(at t: Int) -> Bool { t >= after && (t - after) % every == 0 }

    /// After `t` optimizer steps (TRL's `on_step_end`, after the average's own update): replaces
    /// the reference when due; whether it did.
    @discardableResult
    public func afterStep(_ t: Int, policy: ParameterStore, average: BiasCorrectedEMA) -> Bool {
        guard updates(at: t) else { return false }
        precondition(policy.count == reference.count, "BEMAReferenceUpdate: the reference has \(reference.count) values, the policy \(policy.count)")
        reference.values.update(from: policy.values, count: reference.count)
        average.write(into: reference)
        return true
    }
}
