import Distributed
import Foundation
import Models
import TensorCore

/// The coordinator's rollout primitive: prompts are dealt over ranks (`RankShard`), each
/// rank generates its share with the KV cache, and the results come back in prompt order on
/// every rank (allgather) — what GRPO groups, CHORD mixing and pseudo-labelling build on.
/// Prompt i samples from its own stream, so the rollouts are identical for any rank count.
public enum ShardedGeneration {
    /// Every prompt's generation on every rank; prompt i samples from stream (seed, i).
    public static func generate(_ model: LanguageModel, prompts: [[Int32]], options: SamplingOptions,
                                seed: UInt64, comm: Communicator,
                                decodeText: (([Int32]) -> String)? = nil) -> [Generation] {
        generate(model, prompts: prompts, options: options, comm: comm, decodeText: decodeText) { RNG(seed: seed, stream: UInt64($0)) }
    }

    /// Every prompt's generation on every rank; prompt i samples from `stream(i)`.
    public static func generate(_ model: LanguageModel, prompts: [[Int32]], options: SamplingOptions,
                                comm: Communicator, decodeText: (([Int32]) -> String)? = nil,
                                stream: (Int) -> RNG) -> [Generation] {
        let local = generateMine(model, prompts: prompts, options: options, comm: comm, decodeText: decodeText, stream: stream)
        let perRank = comm.allgather(Generations(local.generations)).map(\.items)
        return comm.shard.interleave(perRank, count: prompts.count)
    }

    /// This rank's share only (no communication): the global indices it owns and their
    /// generations, prompt i sampling from `stream(i)`. For callers that reduce results
    /// themselves (evaluation sums scores over ranks).
    public static func generateMine(_ model: LanguageModel, prompts: [[Int32]], options: SamplingOptions,
                                    comm: Communicator, decodeText: (([Int32]) -> String)? = nil,
                                    stream: (Int) -> RNG) -> (indices: [Int], generations: [Generation]) {
        let mine = comm.shard.indices(of: prompts.count)
        let gens = Generator.generate(model, prompts: mine.map { prompts[$0] }, options: options,
                                      rngs: mine.map(stream), decodeText: decodeText)
        return (mine, gens)
    }
}

/// Generations crossing ranks: per generation, ids, log-probs, finish, text, non-finite, stop id (−1: none).
struct Generations: WireCodable {
    var items: [Generation]
    init(_ items: [Generation]) { self.items = items }
    func write(to w: inout WireWriter) {
        w.put(Int64(items.count))
        for g in items {
            w.put(g.ids); w.put(g.logProbs); w.put(g.finish == .stop); w.put(g.text); w.put(g.nonFinite); w.put(g.stopId ?? -1)
        }
    }
    init(from r: inout WireReader) {
        items = (0..<Int(r.get(Int64.self))).map { _ in
            let ids: [Int32] = r.getArray(), lps = r.getFloats()
            let finish: Generation.Finish = r.get(Bool.self) ? .stop : .length
            var g = Generation(ids: ids, logProbs: lps, finish: finish, text: r.getString())
            g.nonFinite = r.get(Bool.self)
            let stop = r.get(Int32.self)
            g.stopId = stop >= 0 ? stop : nil
            return g
        }
    }
}
