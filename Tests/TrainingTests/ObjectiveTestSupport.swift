import XCTest
import TensorCore
import TestSupport
@testable import Training

/// A small batch that owns its buffers: the objective's view of it for finite-difference
/// checks of one micro-batch, and the same batch as examples for the real trainer (`harness`).
final class ObjectiveTestBatch {
    let rows: Int, vocab: Int
    let logits: UnsafeMutablePointer<Float>
    let reference: UnsafeMutablePointer<Float>?
    let old: UnsafeMutablePointer<Float>?
    var targets: [Int32], mask: [Float], sequenceId: [Int32]
    /// The step batch's sequences (pair links for pair objectives); empty otherwise.
    var sequences: [StepSequence] = []
    /// Per row: the sampler's log-prob of the target (rollout objectives); empty otherwise.
    var behaviour: [Float] = []
    /// Per row: token-clean's / forgetting's fixed label (`scores=fixed`); empty otherwise.
    var labels: [Float] = []
    /// Per row: the reference's log p(target), in place of its logits (`--precompute-ref-log-probs`);
    /// empty: the objective reads `reference`.
    var referenceLogProbs: [Float] = []

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

    /// One token, V = 4, target probability p: logits [ln(3p/(1−p)), 0, 0, 0].
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

    /// The random batch with every target's logit raised by `boost`, so p(target) is mostly
    /// well above 1/V: for objectives whose gradient vanishes at small p (power's p^α(1 − p) at
    /// α = 10 is ~3e-8 on `random`, where p is near 1/7).
    static func confident(seed: UInt64 = 7, boost: Float = 3) -> ObjectiveTestBatch {
        let batch = random(seed: seed)
        for r in 0..<batch.rows where batch.targets[r] >= 0 { batch.logits[r * batch.vocab + Int(batch.targets[r])] += boost }
        return batch
    }

    /// The random batch laid out as two preference pairs for pair objectives (DPO): 12 rows,
    /// V = 7, sequences 0–3 of three rows each, 0/1 and 2/3 linked as chosen/rejected (as
    /// `PairProducer` links examples 2i, 2i + 1); rows 2 and 7 masked, as in `random`.
    static func randomPairs(seed: UInt64 = 7, vocab V: Int = 7, spread: Float = 1.5) -> ObjectiveTestBatch {
        var rng = RNG(seed: seed)
        let rows = 12
        let logits = (0..<rows * V).map { _ in rng.normal() * spread }
        let reference = (0..<rows * V).map { _ in rng.normal() * spread }
        var targets = (0..<rows).map { _ in Int32(rng.below(V)) }
        var mask = [Float](repeating: 1, count: rows)
        mask[2] = 0; mask[7] = 0; targets[7] = -1
        let batch = ObjectiveTestBatch(vocab: V, logits: logits, targets: targets, mask: mask,
                                       sequenceId: (0..<rows).map { Int32($0 / 3) }, reference: reference,
                                       old: reference)   // spin's opponent: DPO's reference as the old policy
        // Each answer's loss mask holds its rows' mask (after the first token, never a target), as
        // the trainer's sequences do: ipo and sigmoid_norm divide by its count.
        batch.sequences = (0..<4).map { i in
            let rows = zip(batch.sequenceId, batch.mask).filter { $0.0 == Int32(i) }.map { UInt8($0.1) }
            var s = StepSequence(example: i, origin: .demonstration, ids: [Int32](repeating: 0, count: rows.count + 1),
                                 lossMask: [0] + rows, promptLength: 1)
            s.pair = i ^ 1; s.pairRole = i % 2 == 0 ? .chosen : .rejected
            return s
        }
        return batch
    }

    /// Two TPO triples: 18 rows, V = 7, sequences 0–5 of three rows each — pairs 0/1 and 2/3
    /// linked as in `randomPairs`, and their gold answers at 4 and 5 (`PairRole.gold`, linked to
    /// 0 and 2, as `PairProducer` links a triple); rows 2 and 7 masked, as in `random`.
    static func randomTriples(seed: UInt64 = 7, vocab V: Int = 7) -> ObjectiveTestBatch {
        var rng = RNG(seed: seed)
        let rows = 18
        let logits = (0..<rows * V).map { _ in rng.normal() * 1.5 }
        var targets = (0..<rows).map { _ in Int32(rng.below(V)) }
        var mask = [Float](repeating: 1, count: rows)
        mask[2] = 0; mask[7] = 0; targets[7] = -1
        let batch = ObjectiveTestBatch(vocab: V, logits: logits, targets: targets, mask: mask, sequenceId: (0..<rows).map { Int32($0 / 3) })
        batch.sequences = (0..<6).map { i in
            let rows = zip(batch.sequenceId, batch.mask).filter { $0.0 == Int32(i) }.map { UInt8($0.1) }
            var s = StepSequence(example: i, origin: .demonstration, ids: [Int32](repeating: 0, count: rows.count + 1),
                                 lossMask: [0] + rows, promptLength: 1)
            if i < 4 { s.pair = i ^ 1; s.pairRole = i % 2 == 0 ? .chosen : .rejected } else { s.pair = 2 * (i - 4); s.pairRole = .gold }
            return s
        }
        return batch
    }

