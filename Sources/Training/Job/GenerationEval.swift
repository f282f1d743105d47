import Distributed
import Foundation
import Models
import TensorCore

/// Generation-based evaluation: greedy answers scored for pass@1 and calibration, and n
/// sampled answers per prompt for pass@k (the unbiased estimator of Chen et al. 2021,
/// 1 − C(n−c, k)/C(n, k)). Prompts are sharded over ranks; each prompt samples from its own
/// stream (seed, example index, sample), so results are the same for any rank count.
public struct GenerationScores {
    public var count: Int
    public var passAt1: Double          // greedy answers scoring > 0.5
    public var meanReward: Double       // mean greedy score
    public var meanLength: Double       // mean greedy completion length in tokens
    /// Expected calibration error of the greedy answer's sequence probability against its
    /// correctness, over equal-width confidence bins.
    public var ece: Double
    public var passAtK: [Int: Double]
}

enum GenerationEval {
    static func run(model: LanguageModel, tokenizer: Tokenizer, examples: [Example], comm: Communicator,
                    options: EvalOptions) throws -> (GenerationScores?, [(prompt: String, expected: String, got: String)]) {
        // A row with an empty prompt has nothing to continue: generated, it was an empty answer
        // held with confidence 1 (exp of no log-probs), skewing accuracy and calibration. A prompt
        // of only the BOS a tokenizer adds is empty too, so "" is treated alike under any tokenizer.
        let candidates = Array(examples.indices.filter { examples[$0].answer != nil && !tokenizer.holdsNoText(examples[$0].ids[0..<examples[$0].promptLength]) }
            .prefix(options.generationExamples))
        guard !candidates.isEmpty else { return (nil, []) }
        let shard = comm.shard
        let mine = shard.mine(candidates)
        let stop = Evaluator.stopIds(tokenizer, model: model)
        let allPrompts = candidates.map { Array(examples[$0].ids[0..<examples[$0].promptLength]) }
        let prompts = shard.mine(allPrompts)
        // An external scorer reads each row's other fields (`RowColumns`).
        let columns = options.scorer is ExternalScorer ? RowColumns.of(candidates.map { examples[$0].source }) : [:]
        func items(_ gens: [Generation], _ which: [Int], _ promptIds: [[Int32]]) -> [ScoringItem] {
            zip(gens, zip(which, promptIds)).map { g, ip in
                ScoringItem(prompt: tokenizer.decode(ip.1), completion: g.text ?? tokenizer.decode(g.ids),
                            reference: examples[ip.0].answer, source: examples[ip.0].source, columns: columns[examples[ip.0].source])
            }
        }

        // Greedy: pass@1, mean reward, length, calibration. Chunks of 16 prompts per rank;
        // candidate k samples from stream (seed, example index).
        var bins = [Double](repeating: 0, count: 3 * options.calibrationBins)   // count, Σ conf, Σ correct
        var sums = [0.0, 0.0, 0.0, 0.0]                                       // n, Σ correct, Σ reward, Σ length
        var nonFinite = 0.0                                                   // greedy answers whose probability is not finite
        var samples: [(position: Int, sample: Sample)] = []   // this rank's of the first `shownSamples` candidates
        var problem: String? = nil
        let chunk = 16 * comm.size
        for start in stride(from: 0, to: candidates.count, by: chunk) {
            let part = Array(start..<min(start + chunk, candidates.count))
            let (local, gens) = ShardedGeneration.generateMine(model, prompts: part.map { allPrompts[$0] },
                                                               options: SamplingOptions(maxNewTokens: options.maxNewTokens, stopIds: stop),
                                                               comm: comm) { RNG(seed: options.seed, stream: UInt64(candidates[part[$0]])) }
            let which = local.map { candidates[part[$0]] }
            let scored: [Float]
            do { scored = try options.scorer.score(items(gens, which, local.map { allPrompts[part[$0]] })) } catch {
                problem = "\(error)"; break
            }
            options.progress?("greedy answers", part.last! + 1, candidates.count)
            for (j, g) in gens.enumerated() {
                let ok = scored[j] > 0.5
                // A model whose weights went non-finite has no meaningful confidence (its answer ends
                // at the first non-finite logits, often empty, exp of no log-probs: 1): binned as 0,
                // and the ECE is then nan (it logged 1.0, the worst calibration, beside a nan loss).
                let raw = exp(Double(g.logProbs.reduce(0, +)))
                if !raw.isFinite || g.nonFinite { nonFinite += 1 }
                let conf = raw.isFinite ? min(max(raw, 0), 1) : 0
                let b = min(Int(conf * Double(options.calibrationBins)), options.calibrationBins - 1)
                bins[3 * b] += 1; bins[3 * b + 1] += conf; bins[3 * b + 2] += ok ? 1 : 0
                sums[0] += 1; sums[1] += ok ? 1 : 0; sums[2] += Double(scored[j]); sums[3] += Double(g.ids.count)
                let e = examples[which[j]]
                let position = part[local[j]]
                if position < shownSamples {
                    samples.append((position, (tokenizer.decode(allPrompts[position]), e.answer ?? "", g.text ?? tokenizer.decode(g.ids))))
                }
            }
        }
        Fatal.agree(problem)

        // Sampled: c correct out of n per prompt → unbiased pass@k.
        var passSums = [Double](repeating: 0, count: options.passK.count)
        if options.samples > 0 {
            for (j, i) in mine.enumerated() {
                let n = options.samples
                let gens = Generator.generate(model, prompts: [[Int32]](repeating: prompts[j], count: n),
                                              options: SamplingOptions(maxNewTokens: options.maxNewTokens, temperature: options.temperature,
                                                                       topP: options.topP, stopIds: stop),
                                              rngs: (0..<n).map { RNG(seed: options.seed &+ 1, stream: UInt64(i) &* 4096 &+ UInt64($0)) })
                let scored: [Float]
                do { scored = try options.scorer.score(items(gens, [Int](repeating: i, count: n), [[Int32]](repeating: prompts[j], count: n))) } catch {
                    problem = "\(error)"; break
                }
                let c = scored.filter { $0 > 0.5 }.count
                for (q, k) in options.passK.enumerated() { passSums[q] += passAtK(n: n, c: c, k: k) }
                // This rank's share done, scaled to all ranks (they hold equal shares ± 1).
                options.progress?("sampled prompts (\(n) each)", min((j + 1) * comm.size, candidates.count), candidates.count)
            }
            Fatal.agree(problem)
        }

        var all = sums + bins + passSums + [nonFinite]
        comm.allreduce(&all, op: .sum)
        let n = all[0]
        var ece = 0.0
        for b in 0..<options.calibrationBins {
            let cnt = all[4 + 3 * b]
            if cnt > 0 { ece += cnt / n * abs(all[4 + 3 * b + 1] / cnt - all[4 + 3 * b + 2] / cnt) }
        }
        var passAtKs: [Int: Double] = [:]
        for (q, k) in options.passK.enumerated() { passAtKs[k] = all[4 + 3 * options.calibrationBins + q] / n }
        return (GenerationScores(count: Int(n), passAt1: all[1] / n, meanReward: all[2] / n, meanLength: all[3] / n,
                                 ece: all.last! > 0 ? .nan : ece, passAtK: passAtKs), gatherSamples(samples, comm: comm))
    }

