import Foundation
import TensorCore

// Shared plumbing for the objective files: row kernels over one position's logits, the
// stop-gradient-weighted NLL and f(p) losses most methods reduce to, grouping rows by
// sequence, and a per-step cache for values derived from the statistics pass.

/// Objectives whose stop-gradient quantities (weights, selections, samples, sequence weights)
/// can be computed from other logits than the differentiable argument.
/// `lossAndGradient(input)` is `evaluate(input, detached: input.logits, …)`; the tests pass the
/// unperturbed logits as `detached` so a finite-difference check of dL/dlogits holds every
/// sg(·) fixed, exactly as the method defines its gradient.
public protocol DetachedEvaluable: Objective {
    func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                  dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult
}

extension DetachedEvaluable {
    /// Training detaches at the logits themselves.
    public func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
        evaluate(input, detached: input.logits, dlogits: dlogits)
    }
}

enum LogitRow {

    /// `d[v] += a·softmax(z)_v` when `d` is given; returns the entropy of softmax(z), which
    /// costs one multiply-add per entry on top of the exp the gradient needs anyway.
    @inline(__always)
    static func addScaledSoftmax(_ d: UnsafeMutablePointer<Float>?, _ z: UnsafePointer<Float>,
                                 lse: Float, _ V: Int, scale a: Float) -> Double {
        var h: Double = 0
        if let d {
            for v in 0..<V {
                let lp = z[v] - lse, p = expf(lp)
                d[v] += a * p
                h -= Double(p * lp)
            }
        } else {
            for v in 0..<V { let lp = z[v] - lse; h -= Double(expf(lp) * lp) }
        }
        return h
    }

    /// log p_y under the detached logits: the live value when both pointers are the same
    /// buffer (every production call), otherwise recomputed from the detached row.
    @inline(__always)
    static func detachedLogProb(_ detached: UnsafePointer<Float>, _ live: UnsafePointer<Float>,
                                row r: Int, _ V: Int, target y: Int, liveLogP: Float) -> Float {
        if detached == live { return liveLogP }
        let z = detached + r * V
        return z[y] - SoftmaxKernels.logSumExp(z, count: V)
    }
}

/// Target of a loss row; a loss row without a valid target is a batching bug, not data.
@inline(__always)
func lossTarget(_ input: ObjectiveInput, _ r: Int, _ objective: String) -> Int {
    let y = Int(input.targets[r])
    precondition(y >= 0 && y < input.vocab, "objective \(objective): loss row \(r) has target \(y) outside vocab \(input.vocab)")
    return y
}

/// 1/count for a global normaliser; an empty global batch contributes nothing.
@inline(__always)
func inverseCount<T: BinaryInteger>(_ n: T) -> Float { n > 0 ? 1 / Float(n) : 0 }
@inline(__always)
func inverseCount(_ n: Double) -> Float { n > 0 ? Float(1 / n) : 0 }

/// Sums every objective reports: Σp and Σentropy over its loss rows, and their count.
struct TokenDiagnostics {
    var sumP = 0.0, entropy = 0.0, count = 0.0
    func into(_ d: inout [String: Double], _ c: inout [String: Double]) {
        d["mean_p"] = sumP; c["mean_p"] = count
        d["entropy"] = entropy; c["entropy"] = count
    }
}

enum ObjectiveLosses {
    /// Σ_rows m·w_r·(−log p_y)·scale and its gradient m·w_r·scale·(softmax − onehot(y)),
    /// accumulated: the loss of every method whose per-token weight is detached (DFT, TALR,
    /// iw-SFT, token selection). `weight(r, log sg(p_y))` returns w_r; rows with w_r = 0
    /// are skipped except for diagnostics. Returns (Σ m·w·ℓ unscaled, Σ w over loss rows).
    static func weightedNLL(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                            dlogits: UnsafeMutablePointer<Float>?, scale: Float, objective: String,
                            diag: inout TokenDiagnostics,
                            weight: (_ row: Int, _ detachedLogP: Float) -> Float) -> (loss: Double, sumW: Double) {
        let V = input.vocab
        var total = 0.0, sumW = 0.0
        for r in 0..<input.rows where input.mask[r] != 0 {
            let y = lossTarget(input, r, objective)
            let z = input.logits + r * V
            let lse = SoftmaxKernels.logSumExp(z, count: V)
            let logp = z[y] - lse
            let w = weight(r, LogitRow.detachedLogProb(detached, input.logits, row: r, V, target: y, liveLogP: logp))
            let m = input.mask[r]
            sumW += Double(w)
            diag.sumP += Double(expf(logp)); diag.count += 1
            let a = m * w * scale
            diag.entropy += LogitRow.addScaledSoftmax(a != 0 ? dlogits.map { $0 + r * V } : nil, z, lse: lse, V, scale: a)
            if w == 0 { continue }
            total += Double(m * w * -logp)
            if let d = dlogits { d[r * V + y] -= a }
        }
        return (total, sumW)
    }