    /// The pair batch as kto's unpaired rows: sequence 0 and 2 desirable, 1 undesirable, each
    /// alone (`pair` −1), and sequence 3 a mismatched pair of its KL term, whose reference puts
    /// each target 1 lower, so the estimate r is positive and not clamped away.
    static func randomUnpaired() -> ObjectiveTestBatch {
        let batch = randomPairs()
        for (i, role) in [PairRole.chosen, .rejected, .chosen, .none].enumerated() {
            batch.sequences[i].pair = -1; batch.sequences[i].pairRole = role
        }
        batch.sequences[3].origin = .mismatched
        for r in 0..<batch.rows where batch.sequenceId[r] == 3 {
            for v in 0..<batch.vocab { batch.reference![r * batch.vocab + v] = batch.logits[r * batch.vocab + v] }
            if batch.targets[r] >= 0 { batch.reference![r * batch.vocab + Int(batch.targets[r])] -= 1 }
        }
        return batch
    }

    /// The random batch as three rollouts (advantages 1.3, −0.7, 0.4) whose sampler's log-probs
    /// come from the old-policy logits, so ratios differ from 1 and some tokens are clipped.
    static func randomRollouts(seed: UInt64 = 7, vocab V: Int = 7) -> ObjectiveTestBatch {
        let batch = random(seed: seed, vocab: V)
        // Each sequence's loss mask holds its rows' mask (after the first token, never a target),
        // so objectives that count loss tokens per sequence kind (chord) see the batch's tokens.
        batch.sequences = [Float(1.3), -0.7, 0.4].enumerated().map { i, a in
            let rows = zip(batch.sequenceId, batch.mask).filter { $0.0 == Int32(i) }.map { UInt8($0.1) }
            var s = StepSequence(example: i, origin: .rollout, ids: [Int32](repeating: 0, count: rows.count + 1),
                                 lossMask: [0] + rows, promptLength: 1)
            s.advantage = a
            return s
        }
        batch.behaviour = (0..<batch.rows).map { r in
            guard batch.mask[r] != 0 else { return 0 }
            let z = batch.old! + r * V
            return z[Int(batch.targets[r])] - SoftmaxKernels.logSumExp(z, count: V)
        }
        return batch
    }

    /// Per row: log p(target) at the batch's own logits (0 on masked rows).
    var ownLogProbs: [Float] {
        (0..<rows).map { r in
            guard mask[r] != 0 else { return 0 }
            let z = logits + r * vocab
            return z[Int(targets[r])] - SoftmaxKernels.logSumExp(z, count: vocab)
        }
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
        var input = ObjectiveInput(rows: range.count, vocab: V, logits: (logits ?? UnsafePointer(self.logits)) + range.lowerBound * V,
                                  targets: Array(targets[range]), mask: Array(mask[range]),
                                  sequenceLossTokens: ids.map { $0 >= 0 ? tokensOf[$0] ?? 0 : 0 }, sequenceId: ids,
                                  referenceLogits: referenceLogProbs.isEmpty ? reference.map { UnsafePointer($0) + range.lowerBound * V } : nil,
                                  oldLogits: old.map { UnsafePointer($0) + range.lowerBound * V },
                                  context: context, sequences: sequences,
                                  behaviourLogProbs: behaviour.isEmpty ? [] : Array(behaviour[range]),
                                  tokenWeights: labels.isEmpty ? [] : Array(labels[range]))
        if !referenceLogProbs.isEmpty { input.referenceLogProbs = Array(referenceLogProbs[range]) }
        return input
    }

    /// The batch with fixed token labels (`scores=fixed`): each row's label, and the step
    /// batch's sequences carrying them as the trainer's `TokenLabels.apply` does, so the
    /// objective counts kept and dropped tokens over the step.
    func labelled(_ labels: [Float]) -> ObjectiveTestBatch {
        precondition(labels.count == rows)
        self.labels = labels
        let count = Int(sequenceId.max() ?? -1) + 1
        sequences = (0..<count).map { i in
            let rows = (0..<self.rows).filter { sequenceId[$0] == Int32(i) }
            var s = StepSequence(example: i, origin: .demonstration, ids: [Int32](repeating: 0, count: rows.count + 1),
                                 lossMask: [0] + rows.map { UInt8(mask[$0]) }, promptLength: 1)
            s.tokenWeights = [0] + rows.map { labels[$0] }
            return s
        }
        return self
    }

