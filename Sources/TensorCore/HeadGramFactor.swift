import COpenBLAS

/// The nuclear norm of logits L = H·op(W) without forming them (UDS's utility score, arXiv
/// 2510.16882 §3, on a model whose logits are one bias-free projection of its last hidden
/// state: `Models/HiddenStateModel.swift`).
///
/// H is a candidate's [n, d] hidden states, W the LM head ([V, d] with `.outIn`, [d, V] with
/// `.inOut`). L·Lᵀ = H·M·Hᵀ with M = op(W)·op(W)ᵀ, a [d, d] matrix that is the same for every
/// candidate while the weights are fixed, so it is built once per scoring pass. With
/// M = Q·Λ·Qᵀ (LAPACK `dsyev`) and F = Q·Λ^{1/2} (columns with λ > 0 only),
/// (H·F)(H·F)ᵀ = L·Lᵀ, so L and H·F have the same singular values and
/// ‖L‖_* = ‖H·F‖_* (`NuclearNorm`, which takes the smaller Gram matrix of the [n, rank] H·F).
/// Per candidate that is n·d·rank + min(n, rank)²·max(n, rank) multiply-adds instead of
/// n·V·d (forming L) + n²·V (its Gram). Everything is double, as in `NuclearNorm`: M's small
/// eigenvalues must not carry float rounding of the large ones.
public struct HeadGramFactor {
    public let width: Int
    public let rank: Int
    /// F, row-major [width, rank].
    let factor: [Double]

    /// `head`: W as stored; `vocab` × `width` values in `layout`.
    public init(head: UnsafePointer<Float>, vocab: Int, width d: Int, layout: WeightLayout) {
        width = d
        let w = (0..<(vocab * d)).map { Double(head[$0]) }
        var m = [Double](repeating: 0, count: d * d)
        // Upper triangle of Wᵀ·W ([V, d] rows) or W·Wᵀ ([d, V] rows), row-major.
        let outIn = layout == .outIn
        cblas_dsyrk(CblasRowMajor, CblasUpper, outIn ? CblasTrans : CblasNoTrans, Int32(d), Int32(vocab),
                    1, w, Int32(outIn ? d : vocab), 0, &m, Int32(d))
        // dsyev reads column-major: the row-major upper triangle is its lower one ("L"); it
        // returns eigenvector j as column j, i.e. row j of the row-major array.
        var lambda = [Double](repeating: 0, count: d)
        var lwork = Int32(-1), query = 0.0
        _ = sftblas_dsyev_vectors(Int32(d), &m, &lambda, &query, lwork)
        lwork = Int32(max(Double(3 * d), query))
        var work = [Double](repeating: 0, count: Int(lwork))
        let info = sftblas_dsyev_vectors(Int32(d), &m, &lambda, &work, lwork)
        precondition(info == 0, "HeadGramFactor: dsyev failed (info \(info))")
        // Eigenvalues within rounding of zero (d·ε·λ_max; dsyev's accuracy) are a rank-deficient
        // head's null space, not singular values: each would add only ~1e-7·σ_max.
        let floor = (lambda.max() ?? 0) * Double(d) * Double.ulpOfOne
        let kept = lambda.indices.filter { lambda[$0] > floor }
        rank = kept.count
        var f = [Double](repeating: 0, count: d * max(rank, 1))
        for (c, j) in kept.enumerated() {
            let s = lambda[j].squareRoot()
            for k in 0..<d { f[k * rank + c] = m[j * d + k] * s }
        }
        factor = f
    }

    /// ‖H·op(W)‖_* for `rows` hidden states [rows, width].
    public func nuclearNorm(hidden: UnsafePointer<Float>, rows n: Int) -> Double {
        guard n > 0 && rank > 0 else { return 0 }
        let h = (0..<(n * width)).map { Double(hidden[$0]) }
        var a = [Double](repeating: 0, count: n * rank)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(rank), Int32(width), 1, h, Int32(width),
                    factor, Int32(rank), 0, &a, Int32(rank))
        return NuclearNorm.of(a, rows: n, cols: rank)
    }
}
