import Distributed
import Foundation
import Models
import TensorCore

/// The coordinator's rollout primitive: prompts are dealt round-robin over ranks, each rank
/// generates its share with the KV cache, and the results come back in prompt order on
/// every rank (allgather) — what GRPO groups, CHORD mixing and pseudo-labelling build on.
/// Prompt i always samples from stream (seed, i), so the rollouts are identical for any
/// rank count.
public enum ShardedGeneration {
    public static func generate(_ model: LanguageModel, prompts: [[Int32]], options: SamplingOptions,
                                seed: UInt64, comm: Communicator,
                                decodeText: (([Int32]) -> String)? = nil) -> [Generation] {
        let mine = Array(stride(from: comm.rank, to: prompts.count, by: comm.size))
        let local = Generator.generate(model, prompts: mine.map { prompts[$0] }, options: options,
                                       rngs: mine.map { RNG(seed: seed, stream: UInt64($0)) }, decodeText: decodeText)
        let perRank = comm.allgather(encode(local)).map(decode)
        return (0..<prompts.count).map { perRank[$0 % comm.size][$0 / comm.size] }
    }

    /// Compact binary form: per generation, counts then ids, log-probs, finish, text.
    static func encode(_ gens: [Generation]) -> [UInt8] {
        var out: [UInt8] = []
        func put<T>(_ v: T) { withUnsafeBytes(of: v) { out.append(contentsOf: $0) } }
        put(Int32(gens.count))
        for g in gens {
            put(Int32(g.ids.count)); g.ids.forEach { put($0) }
            put(Int32(g.logProbs.count)); g.logProbs.forEach { put($0) }
            put(UInt8(g.finish == .stop ? 1 : 0))
            let text = Array((g.text ?? "").utf8)
            put(Int32(g.text == nil ? -1 : text.count)); out += text
        }
        return out
    }

    static func decode(_ bytes: [UInt8]) -> [Generation] {
        var at = 0
        func get<T>(_: T.Type) -> T {
            let v = bytes[at..<(at + MemoryLayout<T>.size)].withUnsafeBytes { $0.loadUnaligned(as: T.self) }
            at += MemoryLayout<T>.size
            return v
        }
        let n = Int(get(Int32.self))
        return (0..<n).map { _ in
            let ids = (0..<Int(get(Int32.self))).map { _ in get(Int32.self) }
            let lps = (0..<Int(get(Int32.self))).map { _ in get(Float.self) }
            let finish: Generation.Finish = get(UInt8.self) == 1 ? .stop : .length
            let len = Int(get(Int32.self))
            var text: String? = nil
            if len >= 0 { text = String(decoding: bytes[at..<(at + len)], as: UTF8.self); at += len }
            return Generation(ids: ids, logProbs: lps, finish: finish, text: text)
        }
    }
}
