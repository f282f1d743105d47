import Distributed
import Foundation
import Models
import TensorCore

/// Held-out evaluation, sharded over ranks like training: loss, perplexity and next-token
/// accuracy on the completion tokens; exact match of greedy generations against the
/// reference answers. Sums are allreduced, so the numbers do not depend on rank count.
public struct EvalResult {
    public var loss: Double
    public var perplexity: Double
    public var tokenAccuracy: Double
    public var lossTokens: Int
    public var exactMatch: Double?
    public var generated: Int
    /// A few (prompt, expected, got) triples from the coordinator's shard, for display.
    public var samples: [(prompt: String, expected: String, got: String)]

    public var fields: [(String, Any)] {
        var f: [(String, Any)] = [("eval_loss", loss), ("eval_ppl", perplexity), ("eval_token_acc", tokenAccuracy)]
        if let em = exactMatch { f.append(("eval_exact_match", em)) }
        return f
    }

    public var summary: String {
        var s = String(format: "held-out loss %.4f | ppl %.2f | token acc %.1f%%", loss, perplexity, tokenAccuracy * 100)
        if let em = exactMatch { s += String(format: " | exact match %.1f%% (%d)", em * 100, generated) }
        return s
    }
}

public enum Evaluator {
    public static func evaluate(model: LanguageModel, tokenizer: Tokenizer, examples: [Example],
                                comm: Communicator, microBatch: Int, generationExamples: Int,
                                maxNewTokens: Int) -> EvalResult {
        let mine = stride(from: comm.rank, to: examples.count, by: comm.size).map { $0 }
        var sums = [0.0, 0.0, 0.0]  // Σ loss, Σ loss tokens, Σ correct
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
            }
        }

        // Greedy generation on the first `generationExamples` examples that carry an answer.
        let candidates = examples.indices.filter { examples[$0].answer != nil }.prefix(generationExamples)
        let genMine = stride(from: comm.rank, to: candidates.count, by: comm.size).map { candidates[candidates.startIndex + $0] }
        var stop: Set<Int32> = [tokenizer.eosId]
        if let end = tokenizer.specialTokenId("<|im_end|>") { stop.insert(end) }
        var samples: [(String, String, String)] = []
        var correct = 0.0
        var rng = RNG(seed: 0)
        for i in genMine {
            let e = examples[i]
            let prompt = Array(e.ids[0..<e.promptLength])
            let out = Generator.generate(model, prompt: prompt,
                                         options: SamplingOptions(maxNewTokens: maxNewTokens, stopIds: stop), rng: &rng)
            let got = tokenizer.decode(out.ids)
            let expected = e.answer ?? ""
            if normalise(got) == normalise(expected) { correct += 1 }
            if samples.count < 4 { samples.append((tokenizer.decode(prompt), expected, got)) }
        }
        var all = sums + [correct, Double(genMine.count)]
        comm.allreduce(&all, op: .sum)
        let loss = all[1] > 0 ? all[0] / all[1] : .nan
        return EvalResult(loss: loss, perplexity: exp(loss), tokenAccuracy: all[1] > 0 ? all[2] / all[1] : 0,
                          lossTokens: Int(all[1]), exactMatch: all[4] > 0 ? all[3] / all[4] : nil,
                          generated: Int(all[4]), samples: samples)
    }

    /// Exact match ignores surrounding whitespace and case of nothing else.
    public static func normalise(_ s: String) -> String {
        s.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
