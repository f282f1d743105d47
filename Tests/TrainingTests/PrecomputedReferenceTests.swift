import Foundation
import XCTest
@testable import Distributed
@testable import Models
@testable import TensorCore
@testable import Training

/// `--precompute-ref-log-probs` (TRL's DPOConfig `precompute_ref_log_probs`): dpo reading the
/// reference's log-probs scored before the first step gives the loss, gradient and figures it
/// gives reading the reference's logits (every loss type, ld_alpha, WPO); finite differences on
/// that path; the scores reach their loss tokens through the step batch and batching; and a
/// trainer whose setup released its reference trains as the one that keeps it, padded or packed.
final class PrecomputedReferenceTests: XCTestCase {
    static let configurations: [[String: String]] = [
        [:], ["beta": "0.5", "loss_type": "ipo"], ["ld_alpha": "0.3", "beta": "0.5"],
        ["use_weighting": "true", "beta": "0.5", "loss_type": "hinge"],
        ["loss_type": "sigmoid,bco_pair,sft", "loss_weights": "0.8,0.2,1", "beta": "0.5", "ld_alpha": "0.5"],
        ["f_divergence_type": "js_divergence", "loss_type": "robust", "label_smoothing": "0.1"],
        ["loss_type": "exo_pair", "label_smoothing": "0.2", "beta": "0.5"], ["loss_type": "nca_pair", "beta": "0.5"],
        ["loss_type": "sppo_hard", "beta": "0.5"], ["loss_type": "apo_zero,apo_down", "beta": "0.5"],
        ["loss_type": "discopop", "discopop_tau": "0.3", "beta": "0.5"], ["loss_type": "sigmoid_norm", "beta": "0.5"],
    ]

    /// The batch with its reference given as log p_ref(target) per row, computed here in float64
    /// from the reference logits (the objective's own float32 kernel is not used).
    static func precomputed(_ b: ObjectiveTestBatch) -> ObjectiveTestBatch {
        b.referenceLogProbs = (0..<b.rows).map { r in
            guard b.mask[r] != 0 else { return 0 }
            let z = (0..<b.vocab).map { Double(b.reference![r * b.vocab + $0]) }
            let m = z.max()!
            return Float(z[Int(b.targets[r])] - m - log(z.reduce(0) { $0 + exp($1 - m) }))
        }
        return b
    }

    func testDPOReadsPrecomputedLogProbsAsTheReferenceLogits() throws {
        for args in Self.configurations {
            let live = ObjectiveTestBatch.randomPairs(), pre = Self.precomputed(ObjectiveTestBatch.randomPairs())
            let objective = try ObjectiveRegistry.make(name: "dpo", args: args)
            let context = live.context()
            func run(_ b: ObjectiveTestBatch) -> (ObjectiveResult, [Float]) {
                var g = [Float](repeating: 0, count: b.rows * b.vocab)
                let r = g.withUnsafeMutableBufferPointer { objective.lossAndGradient(b.input(0..<b.rows, context), dlogits: $0.baseAddress!) }
                return (r, g)
            }
            XCTAssertNil(pre.input(0..<pre.rows, context).referenceLogits, "the precomputed batch carries no reference logits")
            let (a, ga) = run(live), (b, gb) = run(pre)
            XCTAssertEqual(a.loss, b.loss, accuracy: 1e-6 * max(1, abs(a.loss)), "\(args)")
            XCTAssertNotEqual(a.loss, 0, "\(args)")
            for (x, y) in zip(ga, gb) { XCTAssertEqual(x, y, accuracy: 1e-6, "\(args): gradient") }
            for (key, value) in a.diagnostics {
                XCTAssertEqual(value, b.diagnostics[key] ?? .nan, accuracy: 1e-5 * max(1, abs(value)), "\(args): \(key)")
            }
        }
    }

