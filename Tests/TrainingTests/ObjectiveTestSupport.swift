import XCTest
import TensorCore
@testable import Training

/// A small batch that owns its buffers and runs an objective the way the trainer does:
/// statistics pass over every (rank, micro-batch) part, gathered per rank, `beginStep`, then
/// `lossAndGradient` per part into one dlogits buffer.
final class ObjectiveTestBatch {
    let rows: Int, vocab: Int
    let logits: UnsafeMutablePointer<Float>
    let reference: UnsafeMutablePointer<Float>?
    let old: UnsafeMutablePointer<Float>?
    var targets: [Int32], mask: [Float], sequenceId: [Int32]

    init(vocab: Int, logits: [Float], targets: [Int32], mask: [Float], sequenceId: [Int32],
         reference: [Float]? = nil, old: [Float]? = nil) {
        precondition(logits.count == targets.count * vocab)
        rows = targets.count; self.vocab = vocab
        func copy(_ a: [Float]) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: a.count)
            p.initialize(from: a, count: a.count)
            return p
        }
        self.logits = copy(logits)
        self.reference = reference.map(copy)
        self.old = old.map(copy)
        self.targets = targets; self.mask = mask; self.sequenceId = sequenceId
    }
    deinit { logits.deallocate(); reference?.deallocate(); old?.deallocate() }

    /// One token, V = 4, target prob p: logits [ln(3p/(1−p)), 0, 0, 0] (the others share 1 − p).
    static func vectorLogits(_ p: Double) -> [Float] { [Float(log(3 * p / (1 - p))), 0, 0, 0] }
    static func single(p: Double, reference: [Float]? = nil, old: [Float]? = nil) -> ObjectiveTestBatch {
        ObjectiveTestBatch(vocab: 4, logits: vectorLogits(p), targets: [0], mask: [1], sequenceId: [0],
                           reference: reference, old: old)
    }

    /// Random batch: 10 rows, V = 7, three sequences (rows 0–3, 4–6, 7–9), rows 2 and 7 masked.
    static func random(seed: UInt64 = 7, vocab V: Int = 7, spread: Float = 1.5) -> ObjectiveTestBatch {
        var rng = RNG(seed: seed)
        let rows = 10
        let logits = (0..<rows * V).map { _ in rng.normal() * spread }
        let reference = (0..<rows * V).map { _ in rng.normal() * spread }
        let old = logits.map { $0 + rng.normal() * 0.3 }
        var targets = (0..<rows).map { _ in Int32(rng.below(V)) }
        var mask = [Float](repeating: 1, count: rows)
        mask[2] = 0; mask[7] = 0; targets[7] = -1
        return ObjectiveTestBatch(vocab: V, logits: logits, targets: targets, mask: mask,
                                  sequenceId: [0, 0, 0, 0, 1, 1, 1, 2, 2, 2], reference: reference, old: old)
    }

    var globalLossTokens: Int { mask.filter { $0 != 0 }.count }

    func context(step: Int = 0, totalSteps: Int = 10, seed: UInt64 = 42) -> StepContext {
        let sequences = Set(zip(sequenceId, mask).filter { $0.1 != 0 && $0.0 >= 0 }.map(\.0)).count
        return StepContext(step: step, totalSteps: totalSteps, globalLossTokens: globalLossTokens,
                           globalSequences: sequences, seed: seed)
    }

    /// The objective's view of rows `range`, with logits read from `logits` (default: the batch's).
    func input(_ range: Range<Int>, _ context: StepContext, logits: UnsafePointer<Float>? = nil) -> ObjectiveInput {
        let V = vocab
        var tokensOf: [Int32: Float] = [:]
        for (id, m) in zip(sequenceId, mask) where id >= 0 { tokensOf[id, default: 0] += m }
        let ids = Array(sequenceId[range])
        return ObjectiveInput(rows: range.count, vocab: V, logits: (logits ?? UnsafePointer(self.logits)) + range.lowerBound * V,
                              targets: Array(targets[range]), mask: Array(mask[range]),
                              sequenceLossTokens: ids.map { $0 >= 0 ? tokensOf[$0] ?? 0 : 0 }, sequenceId: ids,
                              referenceLogits: reference.map { UnsafePointer($0) + range.lowerBound * V },
                              oldLogits: old.map { UnsafePointer($0) + range.lowerBound * V },
                              context: context, rng: RNG(seed: 99))
    }

    /// The context after the statistics pass over `parts` (per rank, its micro-batch ranges).
    func prepare(_ objective: Objective, parts: [[Range<Int>]], context base: StepContext) -> StepContext {
        var context = base
        if objective.requirements.statisticsPass {
            context.statistics = parts.map { rank in rank.flatMap { objective.statistics(input($0, base)) } }
        }
        objective.beginStep(context)
        return context
    }

    struct Run {
        var loss = 0.0
        var grad: [Float]
        var diagnostics: [String: Double] = [:], counts: [String: Double] = [:]
        func mean(_ key: String) -> Double { diagnostics[key, default: .nan] / counts[key, default: .nan] }
    }

    func run(_ objective: Objective, parts: [[Range<Int>]]? = nil, context base: StepContext? = nil) -> Run {
        let parts = parts ?? [[0..<rows]]
        let context = prepare(objective, parts: parts, context: base ?? self.context())
        var out = Run(grad: [Float](repeating: 0, count: rows * vocab))
        out.grad.withUnsafeMutableBufferPointer { g in
            for rank in parts {
                for range in rank {
                    let res = objective.lossAndGradient(input(range, context), dlogits: g.baseAddress! + range.lowerBound * vocab)
                    out.loss += res.loss
                    for (k, v) in res.diagnostics { out.diagnostics[k, default: 0] += v }
                    for (k, v) in res.diagnosticCounts { out.counts[k, default: 0] += v }
                }
            }
        }
        return out
    }

    /// The loss at `perturbed` logits with every stop-gradient quantity (weights, selections,
    /// samples, statistics) taken at the batch's own logits, as the method's gradient defines.
    func surrogateLoss(_ objective: Objective, perturbed: UnsafePointer<Float>, context: StepContext) -> Double {
        let inp = input(0..<rows, context, logits: perturbed)
        if let o = objective as? DetachedEvaluable {
            return o.evaluate(inp, detached: UnsafePointer(logits), dlogits: nil).loss
        }
        let scratch = [Float](repeating: 0, count: rows * vocab)
        return scratch.withUnsafeBufferPointer { s in
            objective.lossAndGradient(inp, dlogits: UnsafeMutablePointer(mutating: s.baseAddress!)).loss
        }
    }

    /// Largest |central difference − returned gradient| over every logit.
    func finiteDifferenceError(_ objective: Objective, context base: StepContext? = nil, h: Float = 1e-2) -> Float {
        let context = prepare(objective, parts: [[0..<rows]], context: base ?? self.context())
        let analytic = run(objective, context: base ?? self.context()).grad
        let n = rows * vocab
        let work = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { work.deallocate() }
        work.initialize(from: logits, count: n)
        var worst: Float = 0
        for i in 0..<n {
            let x = work[i]
            work[i] = x + h; let up = surrogateLoss(objective, perturbed: work, context: context)
            work[i] = x - h; let down = surrogateLoss(objective, perturbed: work, context: context)
            work[i] = x
            worst = max(worst, abs(Float((up - down) / Double(2 * h)) - analytic[i]))
        }
        return worst
    }
}

func makeObjective(_ name: String, _ args: [String: String] = [:]) throws -> Objective {
    try ObjectiveRegistry.make(name: name, args: args)
}
