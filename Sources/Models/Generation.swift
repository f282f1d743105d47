import Foundation
import TensorCore

/// How to pick the next token. temperature 0 is greedy (argmax); otherwise softmax(z/T),
/// restricted to the top-k tokens and then to the smallest set whose mass reaches top-p.
public struct SamplingOptions: Sendable {
    public var maxNewTokens: Int
    public var temperature: Float
    public var topK: Int
    public var topP: Float
    public var stopIds: Set<Int32>

    public init(maxNewTokens: Int, temperature: Float = 0, topK: Int = 0, topP: Float = 1, stopIds: Set<Int32> = []) {
        self.maxNewTokens = maxNewTokens; self.temperature = temperature
        self.topK = topK; self.topP = topP; self.stopIds = stopIds
    }
}

/// Autoregressive decoding by recomputing the forward pass over the whole prefix at each
/// step. Simple and exact; the KV-cache decoder (rollout toolkit) replaces it for speed.
public enum Generator {
    /// Returns the generated ids (without the prompt; a stop id ends generation and is not
    /// included) and whether a stop id was produced.
    public static func generate(_ model: LanguageModel, prompt: [Int32], options: SamplingOptions,
                                rng: inout RNG) -> (ids: [Int32], stopped: Bool) {
        var seq = prompt
        var out: [Int32] = []
        let tape = Tape(recording: false)
        while out.count < options.maxNewTokens && seq.count < model.maxSequenceLength {
            let logits = model.forward(tape, inputs: seq, batch: 1, seqLen: seq.count)
            let V = model.vocabSize
            let last = Array(UnsafeBufferPointer(start: logits.data + (seq.count - 1) * V, count: V))
            let next = pick(last, options: options, rng: &rng)
            if options.stopIds.contains(next) { return (out, true) }
            out.append(next)
            seq.append(next)
        }
        return (out, false)
    }

    public static func pick(_ logits: [Float], options: SamplingOptions, rng: inout RNG) -> Int32 {
        if options.temperature <= 0 {
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            return Int32(best)
        }
        var order = Array(0..<logits.count)
        order.sort { logits[$0] > logits[$1] }
        if options.topK > 0 && options.topK < order.count { order = Array(order[0..<options.topK]) }
        let m = logits[order[0]]
        var probs = order.map { expf((logits[$0] - m) / options.temperature) }
        let z = probs.reduce(0, +)
        probs = probs.map { $0 / z }
        if options.topP < 1 {
            var mass: Float = 0, keep = 0
            while keep < probs.count { mass += probs[keep]; keep += 1; if mass >= options.topP { break } }
            order = Array(order[0..<keep]); probs = Array(probs[0..<keep])
            let s = probs.reduce(0, +); probs = probs.map { $0 / s }
        }
        let u = rng.uniform()
        var acc: Float = 0
        for (i, p) in probs.enumerated() {
            acc += p
            if u < acc { return Int32(order[i]) }
        }
        return Int32(order[order.count - 1])
    }
}