    /// The context after this micro-batch's own statistics (as the only micro-batch of the
    /// step): what `evaluate` needs for a finite-difference check of one micro-batch. How the
    /// trainer gathers statistics over ranks is tested through the trainer (`harness`).
    func prepare(_ objective: Objective, context base: StepContext) -> StepContext {
        var context = base
        if objective.requirements.statisticsPass { context.statistics = [objective.statistics(input(0..<rows, base))] }
        objective.beginStep(context)
        return context
    }

    /// The same batch for the real trainer: one example per sequence, each position's logits
    /// (and reference / old-policy logits) in the table model. Masked rows without a target
    /// get token 0 (they are out of the loss either way).
    var harness: TrainerHarness {
        var sequences: [[(target: Int32, trained: Bool)]] = []
        var rowsBySequence: [[Int]] = []
        for r in 0..<rows {
            let id = Int(sequenceId[r])
            while sequences.count <= id { sequences.append([]); rowsBySequence.append([]) }
            sequences[id].append((max(targets[r], 0), mask[r] != 0))
            rowsBySequence[id].append(r)
        }
        let order = rowsBySequence.flatMap { $0 }
        func rowsOf(_ p: UnsafeMutablePointer<Float>) -> [[Float]] {
            order.map { r in Array(UnsafeBufferPointer(start: p + r * vocab, count: vocab)) }
        }
        var h = TrainerHarness(vocab: vocab, sequences: sequences, current: rowsOf(logits),
                               reference: reference.map(rowsOf), old: old.map(rowsOf))
        if !behaviour.isEmpty {
            // Token-aligned: entry t + 1 of example e is the log-prob of the target at position t.
            let perSequence = rowsBySequence.map { [0] + $0.map { behaviour[$0] } }
            let advantages = self.sequences.map(\.advantage), origins = self.sequences.map(\.origin)
            h.makeProducer = { FixedRolloutProducer(examples: $0.examples, advantages: advantages, behaviour: perSequence, origins: origins) }
        }
        // tpo's batch: a gold answer rides on its chosen example (`Example.gold`), as `Dataset(pairsAt:)`
        // keeps it, and its rows stay in the table (the gold sequences are the batch's last).
        let golds = self.sequences.indices.filter { self.sequences[$0].pairRole == .gold }
        if !golds.isEmpty {
            precondition(golds == Array(self.sequences.count - golds.count..<self.sequences.count), "gold answers last")
            for g in golds { h.examples[self.sequences[g].pair].gold = GoldAnswer(h.examples[g]) }
            h.tableSequences = h.examples.count
            h.examples.removeLast(golds.count)
        }
        // kto's batch: through the trainer every sequence is a labelled row (the mismatched one a
        // desirable row), and the trainer's producer makes the step's mismatched pairs itself.
        if self.sequences.contains(where: { $0.origin == .mismatched }) {
            for i in h.examples.indices { h.examples[i].label = self.sequences[i].pairRole != .rejected }
        }
        return h
    }

    /// dL/dlogits of a harness result in this batch's row order.
    func gradientRows(_ result: TrainerHarness.Result, _ harness: TrainerHarness) -> [Float] {
        var seen: [Int32: Int] = [:]
        return (0..<rows).flatMap { r -> [Float] in
            let id = sequenceId[r], t = seen[id, default: 0]
            seen[id] = t + 1
            return Array(harness.gradient(result, sequence: Int(id), position: t))
        }
    }

    /// The loss at `perturbed` logits with every stop-gradient quantity (weights, selections,
    /// samples, statistics) taken at the batch's own logits, as the method's gradient defines.
    /// Rows without sampler log-probs (scored data) on an objective that reads them: π_behaviour
    /// is π_θ detached, so it stays at the batch's own log-probs while the logits move.
    func surrogateLoss(_ objective: Objective, perturbed: UnsafePointer<Float>, context: StepContext) -> Double {
        var inp = input(0..<rows, context, logits: perturbed)
        if behaviour.isEmpty && !sequences.isEmpty && objective.requirements.behaviourLogProbs { inp.behaviourLogProbs = ownLogProbs }
        if let o = objective as? DetachedEvaluable {
            return o.evaluate(inp, detached: UnsafePointer(logits), dlogits: nil).loss
        }
        let scratch = [Float](repeating: 0, count: rows * vocab)
        return scratch.withUnsafeBufferPointer { s in
            objective.lossAndGradient(inp, dlogits: UnsafeMutablePointer(mutating: s.baseAddress!)).loss
        }
    }

