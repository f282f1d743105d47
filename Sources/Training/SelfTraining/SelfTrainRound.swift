import Distributed
import Foundation
import Models
import TensorCore

/// One self-training method's round: which prompts it asks, how many answers per prompt, and
/// — on the coordinator, from every rank's samples — what becomes training data. One file per
/// method implements it.
protocol SelfTrainRound {
    /// The prompts of round `round` (a pure function of the round, so every rank agrees).
    func prompts(round: Int) -> [SelfTrainPrompt]
    /// Answers sampled per prompt, and how.
    var samplesPerPrompt: Int { get }
    var temperature: Float { get }
    var topP: Float { get }
    /// What the model is asked: the round's prompts (default), or more contexts after them
    /// (S3FT's paraphrase contexts); `decide` gets one sample list per context, in this order.
    func contexts(_ prompts: [SelfTrainPrompt]) -> [[Int32]]
    /// Runs on the coordinator only: the round's outcome and one log record per prompt.
    func decide(round: Int, prompts: [SelfTrainPrompt], samples: [[RoundSample]]) throws -> (RoundOutcome, [[String: Any]])
}

extension SelfTrainRound {
    var topP: Float { 1 }
    func contexts(_ prompts: [SelfTrainPrompt]) -> [[Int32]] { prompts.map(\.ids) }
}

/// A sampled answer: its ids, decoded text, token log-probabilities and whether it finished
/// (ended by the format's stop token, so it is a whole answer).
struct RoundSample {
    var ids: [Int32]
    var text: String
    var logProbs: [Float]
    var finished: Bool
}

/// What a round decided, broadcast from the coordinator.
struct RoundOutcome: WireCodable {
    /// Rows joining the mix (semievol, rft).
    var rows: [PseudoRow] = []
    /// Labelled examples whose target is the model's answer from now on (ssr, s3ft) …
    var replacements: [PseudoRow] = []
    /// … and those judged again whose target is the gold answer again.
    var restored: [Int] = []
    var metrics: [(String, Double)] = []
    /// A failure on the coordinator (a scorer error, an unwritable log) and its exit code.
    var error: String? = nil
    var errorCode: Int32 = Fatal.Code.input

    init() {}
    func write(to w: inout WireWriter) {
        w.put(rows); w.put(replacements); w.put(restored.map(Int64.init))
        w.put(metrics.map(\.0).joined(separator: "\n")); w.put(metrics.map { $0.1.bitPattern })
        w.put(error); w.put(errorCode)
    }
    init(from r: inout WireReader) {
        rows = r.getArray(PseudoRow.self); replacements = r.getArray(PseudoRow.self)
        restored = r.getArray(Int64.self).map(Int.init)
        let names = (r.getString() ?? "").split(separator: "\n").map(String.init)
        let values = r.getArray(UInt64.self).map(Double.init(bitPattern:))
        metrics = Array(zip(names, values))
        error = r.getString(); errorCode = r.get(Int32.self)
    }
}

enum SelfTrainRounds {
    /// Sequences per generation call: bounds the KV cache of a round however many prompts it has.
    static let chunk = 256

    /// k answers per context (a prompt's ids), sampled on all ranks (`ShardedGeneration`: contexts
    /// dealt over ranks, gathered in order). Sample j of context i in chunk c draws from stream
    /// (seed(round, c), i·k + j within the chunk), so the samples are the same for any rank count.
    static func sample(_ p: StepPreparation, contexts: [[Int32]], k: Int, temperature: Float, topP: Float = 1,
                       maxNewTokens: Int, round: Int) -> [[RoundSample]] {
        let flat = contexts.flatMap { ids in [[Int32]](repeating: ids, count: k) }
        let stop = Evaluator.stopIds(p.tokenizer, model: p.model)
        let options = SamplingOptions(maxNewTokens: maxNewTokens, temperature: temperature, topP: topP, stopIds: stop)
        var gens: [Generation] = []
        for (c, start) in stride(from: 0, to: flat.count, by: chunk).enumerated() {
            let part = Array(flat[start..<min(start + chunk, flat.count)])
            gens += p.generate(prompts: part, options: options, seed: streamSeed(p.seed, round: round, chunk: c))
        }
        return contexts.indices.map { i in
            (0..<k).map { j in
                let g = gens[i * k + j]
                return RoundSample(ids: g.ids, text: p.tokenizer.decode(g.ids), logProbs: g.logProbs, finished: g.finish == .stop)
            }
        }
    }

    /// The seed of a round's chunk of samples: one SplitMix64 draw from (seed, round, chunk).
    static func streamSeed(_ seed: UInt64, round: Int, chunk: Int) -> UInt64 {
        var m = SplitMix64(seed: seed ^ 0x5E1F_7A41 ^ (UInt64(round) << 20) ^ UInt64(chunk))
        return m.next()
    }

    /// `count` of `total` indices for round `round`: consecutive slices of one seeded order, so
    /// successive rounds cover the prompts before repeating them.
    static func pick(_ count: Int, of total: Int, round: Int, seed: UInt64) -> [Int] {
        guard total > 0 else { return [] }
        let sampler = UniformSampler(datasetSize: total, batchSize: min(count, total), seed: seed ^ 0x5E1F_7A41)
        return sampler.batch(step: round)
    }

    /// `OUT/self-train/round-N.jsonl`, one record per prompt (sorted keys), written by the
    /// coordinator; nil or the reason it failed.
    static func writeLog(_ records: [[String: Any]], out: String, round: Int) -> String? {
        let dir = RunOutputs(out).selfTrain, path = dir + "/round-\(round).jsonl"
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var text = Data()
            for r in records {
                text += try JSONSerialization.data(withJSONObject: r, options: [.sortedKeys, .withoutEscapingSlashes])
                text += Data("\n".utf8)
            }
            try text.write(to: URL(fileURLWithPath: path), options: .atomic)
            return nil
        } catch {
            return "\(path): cannot write the round's data (\(MessageText.reason(error, for: path)))"
        }
    }
}
