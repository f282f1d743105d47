import TensorCore

/// TRL's `sync_ref_model` (DPOConfig, GRPOConfig): the TR-DPO soft update of the reference
/// model (Gorbatovski et al., "Learn Your Reference Model for Real Good Alignment", arXiv
/// 2404.09656, §3): every `ref_model_sync_steps` optimizer steps,
///
///   θ_ref ← (1 − α)·θ_ref + α·θ,   α = `ref_model_mixup_alpha`,
///
/// over every parameter (TRL's `SyncRefModelCallback`, on the step's end when global_step is a
/// multiple of the interval; α = 1 is the paper's hard update). TRL's defaults: α 0.6, every
/// 512 steps. It acts on the reference the objective reads (`--ref-model`, else the initial
/// weights), so it needs an objective with a reference term; like TRL it is refused with LoRA,
/// whose reference is the base with zero adapters. The moved reference is run state, saved in
/// every checkpoint (`reference_model`, one tensor per parameter) and restored on resume; the
/// checkpoint's reference checksum stays that of the reference the run started from, which a
/// resumed run loads before restoring the moved one (`Checkpointer.referenceChecksum`).
/// Replicated weights on every rank, the same arithmetic: ranks stay identical. The reference's
/// log-probs are computed with each step's forward, so under steps_per_generation or
/// num_iterations > 1 the steps after an update read the moved reference even within a
/// generation; TRL computes `ref_per_token_logps` once per generation, so its later steps keep
/// the old one until the next generation (the same when the interval is a multiple of the
/// steps a generation spans).
public final class ReferenceSync {
    public let alpha: Float
    public let every: Int
    let reference: ParameterStore
    public let snapshot: ParameterSnapshot

    public init(alpha: Float, every: Int, reference: ParameterStore) {
        precondition(every >= 1 && (0...1).contains(alpha), "ReferenceSync: α \(alpha), every \(every)")
        self.alpha = alpha; self.every = every; self.reference = reference
        snapshot = ParameterSnapshot("reference_model", parameters: reference)
    }

    /// After `stepsDone` optimizer steps (applied or skipped, as TRL counts global_step): moves
    /// the reference towards `policy` when due; whether it did.
    @discardableResult
    public func afterStep(_ stepsDone: Int, policy: ParameterStore) -> Bool {
        guard stepsDone % every == 0 else { return false }
        precondition(policy.count == reference.count, "ReferenceSync: the reference has \(reference.count) values, the policy \(policy.count)")
        let r = reference.values, p = policy.values, keep = 1 - alpha
        // As torch's ref.mul_(1 − α).add_(θ, alpha=α).
        for i in 0..<reference.count { r[i] = r[i] * keep + alpha * p[i] }
        return true
    }
}