    /// Worst per-entry disagreement between dL/dlogits from `lossAndGradient` and the
    /// Richardson-extrapolated central difference of the surrogate loss, over every logit:
    /// max |numeric − analytic| − (1e-3·max(|numeric|, |analytic|) + 2e-5): ≤ 0 when every entry
    /// agrees to 0.1 %, or to 2e-5 where it is zero up to the float32 round-off of the loss
    /// (≈ 1e-7 relative, divided by h).
    /// The analytic gradient must itself be visible — its largest entry above `minGradient`
    /// (asserted, `label` in the message): a configuration whose gradient is ~0 everywhere
    /// would pass on the absolute 2e-5 alone whatever the objective computed.
    func finiteDifferenceError(_ objective: Objective, context base: StepContext? = nil, h: Float = 1e-2,
                               minGradient: Double = 1e-3, label: String = "",
                               file: StaticString = #filePath, line: UInt = #line) -> Double {
        let context = prepare(objective, context: base ?? self.context())
        var analytic = [Float](repeating: 0, count: rows * vocab)
        analytic.withUnsafeMutableBufferPointer { g in
            _ = objective.lossAndGradient(input(0..<rows, context), dlogits: g.baseAddress!)
        }
        let largest = analytic.map { Double(abs($0)) }.max() ?? 0
        XCTAssertGreaterThan(largest, minGradient, "\(label): the analytic gradient is ~0, so the finite-difference check would pass trivially",
                             file: file, line: line)
        let n = rows * vocab
        let work = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { work.deallocate() }
        work.initialize(from: logits, count: n)
        var worst = -Double.infinity
        for i in 0..<n {
            let numeric = richardsonDerivative(work + i, h: h) { surrogateLoss(objective, perturbed: work, context: context) }
            let a = Double(analytic[i])
            worst = max(worst, abs(numeric - a) - (1e-3 * max(abs(numeric), abs(a)) + 2e-5))
        }
        return worst
    }
}

func makeObjective(_ name: String, _ args: [String: String] = [:]) throws -> Objective {
    try ObjectiveRegistry.make(name: name, args: args)
}

/// An objective's result through the real trainer, in the batch's row order.
struct Trained {
    var loss: Double
    var grad: [Float]
    var diagnostics: [String: Double]   // as the step reports them (means where counted)
}

extension ObjectiveTestBatch {
    /// `name` through `Trainer.step` on this batch (one example per sequence): at `ranks` ranks
    /// with `microBatchSize` sequences per micro-batch, the reported step `step` of `totalSteps`.
    func train(_ name: String, _ args: [String: String] = [:], ranks: Int = 1, microBatchSize: Int = 2,
               step: Int = 1, totalSteps: Int = 10, seed: UInt64 = 42) throws -> Trained {
        var h = harness
        h.microBatchSize = microBatchSize; h.totalSteps = totalSteps; h.seed = seed
        // online-dpo trains ranked rollouts; here the batch's linked pairs stand in for them.
        if name == "online-dpo" { h.linkPairs = true }
        let r = try h.run(name, args, ranks: ranks, steps: step...step)[0]
        return Trained(loss: r.loss, grad: gradientRows(r, h), diagnostics: r.diagnostics)
    }
}

extension Example {
    /// A reference fixture's sequence as a training row: its prompt ends where its loss starts.
    init(fixture ids: [Int32], lossMask: [UInt8], source: String) {
        self.init(ids: ids, lossMask: lossMask, promptLength: lossMask.firstIndex(of: 1) ?? 1, answer: nil, source: source)
    }
}

/// A committed reference fixture of `Tests/TrainingTests/Fixtures/` (written by a script in
/// `scripts/`), decoded; a missing or changed file stops the test run with its name.
func referenceFixture<T: Decodable>(_ name: String, as type: T.Type = T.self) -> T {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/" + name)
    do { return try JSONDecoder().decode(T.self, from: Data(contentsOf: url)) } catch { fatalError("Fixtures/\(name): \(error)") }
}

/// dL/dlogits through the trainer against a reference's: every entry within 1e-5 of the largest
/// reference entry plus 1e-4 of its own size, and the reference not trivially small.
func assertGradientMatchesReference(_ got: [Float], _ expected: [[Double]], _ label: String,
                                    file: StaticString = #filePath, line: UInt = #line) {
    let flat = expected.flatMap { $0 }
    let scale = flat.map(abs).max() ?? 0
    XCTAssertGreaterThan(scale, 1e-3, label, file: file, line: line)
    XCTAssertEqual(got.count, flat.count, "\(label): dL/dlogits entries", file: file, line: line)
    var worst = 0.0
    for (g, e) in zip(got, flat) { worst = max(worst, abs(Double(g) - e) - (1e-5 * scale + 1e-4 * abs(e))) }
    XCTAssertLessThanOrEqual(worst, 0, "\(label): dL/dlogits", file: file, line: line)
}
