import COpenBLAS

/// ‖X‖_* = Σ singular values of a row-major [rows, cols] float matrix (UDS's utility score,
/// arXiv 2510.16882 §3), as the square roots of the eigenvalues of the smaller Gram matrix
/// (X·Xᵀ or Xᵀ·X), formed and decomposed in double precision (`cblas_dsyrk`, LAPACK `dsyev`).
/// Double matters: a float Gram matrix carries an error of ~1e-7·σ_max², which becomes
/// ~3e-4·σ_max in each small singular value's square root.
public enum NuclearNorm {
    public static func of(_ x: UnsafePointer<Float>, rows: Int, cols: Int) -> Double {
        guard rows > 0 && cols > 0 else { return 0 }
        return of((0..<(rows * cols)).map { Double(x[$0]) }, rows: rows, cols: cols)
    }

    /// The same for a row-major double matrix (`HeadGramFactor`'s H·F). NaN when the matrix
    /// holds a non-finite value (a model whose weights diverged) or LAPACK cannot decompose
    /// it: the caller reports a NaN score (`select` refuses the model), where dsyev's failure
    /// on NaN input used to end the process with a trap.
    public static func of(_ d: [Double], rows: Int, cols: Int) -> Double {
        guard rows > 0 && cols > 0 else { return 0 }
        guard d.allSatisfy(\.isFinite) else { return .nan }
        let n = min(rows, cols)
        var gram = [Double](repeating: 0, count: n * n)
        // Upper triangle of X·Xᵀ (rows ≤ cols) or Xᵀ·X.
        cblas_dsyrk(CblasRowMajor, CblasUpper, rows <= cols ? CblasNoTrans : CblasTrans, Int32(n),
                    Int32(rows <= cols ? cols : rows), 1, d, Int32(cols), 0, &gram, Int32(n))
        // dsyev reads column-major: the row-major upper triangle is its lower one ("L").
        var w = [Double](repeating: 0, count: n)
        let lwork = max(1, 3 * n)
        var work = [Double](repeating: 0, count: lwork)
        let info = sftblas_dsyev_values(Int32(n), &gram, &w, &work, Int32(lwork))
        guard info == 0, w.allSatisfy(\.isFinite) else { return .nan }
        return w.reduce(0) { $0 + ($1 > 0 ? $1.squareRoot() : 0) }
    }
}