    typealias Sample = (prompt: String, expected: String, got: String)
    /// The held-out answers a run shows at its end: the first candidates, whichever ranks generated them.
    static let shownSamples = 4

    /// The first `shownSamples` candidates' answers on the coordinator, in candidate order, so
    /// the closing list is the same under any rank count (each rank generated its share).
    static func gatherSamples(_ mine: [(position: Int, sample: Sample)], comm: Communicator) -> [Sample] {
        var w = WireWriter()
        w.put(Int64(mine.count))
        for (position, s) in mine { w.put(Int64(position)); w.put(s.prompt); w.put(s.expected); w.put(s.got) }
        let parts = comm.gather(w.bytes, root: 0)
        guard comm.isCoordinator else { return [] }
        var all: [(position: Int, sample: Sample)] = []
        for bytes in parts {
            var r = WireReader(bytes)
            for _ in 0..<Int(r.get(Int64.self)) {
                let position = Int(r.get(Int64.self))
                all.append((position, (r.getString() ?? "", r.getString() ?? "", r.getString() ?? "")))
            }
        }
        return all.sorted { $0.position < $1.position }.map(\.sample)
    }

    /// 1 − C(n−c, k)/C(n, k), as a running product for numerical stability.
    static func passAtK(n: Int, c: Int, k: Int) -> Double {
        if c == 0 { return 0 }
        if n - c < k { return 1 }
        var prod = 1.0
        for i in (n - c + 1)...n { prod *= 1 - Double(k) / Double(i) }
        return 1 - prod
    }
}