    /// kto (TRL's KTOConfig precompute_ref_log_probs) under loss_type=apo_zero_unpaired reads only
    /// the labelled rows' reference log-probs, and under loss_type=kto with kl_pairing=fixed also
    /// its mismatched pairs' (the KL term's statistics): the same statistics, loss, gradient and
    /// figures from the scores as from the logits, and finite differences on that path. Under
    /// kl_pairing=step the pairs are drawn per step, which no pass before training knows.
    func testKTOReadsPrecomputedLogProbsAsTheReferenceLogits() throws {
        for args in [["loss_type": "apo_zero_unpaired"], ["loss_type": "apo_zero_unpaired", "beta": "0.5", "desirable_weight": "1.5", "undesirable_weight": "0.7"],
                     ["kl_pairing": "fixed", "beta": "0.5", "undesirable_weight": "1.3"]] {
            let objective = try ObjectiveRegistry.make(name: "kto", args: args)
            XCTAssertTrue(objective.requirements.precomputableReference)
            let live = ObjectiveTestBatch.randomUnpaired(), pre = Self.precomputed(ObjectiveTestBatch.randomUnpaired())
            XCTAssertNil(pre.input(0..<pre.rows, live.context()).referenceLogits, "the precomputed batch carries no reference logits")
            func run(_ b: ObjectiveTestBatch) -> (ObjectiveResult, [Float], [Float]) {
                var context = b.context()
                let statistics = objective.requirements.statisticsPass ? objective.statistics(b.input(0..<b.rows, context)) : []
                context.statistics = [statistics]
                objective.beginStep(context)
                var g = [Float](repeating: 0, count: b.rows * b.vocab)
                let r = g.withUnsafeMutableBufferPointer { objective.lossAndGradient(b.input(0..<b.rows, context), dlogits: $0.baseAddress!) }
                return (r, g, statistics)
            }
            let (a, ga, sa) = run(live), (b, gb, sb) = run(pre)
            XCTAssertEqual(sa.count, sb.count, "\(args)")
            for (x, y) in zip(sa, sb) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), "\(args): statistics") }
            XCTAssertEqual(a.loss, b.loss, accuracy: 1e-6 * max(1, abs(a.loss)), "\(args)")
            XCTAssertGreaterThan(abs(a.diagnostics["rewards/chosen"] ?? 0), 1e-3, "\(args): the reference differs from the policy")
            if args["kl_pairing"] != nil { XCTAssertGreaterThan(a.diagnostics["kl"] ?? 0, 0.1, "\(args): a KL term to compare") }
            XCTAssertGreaterThan(ga.map(abs).max() ?? 0, 1e-4, "\(args): a gradient to compare")
            for (x, y) in zip(ga, gb) { XCTAssertEqual(x, y, accuracy: 1e-6, "\(args): gradient") }
            XCTAssertEqual(Set(a.diagnostics.keys), Set(b.diagnostics.keys), "\(args)")
            for (key, value) in a.diagnostics {
                XCTAssertEqual(value, b.diagnostics[key] ?? .nan, accuracy: 1e-5 * max(1, abs(value)), "\(args): \(key)")
            }
            let excess = pre.finiteDifferenceError(objective, h: 1e-2, label: "kto \(args)")
            XCTAssertLessThanOrEqual(excess, 0, "kto \(args): worst |FD − grad| beyond 0.1 % + 2e-5")
        }
        XCTAssertFalse(try ObjectiveRegistry.make(name: "kto", args: [:]).requirements.precomputableReference)
    }

    /// kto with kl_pairing=fixed: each labelled row gets its own scores and each mismatched
    /// sequence its row's fixed pair's, whichever rows share the step.
    func testMismatchedPairsGetTheirRowsPairScores() throws {
        func row(_ prompt: [Int32], _ answer: [Int32], _ label: Bool) -> Example {
            var e = Example(ids: prompt + answer, lossMask: prompt.map { _ in 0 } + answer.map { _ in 1 }, promptLength: prompt.count,
                            answer: nil, source: "r")
            e.label = label
            return e
        }
        let examples = [row([1, 2], [3, 4, 5], true), row([6], [7], false), row([8, 9, 10], [11, 12], false), row([13], [14, 15], true)]
        let pairs = UnpairedProducer.fixedMismatched(examples, maxLength: 9)
        func scores<S: TokenSequence>(_ sequences: [S], base: Float) -> PrecomputedReference.Scores {
            let offsets = TokenLabels.offsets(sequences)
            let values = sequences.indices.flatMap { e in (0..<(offsets[e + 1] - offsets[e])).map { base + Float(1000 * e + $0 + 1) } }
            return .init(values: values, offsets: offsets)
        }
        let own = scores(examples, base: 0), mismatched = scores(pairs.map { $0! }, base: 0.5)
        var batch = UnpairedProducer.batch(step: 0, rows: [2, 0, 2], examples: examples, mismatched: true,
                                           fixedLenders: UnpairedProducer.lenders(Array(examples.indices), examples: examples), maxLength: 9)
        let set = PrecomputedReference.SetScores(rows: own, mismatched: mismatched, pairHashes: pairs.map { PrecomputedReference.idsHash($0!.ids) })
        PrecomputedReference.apply(set, to: &batch, examples: examples)
        XCTAssertEqual(batch.sequences.map(\.origin), [.demonstration, .demonstration, .demonstration, .mismatched, .mismatched, .mismatched])
        for s in batch.sequences {
            let base: Float = s.origin == .mismatched ? 0.5 : 0
            let trained = TokenLabels.trainedPositions(s)
            XCTAssertFalse(trained.isEmpty)
            XCTAssertEqual(trained.map { s.referenceLogProbs[$0] }, trained.indices.map { base + Float(1000 * s.example + $0 + 1) }, "\(s.origin) of row \(s.example)")
            XCTAssertEqual(s.referenceLogProbs.enumerated().filter { !trained.contains($0.offset) }.map(\.element).max(), 0, "off the loss")
        }
    }

    func testFiniteDifferencesOnThePrecomputedPath() throws {
        for args in Self.configurations {
            let batch = Self.precomputed(ObjectiveTestBatch.randomPairs())
            // ipo and sppo_hard square the log-ratio sums (ObjectiveGradientTests)
            let h: Float = ["ipo", "sppo_hard"].contains(args["loss_type"] ?? "") ? 5e-2 : 1e-2
            let excess = batch.finiteDifferenceError(try ObjectiveRegistry.make(name: "dpo", args: args), h: h, label: "dpo \(args)")
            XCTAssertLessThanOrEqual(excess, 0, "dpo \(args): worst |FD − grad| beyond 0.1 % + 2e-5")
        }
    }

    /// Each pair sequence of a step gets its example's scores at its loss tokens (0 elsewhere),
    /// and batching shifts them with the targets, padded or packed.
    func testScoresReachTheirLossTokensThroughBatching() throws {
        let data = try PairBatchingTests.pairData()
        let offsets = TokenLabels.offsets(data.examples)
        // Score k of example e: 1000·e + k + 1, so a misplaced one names where it came from.
        let values = data.examples.indices.flatMap { e in (0..<(offsets[e + 1] - offsets[e])).map { Float(1000 * e + $0 + 1) } }
        var batch = PairProducer.batch(step: 0, pairs: [4, 1, 2], examples: data.examples)
        PrecomputedReference.apply(.init(rows: .init(values: values, offsets: offsets)), to: &batch, examples: data.examples)
        for packed in [false, true] {
            let indices = Array(batch.sequences.indices)
            let mb: MicroBatch = packed ? Batching.packed(batch.sequences, indices: indices, seqLen: 40, padId: 0)
                : Batching.padded(batch.sequences, indices: indices, padId: 0)
            var seen: [Int: Int] = [:]
            for p in 0..<mb.inputs.count where mb.segments[p] >= 0 {
                let s: Int = mb.rowExamples[p / mb.seqLen][Int(mb.segments[p])]
                let e: Int = batch.sequences[s].example
                if mb.mask[p] != 0 {
                    let k = seen[s, default: 0]
                    XCTAssertEqual(mb.referenceLogProbs[p], Float(1000 * e + k + 1), "packed \(packed): sequence \(s) loss token \(k)")
                    seen[s] = k + 1
                } else {
                    XCTAssertEqual(mb.referenceLogProbs[p], 0, "packed \(packed): a position off the loss")
                }
            }
            XCTAssertEqual(seen.count, batch.sequences.count)
            for (s, n) in seen { XCTAssertEqual(n, offsets[batch.sequences[s].example + 1] - offsets[batch.sequences[s].example]) }
        }
    }

    /// Through the trainer: a setup that scored its pairs and released the reference trains and
    /// evaluates as one that runs the reference per micro-batch, to float rounding.
    func testReleasedReferenceTrainsAsTheLiveOne() throws {
        let t = PairBatchingTests.self
        let data = try t.pairData()
        for (micro, packing) in [(2, false), (4, false), (2, true)] {
            let live = try t.setup(data, packing: packing, microBatchSize: micro)
            var recipe = live.recipe
            recipe.precomputeRefLogProbs = true; recipe.precomputeRefBatchSize = 3
            let model = live.model.makeReplica()
            model.copyParameters(from: live.model)
            // The reference is held by the setups alone, so its release can be seen to free it.
            weak var freed: LanguageModel?
            let released = try { () throws -> RunSetup in
                let reference = live.model.makeReplica()
                reference.copyParameters(from: live.referenceModel!)
                freed = reference
                return RunSetup(recipe: recipe, tokenizer: live.tokenizer, model: model, train: data, heldOut: data,
                                objective: try ObjectiveRegistry.make(name: "dpo", args: [:]), referenceModel: reference)
            }()
            let a = Trainer(setup: live, comm: LocalCommunicator()), b = Trainer(setup: released, comm: LocalCommunicator())
            XCTAssertNotNil(freed)
            XCTAssertNotNil(try b.precomputeReferenceIfNeeded(evaluatedPairs: [data]))
            XCTAssertNil(b.setup.referenceModel, "the reference is released")
            XCTAssertNil(released.referenceModel, "every copy of the setup lets go of it")
            XCTAssertNil(freed, "the reference's weights are freed")
            XCTAssertEqual(b.setup.precomputedReference?.sequences, 2 * data.count, "the training pairs and the evaluated set")
            XCTAssertNil(try b.precomputeReferenceIfNeeded(), "scored once")
            for s in 0..<2 {
                let x = a.step(s).loss, y = b.step(s).loss
                XCTAssertEqual(x, y, accuracy: 1e-6, "micro \(micro) packing \(packing) step \(s + 1)")
                if s == 0 { XCTAssertNotEqual(x, log(2), accuracy: 1e-3, "the reference differs from the initial weights") }
            }
            let ea = a.evaluatePairs(data), eb = b.evaluatePairs(data)
            XCTAssertEqual(ea.loss, eb.loss, accuracy: 1e-6, "micro \(micro) packing \(packing): held-out loss")
        }
    }
}
