#if canImport(Glibc)
import Glibc
#endif
import TensorCore

/// Picks the next token from one row of logits by the rule `SamplingOptions` states, and
/// reports its log-probability, reusing its buffers from token to token.
///
/// The rule: temperature 0 is the first largest logit. With top-k or top-p < 1 the vocabulary
/// is ordered by logit, highest first, ties by id (so sampling is reproducible on every
/// platform), cut to the top k, weighted exp((z − max)/T), cut to the smallest prefix whose
/// mass reaches top-p, and walked in that order until the running sum passes u·Σ. Without
/// either cut the weights are walked in id order (`sampleInIdOrder`), as torch.multinomial
/// does; that draws from the same distribution without sorting. Every sum runs in its
/// stated order, so the token is bit-for-bit a function of the logits and the random stream.
///
/// The order comes from a stable LSD radix sort of the logits' bit patterns (three passes of
/// 11 bits), which yields exactly the order of the comparison sort it replaces: that sort of
/// 8,192 entries per token took 40 % of batched generation time.
public final class TokenSampler {
    public let vocab: Int
    private let keys, keysSpare: UnsafeMutablePointer<UInt32>
    private let order, orderSpare: UnsafeMutablePointer<Int32>
    private let weights: UnsafeMutablePointer<Float>     // exp((z − max)/T), by id or by rank
    private let counts: UnsafeMutablePointer<Int>        // three digit histograms
    private static let digitBits = 11, buckets = 1 << 11

    public init(vocab: Int) {
        self.vocab = vocab
        let n = max(vocab, 1)
        keys = .allocate(capacity: n); keysSpare = .allocate(capacity: n)
        order = .allocate(capacity: n); orderSpare = .allocate(capacity: n)
        weights = .allocate(capacity: n)
        counts = .allocate(capacity: 3 * Self.buckets)
    }

    deinit {
        keys.deallocate(); keysSpare.deallocate(); order.deallocate(); orderSpare.deallocate()
        weights.deallocate(); counts.deallocate()
    }

    /// The next token and log p(token) under the model at temperature 1, or at the sampling
    /// temperature with `options.logProbsAtTemperature`.
    public func sample(_ z: UnsafeBufferPointer<Float>, options: SamplingOptions, rng: inout RNG) -> (token: Int32, logProb: Float) {
        let V = z.count
        precondition(V > 0 && V <= vocab, "TokenSampler: \(V) logits for a sampler of \(vocab)")
        var m = -Float.infinity
        for v in z { m = max(m, v) }
        if options.temperature <= 0 {
            var best = 0
            for i in 1..<V where z[i] > z[best] { best = i }
            return (Int32(best), logProb(z, max: m, token: best, weightsFilled: false))
        }
        let T = options.temperature
        // The temperature the log-prob is taken at.
        let logT: Float = options.logProbsAtTemperature ? T : 1
        if (options.topK <= 0 || options.topK >= V) && options.topP >= 1 {
            return sampleInIdOrder(z, max: m, temperature: T, logProbAt: logT, rng: &rng)
        }
        sortDescending(z)
        let top = z[Int(order[0])]
        var count = options.topK > 0 && options.topK < V ? options.topK : V
        // When the log-prob is at the sampling temperature, the weights exp((z − max)/T) of every
        // id are its terms too: computed once, by id, then read in rank order (top is the max).
        let shared = T == logT && count == V
        if shared {
            if T == 1 {
                for i in 0..<V { weights[i] = expf(z[i] - m) }
            } else {
                for i in 0..<V { weights[i] = expf((z[i] - m) / T) }
            }
        }
        // Rank-ordered weights go to keysSpare's memory, reinterpreted (free after sorting).
        let probs = UnsafeMutableRawPointer(keysSpare).bindMemory(to: Float.self, capacity: V)
        for r in 0..<count {
            let id = Int(order[r])
            probs[r] = shared ? weights[id] : expf((z[id] - top) / T)
        }
        var total: Float = 0
        for r in 0..<count { total += probs[r] }
        if options.topP < 1 {
            var mass: Float = 0, keep = 0
            while keep < count { mass += probs[keep] / total; keep += 1; if mass >= options.topP { break } }
            count = keep
            total = 0
            for r in 0..<count { total += probs[r] }
        }
        let u = rng.uniform() * total
        var acc: Float = 0, pick = Int(order[count - 1])
        for r in 0..<count {
            acc += probs[r]
            if u < acc { pick = Int(order[r]); break }
        }
        return (Int32(pick), logProb(z, max: m, token: pick, weightsFilled: shared, temperature: logT))
    }

