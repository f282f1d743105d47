import Distributed
import Foundation
import Models

/// The step producer of `--self-train`: before steps 0, N, 2N, … (`--self-train-every N`) it
/// runs a round of its method (`SelfTrainRound`): every rank samples its share of the round's
/// answers (`ShardedGeneration`), the coordinator selects and broadcasts the outcome and writes
/// `OUT/self-train/round-R.jsonl`. Each step's batch is the uniform sampler's labelled rows,
/// with a share `ratio` of them replaced by the round's generated rows (drawn without
/// replacement in a seeded order per round) and labelled rows whose target the round replaced
/// trained on the model's answer. The generated rows and replacements are this component's
/// checkpointed state, so a run resumed in the middle of a round trains on the same rows.
public final class SelfTrainProducer: ReportingProducer, StatefulComponent {
    public let name = "self_train"
    public let stateName = "self_train"
    let labelled: BatchSource
    let method: SelfTrainRound
    let options: SelfTrainOptions
    let seed: UInt64
    let out: String
    let maxLength: Int
    let vocabSize: Int
    /// The latest round's index (−1: none yet), its generated rows, and the current replaced targets.
    private(set) var round = -1
    private(set) var pool: [PseudoRow] = []
    private(set) var replacements: [Int: PseudoRow] = [:]
    /// Metrics of a round that ran in this step, for the step's metrics row.
    private var pending: [(String, Double)] = []
    public var stepFields: [(String, Any)] { pending.map { ($0.0, $0.1 as Any) } }

    init(labelled: BatchSource, method: SelfTrainRound, options: SelfTrainOptions, seed: UInt64, out: String,
         maxLength: Int, vocabSize: Int) {
        self.labelled = labelled; self.method = method; self.options = options; self.seed = seed
        self.out = out; self.maxLength = maxLength; self.vocabSize = vocabSize
    }

    public func prepare(_ p: StepPreparation) -> StepBatch {
        pending = []
        if p.step % options.every == 0 { runRound(p, round: p.step / options.every) }
        return p.decide { batch(step: p.step, examples: p.examples) }
    }

    /// Collective: sampling on every rank, selection on the coordinator, the outcome broadcast.
    func runRound(_ p: StepPreparation, round r: Int) {
        let prompts = method.prompts(round: r)
        let samples = SelfTrainRounds.sample(p, contexts: method.contexts(prompts), k: method.samplesPerPrompt,
                                             temperature: method.temperature, topP: method.topP,
                                             maxNewTokens: options.maxNewTokens, round: r)
        let outcome: RoundOutcome = p.decide {
            do {
                let (o, records) = try method.decide(round: r, prompts: prompts, samples: samples)
                var outcome = o
                if let problem = SelfTrainRounds.writeLog(records, out: out, round: r + 1) {
                    outcome.error = problem; outcome.errorCode = Fatal.Code.output
                }
                return outcome
            } catch {
                var failed = RoundOutcome()
                failed.error = "self-training round \(r + 1) (step \(p.step + 1)): \(error)"
                return failed
            }
        }
        Fatal.agree(outcome.error, code: outcome.errorCode)
        round = r
        let fits = outcome.rows.filter { $0.ids.count <= maxLength }
        pool = fits
        for e in outcome.restored { replacements[e] = nil }
        for row in outcome.replacements where row.ids.count <= maxLength { replacements[row.example] = row }
        pending = outcome.metrics + [("self_train_rows", Double(pool.count)), ("self_train_replaced", Double(replacements.count))]
        if fits.count < outcome.rows.count { pending.append(("self_train_rows_too_long", Double(outcome.rows.count - fits.count))) }
        // SuperHF, SemiEvol and RFT train on the rows a round keeps; with none the round's steps
        // train on --data's answers alone, which the method does not — say so (a semievol round
        // with percentile 0 kept none, round after round, without a word).
        let keptNothing: String? = switch options.method {
        case .superhf: "no completion (none finished within max_new_tokens \(options.maxNewTokens), or none was eligible)"
        case .semievol: "no pseudo-label (none passed the vote and the entropy percentile)"
        case .rft: "no accepted answer"
        default: nil
        }
        if pool.isEmpty && p.comm.isCoordinator, let what = keptNothing {
            StandardError.write("sft-dist: warning: self-training round \(r + 1) (step \(p.step + 1)): \(options.method.rawValue) kept \(what), so the steps until the next round train on --data's answers\n")
        }
    }

