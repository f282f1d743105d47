import Foundation
import TensorCore

/// How to pick the next token. temperature 0 is greedy (argmax); otherwise softmax(z/T),
/// restricted to the top-k tokens and then to the smallest set whose mass reaches top-p.
/// Generation ends at a stop id (EOS, <|im_end|>), a stop string, or maxNewTokens.
public struct SamplingOptions: Sendable {
    public var maxNewTokens: Int
    public var temperature: Float
    public var topK: Int
    public var topP: Float
    public var stopIds: Set<Int32>
    public var stopStrings: [String]

    public init(maxNewTokens: Int, temperature: Float = 0, topK: Int = 0, topP: Float = 1,
                stopIds: Set<Int32> = [], stopStrings: [String] = []) {
        self.maxNewTokens = maxNewTokens; self.temperature = temperature
        self.topK = topK; self.topP = topP; self.stopIds = stopIds; self.stopStrings = stopStrings
    }
}

public struct Generation: Sendable {
    public enum Finish: String, Sendable { case stop, length }
    /// Generated ids, without the prompt and without the stop id.
    public var ids: [Int32]
    /// log p(token) under the model (temperature 1) for each generated id, and for the stop
    /// id when one ended generation: the sequence's probability for calibration.
    public var logProbs: [Float]
    public var finish: Finish
    /// Set when a stop string ended generation: the text up to (not including) it.
    public var text: String?

    public init(ids: [Int32], logProbs: [Float], finish: Finish, text: String?) {
        self.ids = ids; self.logProbs = logProbs; self.finish = finish; self.text = text
    }
}

/// Autoregressive decoding for a batch of prompts. With a KV cache (IncrementalDecoder)
/// each step runs only the new tokens; otherwise the prefix is recomputed (exact, slower).
/// Every prompt samples from its own seeded stream, so results do not depend on how
/// prompts are batched or sharded over ranks.
public enum Generator {
    public static func generate(_ model: LanguageModel, prompts: [[Int32]], options: SamplingOptions,
                                rngs: [RNG], decodeText: (([Int32]) -> String)? = nil,
                                onToken: ((Int, Int32) -> Void)? = nil) -> [Generation] {
        precondition(rngs.count == prompts.count, "one RNG per prompt")
        var rngs = rngs
        var results = prompts.map { _ in Generation(ids: [], logProbs: [], finish: .length, text: nil) }
        var active = [Bool](repeating: true, count: prompts.count)
        let V = model.vocabSize, maxLen = model.maxSequenceLength
        for (i, p) in prompts.enumerated() where p.isEmpty || p.count >= maxLen { active[i] = false }

        // Logits of each active row's last position → pick, record, check stops.
        func advance(_ row: Int, _ logits: UnsafeBufferPointer<Float>) -> Int32? {
            let next = pick(logits, options: options, rng: &rngs[row])
            let lp = logProb(logits, next)
            if options.stopIds.contains(next) {
                results[row].logProbs.append(lp); results[row].finish = .stop; active[row] = false
                return nil
            }
            results[row].ids.append(next); results[row].logProbs.append(lp)
            onToken?(row, next)
            if !options.stopStrings.isEmpty, let decodeText {
                let text = decodeText(results[row].ids)
                if let cut = options.stopStrings.compactMap({ text.range(of: $0)?.lowerBound }).min() {
                    results[row].text = String(text[..<cut]); results[row].finish = .stop; active[row] = false
                    return nil
                }
            }
            if results[row].ids.count >= options.maxNewTokens || prompts[row].count + results[row].ids.count >= maxLen {
                active[row] = false
                return nil
            }
            return next
        }

        if let decoder = model as? IncrementalDecoder {
            let longest = prompts.map(\.count).max() ?? 0
            let cache = decoder.makeCache(rows: prompts.count, capacity: min(maxLen, longest + options.maxNewTokens))
            var segments = prompts.indices.filter { active[$0] }.map { DecodeSegment(row: $0, tokens: prompts[$0]) }
            while !segments.isEmpty {
                let logits = decoder.decode(segments, cache: cache)
                var offset = 0, next: [DecodeSegment] = []
                logits.withUnsafeBufferPointer { all in
                    for s in segments {
                        offset += s.tokens.count
                        let last = UnsafeBufferPointer(rebasing: all[((offset - 1) * V)..<(offset * V)])
                        if let t = advance(s.row, last) { next.append(DecodeSegment(row: s.row, tokens: [t])) }
                    }
                }
                segments = next
            }
        } else {
            let tape = Tape(recording: false)
            for row in prompts.indices where active[row] {
                var seq = prompts[row]
                while true {
                    let logits = model.forward(tape, inputs: seq, batch: 1, seqLen: seq.count)
                    let last = UnsafeBufferPointer(start: logits.data + (seq.count - 1) * V, count: V)
                    guard let t = withExtendedLifetime(logits, { advance(row, last) }) else { break }
                    seq.append(t)
                }
            }
        }
        return results
    }

    static func logProb(_ z: UnsafeBufferPointer<Float>, _ t: Int32) -> Float {
        var m = -Float.infinity
        for v in z { m = max(m, v) }
        var s: Double = 0
        for v in z { s += Double(expf(v - m)) }
        return z[Int(t)] - m - Float(log(s))
    }

    public static func pick(_ logits: UnsafeBufferPointer<Float>, options: SamplingOptions, rng: inout RNG) -> Int32 {
        if options.temperature <= 0 {
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            return Int32(best)
        }
        var order = Array(0..<logits.count)
        // Stable order (ties by id) so sampling is reproducible across platforms.
        order.sort { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }
        if options.topK > 0 && options.topK < order.count { order = Array(order[0..<options.topK]) }
        let m = logits[order[0]]
        var probs = order.map { expf((logits[$0] - m) / options.temperature) }
        var z = probs.reduce(0, +)
        if options.topP < 1 {
            var mass: Float = 0, keep = 0
            while keep < probs.count { mass += probs[keep] / z; keep += 1; if mass >= options.topP { break } }
            order = Array(order[0..<keep]); probs = Array(probs[0..<keep])
            z = probs.reduce(0, +)
        }
        let u = rng.uniform() * z
        var acc: Float = 0
        for (i, p) in probs.enumerated() {
            acc += p
            if u < acc { return Int32(order[i]) }
        }
        return Int32(order[order.count - 1])
    }

    public static func pick(_ logits: [Float], options: SamplingOptions, rng: inout RNG) -> Int32 {
        logits.withUnsafeBufferPointer { pick($0, options: options, rng: &rng) }
    }
}