    /// Without top-k or top-p there is nothing to cut, so nothing to order: the weights
    /// exp((z − max)/T) are summed in id order (their running sums kept), and the token is the
    /// first id whose running sum passes u·Σ — the walk torch.multinomial makes over the
    /// vocabulary. Should u·Σ round up to Σ, the last id that raised the running sum.
    private func sampleInIdOrder(_ z: UnsafeBufferPointer<Float>, max m: Float, temperature T: Float, logProbAt logT: Float,
                                 rng: inout RNG) -> (token: Int32, logProb: Float) {
        let V = z.count
        // Running sums go to keysSpare's memory, reinterpreted (unused without a sort).
        let running = UnsafeMutableRawPointer(keysSpare).bindMemory(to: Float.self, capacity: V)
        // The weights first, then their running sums: with the `expf` call in the summing loop
        // the running sum lived on the stack across the call, and its store and reload, not
        // `expf`, were most of the sampler's time. Same values, same order, same bits.
        if T == 1 {  // the log-probability's terms too
            for i in 0..<V { weights[i] = expf(z[i] - m) }
        } else {
            for i in 0..<V { weights[i] = expf((z[i] - m) / T) }
        }
        var total: Float = 0, expSum: Double = 0
        if T == logT {  // the log-probability's sum alongside (two independent chains)
            for i in 0..<V { let w = weights[i]; total += w; running[i] = total; expSum += Double(w) }
        } else {
            for i in 0..<V { total += weights[i]; running[i] = total }
        }
        let u = rng.uniform() * total
        // The running sums never decrease: the first one above u by bisection.
        var lo = 0, hi = V
        while lo < hi {
            let mid = (lo + hi) / 2
            if u < running[mid] { hi = mid } else { lo = mid + 1 }
        }
        var pick = lo
        if pick == V {
            pick = V - 1
            while pick > 0 && running[pick] == running[pick - 1] { pick -= 1 }
        }
        return (Int32(pick), logProb(z, max: m, token: pick, weightsFilled: false, expSum: T == logT ? expSum : nil, temperature: logT))
    }

    /// log softmax(z/T)[token], the sum of exponentials exp((z − max)/T) in double precision,
    /// in id order (`expSum`: that sum, when the caller has taken it; `weightsFilled`: the
    /// weights hold its terms). At T = 1, log softmax(z)[token] bit for bit as before T existed.
    private func logProb(_ z: UnsafeBufferPointer<Float>, max m: Float, token: Int, weightsFilled: Bool,
                         expSum: Double? = nil, temperature T: Float = 1) -> Float {
        var s: Double = 0
        if let expSum {
            s = expSum
        } else if weightsFilled {
            for i in 0..<z.count { s += Double(weights[i]) }
        } else if T == 1 {
            for v in z { s += Double(expf(v - m)) }
        } else {
            for v in z { s += Double(expf((v - m) / T)) }
        }
        return (T == 1 ? z[token] - m : (z[token] - m) / T) - Float(log(s))
    }

    /// Fills `order[0..<V]` with the ids by descending logit, ties by ascending id.
    private func sortDescending(_ z: UnsafeBufferPointer<Float>) {
        let V = z.count, B = Self.buckets, mask = UInt32(B - 1)
        memset(counts, 0, 3 * B * MemoryLayout<Int>.stride)
        for i in 0..<V {
            // −0 and +0 compare equal, so they must share a key (ties then go by id).
            let bits = z[i] == 0 ? 0 : z[i].bitPattern
            // Ascending unsigned order of `ordered` is ascending float order; its complement
            // sorts descending.
            let ordered = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
            let key = ~ordered
            keys[i] = key; order[i] = Int32(i)
            counts[Int(key & mask)] += 1
            counts[B + Int((key >> 11) & mask)] += 1
            counts[2 * B + Int(key >> 22)] += 1
        }
        var (src, dst) = (keys, keysSpare)
        var (srcOrder, dstOrder) = (order, orderSpare)
        for pass in 0..<3 {
            let hist = counts + pass * B, shift = UInt32(pass * Self.digitBits)
            // A digit all keys share leaves the order as it is.
            if hist[Int((src[0] >> shift) & mask)] == V { continue }
            var start = 0
            for d in 0..<B { let c = hist[d]; hist[d] = start; start += c }
            for i in 0..<V {
                let k = src[i], d = Int((k >> shift) & mask)
                let at = hist[d]; hist[d] = at + 1
                dst[at] = k; dstOrder[at] = srcOrder[i]
            }
            swap(&src, &dst); swap(&srcOrder, &dstOrder)
        }
        if srcOrder != order { order.update(from: srcOrder, count: V) }
    }
}
