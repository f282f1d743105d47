import Foundation
import TensorCore

// What UFT and Prefix-RFT share: which loss rows are revealed demonstration tokens, the step
// batch's counts of each kind, and the entropy bonus both papers' code subtracts.

/// A hybrid rollout (`RevealedPrefixes`) is prompt + revealed prefix + continuation with
/// `promptLength` after the prefix and the prefix trained: a trained position before
/// `promptLength` is a revealed token, every other trained position one the policy generated.
enum RevealedTokens {
    /// Per row of the micro-batch: whether its target is a revealed token. A sequence's rows are
    /// consecutive and start at its first position (padded or packed), so row r of sequence s
    /// predicts `ids[position + 1]`.
    static func rows(_ input: ObjectiveInput, objective: String) -> [Bool] {
        let index = SequenceIndex(input.sequenceId)
        return (0..<input.rows).map { r in
            let s = Int(input.sequenceId[r])
            guard s >= 0 else { return false }
            precondition(s < input.sequences.count, "objective \(objective) needs the step batch's sequences in its input")
            return index.position[r] + 1 < input.sequences[s].promptLength
        }
    }

    /// Loss tokens of the whole step batch (every rank's sequences): revealed and generated.
    static func counts(_ sequences: [StepSequence]) -> (revealed: Int, generated: Int) {
        var revealed = 0, generated = 0
        for s in sequences {
            for t in 1..<max(1, s.lossMask.count) where s.lossMask[t] != 0 {
                if t < s.promptLength { revealed += 1 } else { generated += 1 }
            }
        }
        return (revealed, generated)
    }

    /// The entropy bonus −c·H(softmax z) of one row: adds its gradient c·p_v·(log p_v + H)
    /// (∂H/∂z_v = −p_v·(log p_v + H)) to `d` when given; returns H.
    @inline(__always)
    static func addEntropyBonus(_ d: UnsafeMutablePointer<Float>?, _ z: UnsafePointer<Float>, lse: Float, _ V: Int,
                                scale c: Float) -> Double {
        let h = LogitRow.addScaledSoftmax(nil, z, lse: lse, V, scale: 0)
        if let d, c != 0 {
            let hf = Float(h)
            for v in 0..<V {
                let lp = z[v] - lse
                d[v] += c * expf(lp) * (lp + hf)
            }
        }
        return h
    }
}
