import Foundation
import TensorCore

/// The two passes the objectives that weigh each rollout as a whole share (a2po's log-ratio to the reference, rloo's summed
/// log-ratio, gmpo's geometric mean): pass 1 reads each loss row's log-prob and π_old — on a
/// generation's first step, and in evaluation, the current weights' own log-prob held at
/// `detached` (the trainer passes the logits themselves; the finite-difference checks hold it
/// fixed), otherwise the sampler's log-probs stored with the rollout — and which rollouts the
/// input holds (a rollout masked whole still counts); pass 2 puts a row's gradient through its
/// log-prob into dlogits and adds its entropy and probability to the figures.
struct RolloutTokenRows {
    let vocab: Int
    var lse: [Float], logp: [Float], old: [Float]
    /// The rollouts with a row in the input (mask 0 too).
    var present = Set<Int>()

    /// `detached` nil: no π_old is read (a2po's log-ratio is to the reference), and none is computed.
    init(_ input: ObjectiveInput, detached: UnsafePointer<Float>?, objective name: String) {
        let V = input.vocab, rollouts = input.sequences.count
        vocab = V
        lse = [Float](repeating: 0, count: input.rows); logp = lse; old = lse
        for r in 0..<input.rows where input.sequenceId[r] >= 0 {
            let s = Int(input.sequenceId[r])
            precondition(s < rollouts, "objective \(name) needs the step batch's sequences (advantages) in its input")
            present.insert(s)
            guard input.mask[r] != 0 else { continue }
            let y = lossTarget(input, r, name)
            let z = input.logits + r * V
            lse[r] = SoftmaxKernels.logSumExp(z, count: V)
            logp[r] = z[y] - lse[r]
            if let detached { old[r] = PPOClippedToken.behaviourLogProb(input, row: r, live: logp[r], detached: detached) }
        }
    }

    /// Row r's gradient g = ∂L/∂log π(y_r) into `dlogits` (∂ℓ/∂z_v = g·([v = y] − p_v)), and its
    /// entropy and probability into `diag`.
    func addGradient(_ input: ObjectiveInput, row r: Int, _ g: Float, dlogits: UnsafeMutablePointer<Float>?, diag: inout TokenDiagnostics) {
        let y = Int(input.targets[r]), z = input.logits + r * vocab
        let row = g != 0 ? dlogits.map { $0 + r * vocab } : nil
        diag.entropy += LogitRow.addScaledSoftmax(row, z, lse: lse[r], vocab, scale: -g)
        row?[y] += g
        diag.sumP += Double(expf(logp[r])); diag.count += 1
    }
}