    /// The step's batch: labelled rows (their replaced targets where a round replaced them),
    /// the last `round(ratio · batch)` of them swapped for the round's generated rows.
    func batch(step: Int, examples: [Example]) -> StepBatch {
        let indices = labelled.batch(step: step)
        let generated = pool.isEmpty ? 0 : min(indices.count, Int((options.ratio * Double(indices.count)).rounded()))
        var sequences = indices.prefix(indices.count - generated).map {
            replacements[$0]?.sequence ?? StepSequence(demonstration: examples[$0], index: $0)
        }
        if generated > 0 {
            // Step s of the round draws the next `generated` rows of the round's seeded order.
            let order = UniformSampler(datasetSize: pool.count, batchSize: generated, seed: seed ^ (UInt64(round + 1) &* 0x9E37_79B9))
            sequences += order.batch(step: step - round * options.every).map { pool[$0].sequence }
        }
        return StepBatch(step: step, sequences: sequences)
    }

    public var state: [UInt64] { labelled.state }
    public func restore(_ state: [UInt64]) throws { try labelled.restore(state) }

    public func saveState() -> ComponentState {
        func flat(_ rows: [PseudoRow]) -> [String: StateValue] {
            ["ids": .ints(rows.flatMap { $0.ids.map(Int.init) }), "lengths": .ints(rows.map(\.ids.count)),
             "prompt_lengths": .ints(rows.map(\.promptLength)), "examples": .ints(rows.map(\.example))]
        }
        var values: [String: StateValue] = ["round": .int(round), "words": .words(labelled.state)]
        for (k, v) in flat(pool) { values["pool_" + k] = v }
        for (k, v) in flat(replacements.keys.sorted().map { replacements[$0]! }) { values["replaced_" + k] = v }
        return ComponentState(values: values)
    }

    public func restoreState(_ state: ComponentState, step: Int) throws {
        let words = try state.words("words")
        do { try labelled.restore(words) } catch let e as StateError { throw e } catch {
            throw StateError(.value, "words", "cannot be restored (\(error))")
        }
        let r = try state.int("round", in: -1...max(-1, step / options.every))
        func rows(_ prefix: String) throws -> [PseudoRow] {
            let ids = try state.ints(prefix + "ids"), lengths = try state.ints(prefix + "lengths")
            let prompts = try state.ints(prefix + "prompt_lengths"), examples = try state.ints(prefix + "examples")
            guard prompts.count == lengths.count, examples.count == lengths.count else {
                throw StateError(.value, prefix + "lengths", "lists \(lengths.count) rows, prompt_lengths \(prompts.count), examples \(examples.count)")
            }
            guard lengths.allSatisfy({ (2...maxLength).contains($0) }), lengths.reduce(0, +) == ids.count else {
                throw StateError(.value, prefix + "lengths", "do not split \(ids.count) ids into rows of 2…\(maxLength) tokens")
            }
            guard ids.allSatisfy({ (0..<vocabSize).contains($0) }) else {
                throw StateError(.value, prefix + "ids", "hold a token id outside 0..<\(vocabSize)")
            }
            var out: [PseudoRow] = [], at = 0
            for (k, n) in lengths.enumerated() {
                guard (1..<n).contains(prompts[k]) else { throw StateError(.value, prefix + "prompt_lengths", "entry \(k) is \(prompts[k]), outside 1..<\(n)") }
                guard examples[k] >= -1 else { throw StateError(.value, prefix + "examples", "entry \(k) is \(examples[k])") }
                out.append(PseudoRow(ids: ids[at..<(at + n)].map(Int32.init), promptLength: prompts[k], example: examples[k]))
                at += n
            }
            return out
        }
        let restoredPool = try rows("pool_"), replaced = try rows("replaced_")
        round = r
        pool = restoredPool
        replacements = Dictionary(replaced.map { ($0.example, $0) }, uniquingKeysWith: { a, _ in a })
    }
}
