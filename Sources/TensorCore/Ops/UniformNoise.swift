/// Additive noise, U(−m_r, m_r) on every element of row r (NEFTune's embedding noise, arXiv
/// 2310.05914, Algorithm 1; the scale rule lives in Models/NEFTune.swift). Element (r, j) draws
/// from its row's key, the salt and j, as `DropoutMask` does, so a row's noise depends on what
/// the row is (its sequence and position in the step batch), not on where a pass put it —
/// the same at any rank count, micro-batch size or packing.
public struct UniformNoise: Sendable {
    public let salt: UInt64
    /// One key per row of the input.
    public let rowKeys: [UInt64]
    /// m_r per row; 0 leaves the row as it is (padding).
    public let magnitudes: [Float]

    public init(salt: UInt64, rowKeys: [UInt64], magnitudes: [Float]) {
        precondition(rowKeys.count == magnitudes.count, "UniformNoise: \(rowKeys.count) row keys, \(magnitudes.count) magnitudes")
        self.salt = salt; self.rowKeys = rowKeys; self.magnitudes = magnitudes
    }

    /// ε(r, j) ∈ [−1, 1): 24 random bits of the element's stream, 2u − 1 (exact in float32).
    @inline(__always) public func unit(row: Int, column: Int) -> Float {
        Float(DropoutMask.bits24(salt: salt, rowKey: rowKeys[row], column: column)) * 0x1p-23 - 1
    }
}

extension Tape {
    /// x + m_r·ε(r, j) for x [n, C]. The noise is a constant: the gradient passes unchanged.
    public func addingNoise(_ x: Tensor, _ noise: UniformNoise) -> Tensor {
        let n = x.rows, c = x.columns
        precondition(noise.rowKeys.count == n, "addingNoise: \(noise.rowKeys.count) row keys for \(n) rows")
        let out = output(x.shape)
        let (o, xs) = (out.data, x.data)
        Parallel.forRanges(n, minChunk: max(1, 4096 / max(c, 1))) { rows in
            for r in rows {
                let m = noise.magnitudes[r]
                if m == 0 { for j in 0..<c { o[r * c + j] = xs[r * c + j] }; continue }
                for j in 0..<c { o[r * c + j] = xs[r * c + j] + m * noise.unit(row: r, column: j) }
            }
        }
        out.requiresGrad = record([x], output: out) {
            let (g, d) = (x.grad, out.grad)
            for i in 0..<n * c { g[i] += d[i] }
        }
        return out
    }
}
