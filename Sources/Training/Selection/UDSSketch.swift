import Foundation
import TensorCore

/// UDS's fast Johnson–Lindenstrauss sketch of a candidate's logits (arXiv 2510.16882 §3.2;
/// `FastJLProjector` of the authors' code): with L ∈ R^{T×V} the logits zero-padded to T =
/// the maximum sequence length,
///   right:  Y = Re(FFT_vocab(L · diag(d2)))[:, idx2] · √(V / r2)
///   left:   Z = Re(FFT_time(diag(d1) · Y))[idx1, :] · √(T / r1)
/// with random signs d1 ∈ {±1}^T, d2 ∈ {±1}^V and indices idx1 ∈ [0, T)^{r1}, idx2 ∈
/// [0, V)^{r2} drawn with replacement, fixed by the run's seed. Since the inputs are real,
/// Re(FFT(x))[k] = Σ x_j cos(2πkj/n), so each side is one matrix product with a cosine
/// table: Z = C1 · (L · C2), C2[v, j] = d2[v]·cos(2π·idx2[j]·v/V)·√(V/r2) and C1[i, t] =
/// d1[t]·cos(2π·idx1[i]·t/T)·√(T/r1); rows of L past the candidate's length are zero, so
/// only its n rows are multiplied. The sketch is Z flattened row-major (r1·r2 values).
public struct UDSSketch {
    public let T: Int, V: Int, r1: Int, r2: Int
    public let d1: [Float], d2: [Float], idx1: [Int], idx2: [Int]
    /// [V, r2] and [r1, T].
    let c2: [Float], c1: [Float]

    public init(T: Int, V: Int, r1: Int, r2: Int, seed: UInt64) {
        var rng = RNG(seed: seed, stream: 0x5D5)
        let d2 = (0..<V).map { _ in Float(rng.below(2) * 2 - 1) }
        let idx2 = (0..<r2).map { _ in rng.below(V) }
        let d1 = (0..<T).map { _ in Float(rng.below(2) * 2 - 1) }
        let idx1 = (0..<r1).map { _ in rng.below(T) }
        self.init(T: T, V: V, d1: d1, d2: d2, idx1: idx1, idx2: idx2)
    }

    /// Explicit signs and indices (tests compare against an independent FFT).
    public init(T: Int, V: Int, d1: [Float], d2: [Float], idx1: [Int], idx2: [Int]) {
        self.T = T; self.V = V; r1 = idx1.count; r2 = idx2.count
        self.d1 = d1; self.d2 = d2; self.idx1 = idx1; self.idx2 = idx2
        // cos(2π·((k·j) mod n)/n) in double: the reduced angle keeps the table exact to float.
        func cosine(_ k: Int, _ j: Int, _ n: Int) -> Double { cos(2 * Double.pi * Double((k * j) % n) / Double(n)) }
        let sr = (Double(V) / Double(idx2.count)).squareRoot(), sl = (Double(T) / Double(idx1.count)).squareRoot()
        var c2 = [Float](repeating: 0, count: V * idx2.count)
        for v in 0..<V { for (j, k) in idx2.enumerated() { c2[v * idx2.count + j] = Float(Double(d2[v]) * cosine(k, v, V) * sr) } }
        var c1 = [Float](repeating: 0, count: idx1.count * T)
        for (i, k) in idx1.enumerated() { for t in 0..<T { c1[i * T + t] = Float(Double(d1[t]) * cosine(k, t, T) * sl) } }
        self.c2 = c2; self.c1 = c1
    }

    public var dimension: Int { r1 * r2 }

    /// The sketch of `rows` (≤ T) rows of logits [rows, V].
    public func sketch(_ logits: UnsafePointer<Float>, rows: Int) -> [Float] {
        let n = min(rows, T)
        var y = [Float](repeating: 0, count: max(n, 1) * r2)
        guard n > 0 else { return [Float](repeating: 0, count: r1 * r2) }
        c2.withUnsafeBufferPointer { c2 in
            BLAS.gemm(transA: false, transB: false, m: n, n: r2, k: V, a: logits, lda: V, b: c2.baseAddress!, ldb: r2,
                      beta: 0, c: &y, ldc: r2)
        }
        return left(y, rows: n)
    }

    /// The right side's head factor for logits L = H·op(W): op(W)·C2, [width, r2], so that
    /// L·C2 = H·(op(W)·C2) — built once per scoring pass (`sketch(hidden:…)`).
    public func headProjection(head: UnsafePointer<Float>, width d: Int, layout: WeightLayout) -> [Float] {
        var p = [Float](repeating: 0, count: d * r2)
        c2.withUnsafeBufferPointer { c2 in
            // .outIn: W is [V, d], op(W) = Wᵀ; .inOut: W is [d, V].
            BLAS.gemm(transA: layout == .outIn, transB: false, m: d, n: r2, k: V, a: head, lda: layout == .outIn ? d : V,
                      b: c2.baseAddress!, ldb: r2, beta: 0, c: &p, ldc: r2)
        }
        return p
    }

    /// The sketch of the logits H·op(W) from `rows` hidden states [rows, width] and
    /// `headProjection`'s factor, without forming the logits.
    public func sketch(hidden: UnsafePointer<Float>, rows: Int, width d: Int, projection: [Float]) -> [Float] {
        let n = min(rows, T)
        var y = [Float](repeating: 0, count: max(n, 1) * r2)
        guard n > 0 else { return [Float](repeating: 0, count: r1 * r2) }
        BLAS.gemm(transA: false, transB: false, m: n, n: r2, k: d, a: hidden, lda: d, b: projection, ldb: r2,
                  beta: 0, c: &y, ldc: r2)
        return left(y, rows: n)
    }

    /// Z = C1[:, :n] · Y for Y = L·C2 [n, r2].
    func left(_ y: [Float], rows n: Int) -> [Float] {
        var z = [Float](repeating: 0, count: r1 * r2)
        c1.withUnsafeBufferPointer { c1 in
            BLAS.gemm(transA: false, transB: false, m: r1, n: r2, k: n, a: c1.baseAddress!, lda: T, b: y, ldb: r2,
                      beta: 0, c: &z, ldc: r2)
        }
        return z
    }
}
