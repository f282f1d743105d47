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
    /// Report log softmax(z/T)[token], the log-prob under the distribution sampled before the
    /// top-k/top-p cuts (the log-prob TRL's GRPOTrainer and verl compute with the logits divided
    /// by the temperature), instead of the model's own at temperature 1. Rollouts ask for it.
    public var logProbsAtTemperature = false

    public init(maxNewTokens: Int, temperature: Float = 0, topK: Int = 0, topP: Float = 1,
                stopIds: Set<Int32> = [], stopStrings: [String] = []) {
        self.maxNewTokens = maxNewTokens; self.temperature = temperature
        self.topK = topK; self.topP = topP; self.stopIds = stopIds; self.stopStrings = stopStrings
    }

    /// Where generated `text` ends: the start of the earliest stop string in it, or nil. The
    /// generator cuts there, and `generate`'s streaming prints no further.
    public func stopCut(in text: String) -> String.Index? {
        stopStrings.compactMap { text.range(of: $0)?.lowerBound }.min()
    }
}

public struct Generation: Sendable {
    public enum Finish: String, Sendable { case stop, length }
    /// Generated ids, without the prompt and without the stop id.
    public var ids: [Int32]
    /// log p(token) under the model (temperature 1; the sampling temperature with
    /// `logProbsAtTemperature`) for each generated id, and for the stop id when one ended
    /// generation: the sequence's probability for calibration.
    public var logProbs: [Float]
    public var finish: Finish
    /// Set when a stop string ended generation: the text up to (not including) it.
    public var text: String?
    /// Set when the model's logits for the next token were not finite (weights that diverged
    /// give NaN): the row stopped there, that position's pick not recorded, so a caller can
    /// refuse the model instead of printing what an argmax over NaN picked.
    public var nonFinite = false
    /// The stop id that ended generation (nil: length, a stop string, or not finite), which a
    /// rollout carries as its last trained token when several ids stop it.
    public var stopId: Int32? = nil

    public init(ids: [Int32], logProbs: [Float], finish: Finish, text: String?) {
        self.ids = ids; self.logProbs = logProbs; self.finish = finish; self.text = text
    }
}

/// Autoregressive decoding for a batch of prompts. With a KV cache (IncrementalDecoder)
/// each step runs only the new tokens — one token per active prompt, all prompts' rows in
/// each GEMM — and only the last position of each gets logits; otherwise the prefix is
/// recomputed (exact, slower). Every prompt samples from its own seeded stream, so results
/// do not depend on how prompts are batched or sharded over ranks.
public enum Generator {
    /// Rows decoded together: at most 4,096 (the prefill's activations grow with them), and no
    /// more than keep the KV cache within a quarter of the memory available (4 GiB at most).
    nonisolated(unsafe) public static var maxRowsPerChunk = 4096   // tests lower it to check chunking

    static func rowsPerChunk(_ model: LanguageModel, prompts: [[Int32]], options: SamplingOptions) -> Int {
        let cap = maxRowsPerChunk
        guard prompts.count > min(64, cap), let decoder = model as? IncrementalDecoder else { return cap }
        let probe = decoder.makeCache(rows: 1, capacity: 1)
        let capacity = min(model.maxSequenceLength, (prompts.map(\.count).max() ?? 0) + options.maxNewTokens)
        let perRow = max(1, 2 * probe.layers * capacity * probe.kvDim * MemoryLayout<Float>.stride)
        let budget = min(4 << 30, max(256 << 20, (MemoryBudget.availableBytes() ?? (16 << 30)) / 4))
        return max(1, min(cap, budget / perRow))
    }

