import Distributed
import Foundation
import Models
import TensorCore

/// Held-out evaluation, sharded over ranks like training: loss, perplexity and next-token
/// accuracy on the completion tokens; then generation scored by a `Scorer` (pass@1 of the
/// greedy answer, pass@k from n samples, mean reward, mean length, calibration). All sums
/// are allreduced, so the numbers agree across rank counts up to float rounding: each rank
/// batches its own shard (the padded lengths, hence the products' shapes, differ) and the
/// allreduce sums in another order (eval_loss and eval_ece move in their last bits).
public struct EvalOptions {
    public var microBatch = 8
    public var generationExamples = 200
    public var maxNewTokens = 16
    public var scorer: Scorer = ExactMatchScorer()
    /// n samples per prompt for pass@k (0: greedy only), drawn at `temperature`/`topP`.
    public var samples = 0
    public var passK: [Int] = []
    public var temperature: Float = 1
    public var topP: Float = 1
    public var seed: UInt64 = 0
    public var calibrationBins = 10
    /// Called on every rank as generation goes (phase "greedy answers" or "sampled prompts",
    /// done and total over all ranks); `eval` shows it on rank 0 (`EvalProgress`).
    public var progress: ((_ phase: String, _ done: Int, _ total: Int) -> Void)? = nil
    public init() {}
}

public struct EvalResult {
    public var loss: Double
    public var perplexity: Double
    public var tokenAccuracy: Double
    /// Mean entropy (nats) of the next-token distribution over the completion tokens: TRL's
    /// `eval_entropy` (TRL averages batch means; this weights every token alike).
    public var entropy: Double
    public var lossTokens: Int
    public var generation: GenerationScores?
    /// A few (prompt, expected, got) triples from the coordinator's shard, for display.
    public var samples: [(prompt: String, expected: String, got: String)]

    public var accuracy: Double? { generation?.passAt1 }

    /// Every field's name after `eval_` (pass@k apart: a set name holds no @), for the check
    /// that named sets' fields stay apart (`NamedFiles.clash`). The objective's figures under
    /// dpo (`rewards/…`, `logps/…`, `logits/…`) hold a `/`, which a set name cannot.
    public static let fieldNames = ["loss", "ppl", "mean_token_accuracy", "entropy", "accuracy", "mean_reward", "mean_length", "ece", "generated"]

    /// Under dpo the objective's loss and diagnostics on the held-out pairs
    /// (`Trainer.evaluatePairs`), under grpo and rloo on rollouts of the held-out prompts
    /// (`Trainer.evaluateRollouts`), under gkd on the held-out rows (`Trainer.evaluateDistillation`),
    /// which stand for the NLL figures as TRL's evaluation reports them: `eval_loss` is then
    /// that loss, with no perplexity.
    public var objective: ObjectiveEvaluation?

    public var fields: [(String, Any)] {
        var f: [(String, Any)] = [("eval_loss", loss)]
        if let objective {
            f += objective.figures.map { ("eval_" + $0.name, $0.value as Any) }
        } else {
            f += [("eval_ppl", perplexity), ("eval_mean_token_accuracy", tokenAccuracy), ("eval_entropy", entropy)]
        }
        if let g = generation {
            f += [("eval_accuracy", g.passAt1), ("eval_mean_reward", g.meanReward), ("eval_mean_length", g.meanLength),
                  ("eval_ece", g.ece), ("eval_generated", g.count)]
            f += g.passAtK.sorted { $0.key < $1.key }.map { ("eval_pass@\($0.key)", $0.value as Any) }
        }
        return f
    }

    public var summary: String {
        var s = objective.map { o in
            // grpo's and rloo's rollouts carry a reward; dpo's pairs a preference accuracy and margin; gkd's
            // rows the student's entropy beside the divergence; kto's rows its KL term and margin.
            if let reward = o.figure("reward") {
                return String(format: "held-out %@ loss %.4g | rollout reward %.4f (std %.4f) | length %.1f", o.objective, loss, reward,
                              o.figure("reward_std") ?? .nan, o.figure("completions/mean_length") ?? .nan)
            }
            // A reward model's pairs: the share ranked right and the mean chosen − rejected reward.
            if o.objective == "reward" {
                return String(format: "held-out reward loss %.4f | accuracy %.1f%% | margin %.4f", loss,
                              (o.figure("accuracy") ?? .nan) * 100, o.figure("margin") ?? .nan)
            }
            guard let accuracy = o.figure("rewards/accuracies") else {
                // kto's labelled rows: the KL term and the desirable − undesirable reward margin.
                if let kl = o.figure("kl") {
                    // (no margin on a held-out set of one label, as metrics.jsonl has none)
                    let margin = o.figure("rewards/margins").map { String(format: " | margin %.4f", $0) } ?? ""
                    return String(format: "held-out %@ loss %.4f | kl %.4f", o.objective, loss, kl) + margin + String(format: " | entropy %.3f", entropy)
                }
                return String(format: "held-out %@ loss %.4f | entropy %.3f", o.objective, loss, entropy)
            }
            return String(format: "held-out %@ loss %.4f | reward acc %.1f%% | margin %.4f | token acc %.1f%%", o.objective, loss,
                          accuracy * 100, o.figure("rewards/margins") ?? .nan, tokenAccuracy * 100)
        } ?? String(format: "held-out loss %.4f | ppl %.2f | token acc %.1f%%", loss, perplexity, tokenAccuracy * 100)
        if let g = generation { s += String(format: " | accuracy %.1f%% of %d", g.passAt1 * 100, g.count) }
        return s
    }
}

