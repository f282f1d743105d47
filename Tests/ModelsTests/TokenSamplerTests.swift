#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import Models
import TensorCore

/// `TokenSampler` (radix-sorted, buffers reused) must pick exactly what the comparison-sort
/// sampler it replaced picked, bit for bit: same token, same log-prob, same random draws —
/// and without top-k and top-p, what a plain walk over the vocabulary in id order picks.
final class TokenSamplerTests: XCTestCase {
    /// The reference: without a cut, weights exp((z − max)/T) walked in id order to u·Σ;
    /// with one, the previous implementation: sort every id by logit (ties by id), cut to
    /// top-k, weights exp((z − max)/T), cut to top-p, walk to u·Σ.
    static func referencePick(_ logits: [Float], options: SamplingOptions, rng: inout RNG) -> Int32 {
        if options.temperature <= 0 {
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            return Int32(best)
        }
        if (options.topK <= 0 || options.topK >= logits.count) && options.topP >= 1 {
            let m = logits.max()!
            let probs = logits.map { expf(($0 - m) / options.temperature) }
            let u = rng.uniform() * probs.reduce(0, +)
            var acc: Float = 0, last = 0
            for (i, p) in probs.enumerated() {
                let before = acc
                acc += p
                if acc != before { last = i }
                if u < acc { return Int32(i) }
            }
            return Int32(last)
        }
        var order = Array(0..<logits.count)
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

    static func referenceLogProb(_ z: [Float], _ t: Int32) -> Float {
        var m = -Float.infinity
        for v in z { m = max(m, v) }
        var s: Double = 0
        for v in z { s += Double(expf(v - m)) }
        return z[Int(t)] - m - Float(log(s))
    }

    /// Logits of several shapes: spread out, peaked, coarse (many exact ties, ±0), negative only.
    func logitRows(vocab: Int, rng: inout RNG) -> [[Float]] {
        let spread = (0..<vocab).map { _ in rng.normal() * 3 }
        let peaked = (0..<vocab).map { i in i % 97 == 5 ? 12 + rng.normal() : rng.normal() }
        let coarse = (0..<vocab).map { _ -> Float in
            let v = Float(rng.below(7)) - 3
            return v == 0 && rng.below(2) == 0 ? -0.0 : v
        }
        let negative = (0..<vocab).map { _ in -abs(rng.normal() * 50) - 1 }
        return [spread, peaked, coarse, negative]
    }

    func testSamePicksLogProbsAndDrawsAsTheReference() {
        var gen = RNG(seed: 42)
        let optionSets = [SamplingOptions(maxNewTokens: 1),
                          SamplingOptions(maxNewTokens: 1, temperature: 1),
                          SamplingOptions(maxNewTokens: 1, temperature: 0.7, topK: 5),
                          SamplingOptions(maxNewTokens: 1, temperature: 1, topK: 40, topP: 0.9),
                          SamplingOptions(maxNewTokens: 1, temperature: 1.6, topP: 0.3),
                          SamplingOptions(maxNewTokens: 1, temperature: 1, topP: 0.999),
                          SamplingOptions(maxNewTokens: 1, temperature: 0.6),
                          SamplingOptions(maxNewTokens: 1, temperature: 1, topK: 10_000)]
        var checked = 0
        for vocab in [2, 13, 300, 5000] {
            let sampler = TokenSampler(vocab: vocab)
            for logits in logitRows(vocab: vocab, rng: &gen) {
                for (k, options) in optionSets.enumerated() {
                    for draw in 0..<6 {
                        var a = RNG(seed: UInt64(draw), stream: UInt64(k)), b = a
                        let want = Self.referencePick(logits, options: options, rng: &a)
                        let got = logits.withUnsafeBufferPointer { sampler.sample($0, options: options, rng: &b) }
                        XCTAssertEqual(got.token, want, "vocab \(vocab), options \(k), draw \(draw)")
                        XCTAssertEqual(got.logProb.bitPattern, Self.referenceLogProb(logits, want).bitPattern,
                                       "log-prob, vocab \(vocab), options \(k)")
                        XCTAssertEqual(a, b, "the same random draws")
                        checked += 1
                    }
                }
            }
        }
        XCTAssertEqual(checked, 4 * 4 * 8 * 6)
    }

    /// With `logProbsAtTemperature` the log-prob is log softmax(z/T)[token] (in double here,
    /// from the logits directly), the distribution sampled before any cut — what rollouts
    /// store as the behaviour policy's; the token and the draws are unchanged. At T = 1 it is
    /// the model's own log-prob, bit for bit.
    func testLogProbsAtTheSamplingTemperature() {
        var gen = RNG(seed: 7)
        let optionSets = [SamplingOptions(maxNewTokens: 1, temperature: 0.7),
                          SamplingOptions(maxNewTokens: 1, temperature: 1.6, topK: 5),
                          SamplingOptions(maxNewTokens: 1, temperature: 0.5, topK: 40, topP: 0.8),
                          SamplingOptions(maxNewTokens: 1, temperature: 0.8, topP: 0.9),   // the weights shared with the log-prob
                          SamplingOptions(maxNewTokens: 1, temperature: 1),
                          SamplingOptions(maxNewTokens: 1, temperature: 1, topP: 0.9)]
        var tempered = 0
        for vocab in [13, 300, 5000] {
            let sampler = TokenSampler(vocab: vocab)
            for logits in logitRows(vocab: vocab, rng: &gen) {
                for (k, plain) in optionSets.enumerated() {
                    var options = plain
                    options.logProbsAtTemperature = true
                    var a = RNG(seed: 3, stream: UInt64(k)), b = a
                    let before = logits.withUnsafeBufferPointer { sampler.sample($0, options: plain, rng: &a) }
                    let got = logits.withUnsafeBufferPointer { sampler.sample($0, options: options, rng: &b) }
                    XCTAssertEqual(got.token, before.token, "vocab \(vocab), options \(k): the same pick")
                    XCTAssertEqual(a, b, "the same random draws")
                    let T = Double(options.temperature)
                    let scaled = logits.map { Double($0) / T }, m = scaled.max()!
                    let want = scaled[Int(got.token)] - m - log(scaled.reduce(0) { $0 + exp($1 - m) })
                    XCTAssertEqual(Double(got.logProb), want, accuracy: 1e-5 * max(1, abs(want)), "vocab \(vocab), options \(k)")
                    if T == 1 {
                        XCTAssertEqual(got.logProb.bitPattern, before.logProb.bitPattern, "vocab \(vocab), options \(k): at T = 1 as before")
                    } else if abs(Double(before.logProb) - want) > 1e-3 {
                        tempered += 1   // the flag changed the figure
                    }
                }
            }
        }
        XCTAssertGreaterThan(tempered, 20)
    }
}
