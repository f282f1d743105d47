/// Inverted dropout (Srivastava et al. 2014): out = x ⊙ m / (1 − p), m_ij ~ Bernoulli(1 − p).
///
/// The mask is a pure function of (salt, the row's key, column), not of a stream consumed in
/// order, so it does not depend on how rows are split over ranks or micro-batches: the
/// trainer keys each row by its token's place in the global step batch (LoRA dropout).
public struct DropoutMask: Sendable {
    public let probability: Float
    public let salt: UInt64
    /// One key per row of the input.
    public let rowKeys: [UInt64]

    public init(probability: Float, salt: UInt64, rowKeys: [UInt64]) {
        precondition(probability >= 0 && probability < 1, "DropoutMask: probability \(probability) not in [0, 1)")
        self.probability = probability; self.salt = salt; self.rowKeys = rowKeys
    }

    /// Whether element (row, column) is kept.
    @inline(__always) public func keeps(row: Int, column: Int) -> Bool {
        // 24 random bits against p: uniform in [0, 1) at float precision.
        Float(Self.bits24(salt: salt, rowKey: rowKeys[row], column: column)) * 0x1p-24 >= probability
    }

    /// 24 random bits of element (row, column)'s own stream (also `UniformNoise`'s).
    @inline(__always) public static func bits24(salt: UInt64, rowKey: UInt64, column: Int) -> UInt64 {
        var g = SplitMix64(seed: salt ^ (rowKey &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(column) &* 0xD6E8_FEB8_6659_FD93))
        return g.next() >> 40
    }

    /// A key for `(a, b)` pairs such as (sequence, position) or (step, layer).
    public static func key(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var g = SplitMix64(seed: a &* 0xBF58_476D_1CE4_E5B9 ^ b)
        return g.next()
    }
}

extension Tape {
    public func dropout(_ x: Tensor, mask: DropoutMask) -> Tensor {
        let n = x.rows, c = x.columns
        precondition(mask.rowKeys.count == n, "dropout: \(mask.rowKeys.count) row keys for \(n) rows")
        let out = output(x.shape)
        let scale = 1 / (1 - mask.probability)
        let (o, xs) = (out.data, x.data)
        Parallel.forRanges(n, minChunk: max(1, 4096 / max(c, 1))) { rows in
            for r in rows {
                for j in 0..<c { o[r * c + j] = mask.keeps(row: r, column: j) ? xs[r * c + j] * scale : 0 }
            }
        }
        out.requiresGrad = record([x], output: out) {
            let (g, d) = (x.grad, out.grad)
            Parallel.forRanges(n, minChunk: max(1, 4096 / max(c, 1))) { rows in
                for r in rows {
                    for j in 0..<c where mask.keeps(row: r, column: j) { g[r * c + j] += d[r * c + j] * scale }
                }
            }
        }
        return out
    }
}
