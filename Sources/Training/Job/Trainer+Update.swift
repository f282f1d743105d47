import Distributed
import Foundation
import TensorCore

/// Phases 3–5 of a step: gradient sync, the update, and the producer's observation.
extension Trainer {
    /// In-place sums of the trainable gradients over ranks: the overlapped buckets' remainder
    /// (started during the last backward), or one allreduce per trainable range.
    func syncGradients(overlapped: Bool) {
        if let zero { return zero.gradients.finish() }  // --zero: reduce-scattered into shards
        if overlapped {
            buckets.finish(canonical: blockRanges)
        } else {
            for r in trainable.ranges {
                comm.allreduce(UnsafeMutableBufferPointer(start: model.parameters.grads + r.lowerBound, count: r.count), op: .sum)
            }
        }
    }

    /// Global loss and diagnostics, the gradient norm, the non-finite policy, then clipping
    /// and the optimizer in one pass over the trainable ranges.
    func update(step: Int, total: ObjectiveResult, localBad: Bool, prepared: PreparedStep) -> StepReport {
        let (sums, names) = reduceScalars(loss: total.loss, bad: localBad, diag: total.diagnostics, counts: total.diagnosticCounts)
        let globalLoss = sums[0]
        let badRank = Int(sums[1]) - 1
        // --l2-init: λ(θ − θ₀) joins the (global) data gradient before norm and clipping.
        let penalty = l2Init?.addGradient(model.parameters, ranges: trainable.ranges)
        let norm = zero?.gradientNorm() ?? trainable.gradientNorm(model.parameters)
        let lr = schedule.lr(at: step)
        var report = StepReport(step: step, loss: globalLoss, lr: lr, gradNorm: norm, tokens: prepared.globalTokens,
                                sequenceTokens: prepared.globalSequenceTokens - prepared.batch.tokensSeenBefore, lossTokens: prepared.context.globalLossTokens, diagnostics: [], skipped: false)
        for (i, name) in names.enumerated() {
            let count = sums[2 + names.count + i]
            report.diagnostics.append((name, count > 0 ? sums[2 + i] / count : sums[2 + i]))
        }
        report.diagnostics += objective.derivedFigures(report.diagnostics)
        if let penalty { report.diagnostics.append(("l2_init_penalty", penalty)) }
        // Non-finite loss or gradient: the same decision on every rank (values are global).
        if !globalLoss.isFinite || !norm.isFinite {
            let whereFrom = badRank >= 0 ? " (first seen on rank \(badRank))" : ""
            if setup.recipe.nanPolicy == .skip {
                // Skipping cannot undo an earlier update that made the weights themselves
                // non-finite (a step of lr·update that overflows): every later step would be
                // skipped and a broken model saved as the run's result. Weights are replicated,
                // so every rank decides alike.
                if !trainable.valuesAreUsable(model.parameters) {
                    Fatal.agree(comm.isCoordinator ? "non-finite or overflowing weights at step \(step + 1) (|w| ≥ 1.8e19, whose products overflow float32): an earlier update diverged, and nan_policy: skip cannot recover from that; lower the learning rate" : nil,
                                code: Fatal.Code.training)
                }
                skippedSteps += 1
                skipped.inARow += 1
                // Finite weights that still give non-finite values on batch after batch (9.9e13
                // after lr 1e6: every logit overflows) fail the same way: the run would skip
                // to the end and save them with exit 0.
                let limit = setup.recipe.nanSkipLimit
                if limit > 0 && skipped.inARow >= limit {
                    Fatal.agree(comm.isCoordinator ? "\(limit) steps in a row had non-finite values (steps \(step + 2 - limit)–\(step + 1)): the weights themselves give them, so nan_policy: skip would skip to the end and save a broken model; lower the learning rate (nan_skip_limit sets how many in a row stop the run)" : nil,
                                code: Fatal.Code.training)
                }
                report.skipped = true
                return report
            }
            // Global values, so every rank takes this branch; the coordinator's message prints.
            let what = "non-finite \(globalLoss.isFinite ? "gradient" : "loss") at step \(step + 1)\(whereFrom)"
            // At the first step no update has been applied: the learning rate is not the cause.
            let args = setup.recipe.objectiveArgs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
            let cause = step == 0
                ? "; no update has been applied yet, so the loaded weights, the data or the objective's arguments give it (objective \(setup.recipe.objective)\(args.isEmpty ? "" : ": " + args))"
                : "; lower the learning rate, or set nan_policy: skip to skip such steps"
            Fatal.agree(comm.isCoordinator ? what + cause : nil, code: Fatal.Code.training)
        }
        skipped.inARow = 0
        applyOptimizer(lr: lr, gradScale: clipScale(norm: norm, maxNorm: setup.recipe.gradClip))   // Trainer+GradientClearing.swift
        ema?.update(from: model.parameters, ranges: trainable.ranges)
        report.diagnostics += objective.endStep(loss: globalLoss, diagnostics: report.diagnostics)
        return report
    }

    /// Allreduces [loss, bad-rank flag, diagnostic sums…, diagnostic counts…] in one call.
    /// Diagnostic names are agreed first (a rank with no micro-batch has none).
    func reduceScalars(loss: Double, bad: Bool, diag: [String: Double], counts: [String: Double]) -> ([Double], [String]) {
        let names = Set(comm.allgather(WireList(diag.keys.sorted())).flatMap(\.items)).sorted()
        var v = [loss, 0] + names.map { diag[$0] ?? 0 } + names.map { counts[$0] ?? 0 }
        comm.allreduce(&v, op: .sum)
        var flag = [bad ? Double(comm.rank + 1) : 0]
        comm.allreduce(&flag, op: .max)  // highest failing rank, if several
        v[1] = flag[0]
        return (v, names)
    }

    /// Every rank's per-sequence statistics, in step-batch order, to the producer on every rank.
    func observe(step: Int, local: [SequenceStatistics]) {
        let all = comm.allgather(WireList(local)).flatMap(\.items).sorted { $0.index < $1.index }
        source.observe(step: step, statistics: all)
    }
}