    public static func generate(_ model: LanguageModel, prompts: [[Int32]], options: SamplingOptions,
                                rngs: [RNG], decodeText: (([Int32]) -> String)? = nil,
                                onToken: ((Int, Int32) -> Void)? = nil) -> [Generation] {
        precondition(rngs.count == prompts.count, "one RNG per prompt")
        // Rows are independent (own stream, own cache rows), so a batch too large for one KV
        // cache is decoded in chunks with the same results: 8,192 rollouts of a generation
        // filled memory until the OOM killer ended the run.
        let chunk = rowsPerChunk(model, prompts: prompts, options: options)
        if prompts.count > chunk {
            var out: [Generation] = []
            for start in stride(from: 0, to: prompts.count, by: chunk) {
                let end = min(start + chunk, prompts.count)
                out += generate(model, prompts: Array(prompts[start..<end]), options: options, rngs: Array(rngs[start..<end]),
                                decodeText: decodeText, onToken: onToken.map { f in { f($0 + start, $1) } })
            }
            return out
        }
        var rngs = rngs
        var results = prompts.map { _ in Generation(ids: [], logProbs: [], finish: .length, text: nil) }
        var active = [Bool](repeating: true, count: prompts.count)
        let V = model.vocabSize, maxLen = model.maxSequenceLength
        for (i, p) in prompts.enumerated() where p.isEmpty || p.count >= maxLen { active[i] = false }
        let samplers = (0..<Parallel.threads).map { _ in TokenSampler(vocab: V) }

        // A row's picked token and its log-prob → record, check stops; the token to feed next.
        func advance(_ row: Int, _ next: Int32, _ lp: Float) -> Int32? {
            // Finite logits give a finite log-probability for any token the sampler can pick.
            if !lp.isFinite {
                results[row].nonFinite = true; active[row] = false
                return nil
            }
            if options.stopIds.contains(next) {
                results[row].logProbs.append(lp); results[row].finish = .stop; results[row].stopId = next; active[row] = false
                return nil
            }
            results[row].ids.append(next); results[row].logProbs.append(lp)
            onToken?(row, next)
            if !options.stopStrings.isEmpty, let decodeText {
                let text = decodeText(results[row].ids)
                if let cut = options.stopCut(in: text) {
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
            var picks = [(token: Int32, logProb: Float)](repeating: (0, 0), count: prompts.count)
            while !segments.isEmpty {
                let logits = decoder.decode(segments, cache: cache, logitsOf: .lastPosition)
                sampleRows(segments.map(\.row), logits: logits, vocab: V, options: options, samplers: samplers,
                           rngs: &rngs, into: &picks)
                segments = segments.compactMap { s in
                    advance(s.row, picks[s.row].token, picks[s.row].logProb).map { DecodeSegment(row: s.row, tokens: [$0]) }
                }
            }
        } else {
            let tape = Tape(recording: false)
            for row in prompts.indices where active[row] {
                var seq = prompts[row]
                while true {
                    let logits = model.forward(tape, inputs: seq, batch: 1, seqLen: seq.count)
                    let last = UnsafeBufferPointer(start: logits.data + (seq.count - 1) * V, count: V)
                    let (t, lp) = withExtendedLifetime(logits) { samplers[0].sample(last, options: options, rng: &rngs[row]) }
                    guard let next = advance(row, t, lp) else { break }
                    seq.append(next)
                }
            }
        }
        return results
    }

    /// Samples row `rows[i]` from logits row i, spread over the threads (one sampler each);
    /// each row draws from its own stream, so the split does not change any result.
    static func sampleRows(_ rows: [Int], logits: UnsafeBufferPointer<Float>, vocab V: Int, options: SamplingOptions,
                           samplers: [TokenSampler], rngs: inout [RNG], into picks: inout [(token: Int32, logProb: Float)]) {
        let threads = min(samplers.count, Parallel.threads)
        rngs.withUnsafeMutableBufferPointer { streams in
            picks.withUnsafeMutableBufferPointer { out in
                Parallel.onEachThread { t in
                    guard t < threads else { return }
                    var i = t
                    while i < rows.count {
                        let row = UnsafeBufferPointer(rebasing: logits[(i * V)..<((i + 1) * V)])
                        out[rows[i]] = samplers[t].sample(row, options: options, rng: &streams[rows[i]])
                        i += threads
                    }
                }
            }
        }
    }

    /// One token by the rule `SamplingOptions` states (see `TokenSampler`).
    public static func pick(_ logits: UnsafeBufferPointer<Float>, options: SamplingOptions, rng: inout RNG) -> Int32 {
        TokenSampler(vocab: logits.count).sample(logits, options: options, rng: &rng).token
    }

    public static func pick(_ logits: [Float], options: SamplingOptions, rng: inout RNG) -> Int32 {
        logits.withUnsafeBufferPointer { pick($0, options: options, rng: &rng) }
    }
}