    /// Σ_rows m·f(p_y)·scale over rows where `include(r, log sg(p_y))`, for a loss that is a
    /// function of the (not detached) target probability. `f(p)` returns (f(p), c = p·f'(p));
    /// then ∂f/∂z_v = c·([v = y] − p_v) (the softmax Jacobian). Returns Σ m·f unscaled.
    static func probabilityLoss(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                                dlogits: UnsafeMutablePointer<Float>?, scale: Float, objective: String,
                                diag: inout TokenDiagnostics,
                                include: (_ row: Int, _ detachedLogP: Float) -> Bool,
                                f: (_ p: Float, _ logp: Float) -> (value: Float, c: Float)) -> Double {
        let V = input.vocab
        var total = 0.0
        for r in 0..<input.rows where input.mask[r] != 0 {
            let y = lossTarget(input, r, objective)
            let z = input.logits + r * V
            let lse = SoftmaxKernels.logSumExp(z, count: V)
            let logp = z[y] - lse, p = expf(logp)
            diag.sumP += Double(p); diag.count += 1
            guard include(r, LogitRow.detachedLogProb(detached, input.logits, row: r, V, target: y, liveLogP: logp)) else {
                diag.entropy += LogitRow.addScaledSoftmax(nil, z, lse: lse, V, scale: 0)
                continue
            }
            let m = input.mask[r]
            let (value, c) = f(p, logp)
            total += Double(m * value)
            let a = m * c * scale
            diag.entropy += LogitRow.addScaledSoftmax(dlogits.map { $0 + r * V }, z, lse: lse, V, scale: -a)
            if let d = dlogits { d[r * V + y] += a }
        }
        return total
    }
}

/// Rows grouped by `sequenceId`: a dense slot per distinct id (first-appearance order) and
/// each row's position within its sequence. A sequence never spans micro-batches (one row
/// of padding layout, or one packed segment), so per-sequence sums over one micro-batch are
/// complete.
struct SequenceIndex {
    var slot: [Int]          // [N], −1 for padding (id < 0)
    var position: [Int]      // [N], index of the row among its sequence's rows
    var count = 0
    init(_ ids: [Int32]) {
        slot = [Int](repeating: -1, count: ids.count)
        position = [Int](repeating: 0, count: ids.count)
        var dense: [Int32: Int] = [:]
        var seen: [Int] = []
        for (r, id) in ids.enumerated() where id >= 0 {
            let s: Int
            if let k = dense[id] { s = k } else { s = count; dense[id] = s; count += 1; seen.append(0) }
            slot[r] = s
            position[r] = seen[s]
            seen[s] += 1
        }
    }
}

/// A value derived from the gathered statistics, computed once per step in `beginStep`.
/// If `beginStep` did not see statistics for this step, it is derived from the input's
/// context on first use; with no statistics at all the trainer skipped the statistics pass
/// the objective declared, which is a wiring bug worth stopping on.
final class StepCache<Value> {
    private var entry: (step: Int, value: Value)?
    func store(_ context: StepContext, _ make: (StepContext) -> Value) {
        entry = context.statistics.isEmpty ? nil : (context.step, make(context))
    }
    func value(_ context: StepContext, objective: String, _ make: (StepContext) -> Value) -> Value {
        if let e = entry, e.step == context.step { return e.value }
        precondition(!context.statistics.isEmpty,
                     "objective \(objective) needs the statistics pass (requirements.statisticsPass), but StepContext.statistics is empty")
        let v = make(context)
        entry = (context.step, v)
        return v
    }
}

/// The frozen reference's logits; declared in `requirements.referenceModel`.
@inline(__always)
func requireReference(_ input: ObjectiveInput, _ objective: String) -> UnsafePointer<Float> {
    guard let ref = input.referenceLogits else {
        preconditionFailure("objective \(objective) needs reference logits (requirements.referenceModel) but the input has none")
    }
    return ref
}

/// log π_ref(target) of a row: precomputed (`ObjectiveInput.referenceLogProbs`, under
/// `--precompute-ref-log-probs`) or from the reference's logits, as the scoring pass computes it
/// (`Trainer.targetLogProbs`: `targetLogProb`).
struct ReferenceTargets {
    let logits: UnsafePointer<Float>?, precomputed: [Float], vocab: Int

    init(_ input: ObjectiveInput, _ objective: String) {
        vocab = input.vocab; precomputed = input.referenceLogProbs
        precondition(precomputed.isEmpty || precomputed.count == input.rows,
                     "objective \(objective): \(precomputed.count) precomputed reference log-probs for \(input.rows) rows")
        logits = precomputed.isEmpty ? requireReference(input, objective) : nil
    }

    func logProb(row r: Int, target y: Int) -> Float {
        guard let z = logits.map({ $0 + r * vocab }) else { return precomputed[r] }
        return targetLogProb(z, y, vocab)
    }
}

/// log softmax(z)[y] over a row of `vocab` logits, in float: z_y − logsumexp z.
@inline(__always)
func targetLogProb(_ z: UnsafePointer<Float>, _ y: Int, _ vocab: Int) -> Float {
    z[y] - SoftmaxKernels.logSumExp(z, count: vocab)
}

/// Argument checks shared by the objective initialisers: the message names the argument.
@inline(__always)
func checkArg(_ ok: Bool, _ objective: String, _ message: @autoclosure () -> String) throws {
    if !ok { throw ObjectiveError("objective \(objective): \(message())") }
}