public enum Evaluator {
    /// With `objective` (the trainer's loss on held-out pairs, `Trainer.evaluatePairs`, on
    /// rollouts of held-out prompts, `Trainer.evaluateRollouts`, or gkd's on the held-out rows,
    /// `Trainer.evaluateDistillation`), its figures replace the teacher-forced NLL pass over
    /// `examples`, which then only generate.
    public static func evaluate(model: LanguageModel, tokenizer: Tokenizer, examples: [Example],
                                comm: Communicator, options: EvalOptions, objective: ObjectiveEvaluation? = nil) throws -> EvalResult {
        let (generation, samples) = try GenerationEval.run(model: model, tokenizer: tokenizer, examples: examples,
                                                           comm: comm, options: options)
        if let o = objective {
            return EvalResult(loss: o.loss, perplexity: .nan, tokenAccuracy: o.figure("mean_token_accuracy") ?? .nan,
                              entropy: o.figure("entropy") ?? .nan, lossTokens: 0, generation: generation, samples: samples,
                              objective: o)
        }
        let (loss, tokens, correct, entropy) = teacherForced(model: model, tokenizer: tokenizer, examples: examples,
                                                             comm: comm, microBatch: options.microBatch)
        let mean = tokens > 0 ? loss / tokens : .nan
        return EvalResult(loss: mean, perplexity: exp(mean), tokenAccuracy: tokens > 0 ? correct / tokens : 0,
                          entropy: tokens > 0 ? entropy / tokens : .nan,
                          lossTokens: Int(tokens), generation: generation, samples: samples)
    }

    /// Σ loss, Σ loss tokens, Σ argmax-correct, Σ entropy over every rank's shard.
    static func teacherForced(model: LanguageModel, tokenizer: Tokenizer, examples: [Example],
                              comm: Communicator, microBatch: Int) -> (Double, Double, Double, Double) {
        let mine = comm.shard.indices(of: examples.count)
        var sums = [0.0, 0.0, 0.0, 0.0]
        let tape = Tape(recording: false)
        for start in stride(from: 0, to: mine.count, by: microBatch) {
            let idx = Array(mine[start..<min(start + microBatch, mine.count)])
            let mb = Batching.padded(examples, indices: idx, padId: tokenizer.padId)
            let logits = model.forward(tape, inputs: mb.inputs, positions: mb.positions, segments: nil,
                                       batch: mb.batch, seqLen: mb.seqLen)
            let V = logits.columns
            sums[0] += SoftmaxKernels.crossEntropy(logits: logits.data, targets: mb.targets, mask: mb.mask,
                                                   rows: logits.rows, vocab: V, dlogits: nil, scale: 0)
            for r in 0..<logits.rows where mb.mask[r] != 0 {
                let row = logits.data + r * V
                var best = 0
                for v in 1..<V where row[v] > row[best] { best = v }
                if best == Int(mb.targets[r]) { sums[2] += 1 }
                sums[1] += 1
                sums[3] += LogitRow.addScaledSoftmax(nil, row, lse: SoftmaxKernels.logSumExp(row, count: V), V, scale: 0)
            }
        }
        comm.allreduce(&sums, op: .sum)
        return (sums[0], sums[1], sums[2], sums[3])
    }

    /// Stop at end-of-text, at the end of an assistant turn, and at the model's own
    /// `eos_token_id` — config.json's and generation_config.json's, each one id or a list (as
    /// Llama 3.1's `<|eom_id|>`, Qwen2.5-Instruct's `<|im_end|>` and `<|endoftext|>`;
    /// transformers' generate stops at each of generation_config.json's) — where it is a token
    /// of the model's vocabulary.
    public static func stopIds(_ tokenizer: Tokenizer, model: LanguageModel) -> Set<Int32> {
        var stop = eosIds(tokenizer, model: model)
        if let end = tokenizer.specialTokenId("<|im_end|>") { stop.insert(end) }
        if let end = tokenizer.specialTokenId("<|eot_id|>") { stop.insert(end) }
        return stop
    }

    /// The tokenizer's eos and the model's `eos_token_id`s, config.json's and generation_config.json's,
    /// within the vocabulary: every one ends a rollout, as TRL's GRPOTrainer `eos_token_ids` (which
    /// read config.json's only when there is no generation_config.json, as transformers does).
    public static func eosIds(_ tokenizer: Tokenizer, model: LanguageModel) -> Set<Int32> {
        let configured = model.configJSON["eos_token_id"]   // one id or a list
        let ids = ((configured as? [Int]) ?? (configured as? Int).map({ [$0] }) ?? []) + (model.generationConfig?.eosTokenIds ?? [])
        return Set(ids.filter { (0..<model.vocabSize).contains($0) }.map(Int32.init)).union([tokenizer.eosId])
    }
}
