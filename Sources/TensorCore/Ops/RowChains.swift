/// Per-row sums with the bits of the plain loop `var s: Float = 0; for j in 0..<c { s += term(r, j) }`
/// (left to right, no fused multiply-add), four rows' sums carried at once: one row's adds
/// wait on each other's latency, four independent chains keep the adder busy. What RMSNorm's
/// Σx² and its backward's Σ w·d·n need, whose order the default recipe's losses depend on.
enum RowChains {
    /// Calls `finish(r, Σ_j term(r, j))` for every r in `rows`.
    @inline(__always)
    static func sums(rows: Range<Int>, columns c: Int, term: (Int, Int) -> Float, finish: (Int, Float) -> Void) {
        var r = rows.lowerBound
        while r + 4 <= rows.upperBound {
            var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
            for j in 0..<c {
                s0 += term(r, j); s1 += term(r + 1, j); s2 += term(r + 2, j); s3 += term(r + 3, j)
            }
            finish(r, s0); finish(r + 1, s1); finish(r + 2, s2); finish(r + 3, s3)
            r += 4
        }
        while r < rows.upperBound {
            var s: Float = 0
            for j in 0..<c { s += term(r, j) }
            finish(r, s)
            r += 1
        }
    }
}
