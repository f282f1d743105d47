/// Both output-side gradients of a LoRA adapter (arXiv 2106.09685, §4.1) in one pass over its
/// output gradient, for ranks that are multiples of 8:
///
///     du[N, r] = s · dout[N, OC] · B[OC, r]        dB[OC, r] += s · doutᵀ · u[N, r]
///
/// As two GEMMs each is a skinny product (8 of its three sizes are the rank) whose cost is
/// OpenBLAS packing the [N, OC] gradient, twice. Here B's row o and dB's row o are one 8-wide
/// vector each: per output column o, four rows of dout are broadcast into four du accumulators
/// and into dB's row, so dout is read once, B and dB stay in cache, and nothing is packed.
/// Rows are split over threads; each thread sums its rows' dB into its own buffer, and the
/// buffers are added in thread order (the same sums for the same thread count).
public enum LoRAOutputGradients {
    /// Whether `rank` takes this kernel (else the two GEMMs).
    public static func supports(rank: Int) -> Bool { rank > 0 && rank % 8 == 0 }

    /// du rows are `lddu` apart, dout's `ldo`, u's `ldu`; B and dB are [OC, r] row-major.
    public static func run(du: UnsafeMutablePointer<Float>, lddu: Int, db: UnsafeMutablePointer<Float>?,
                           dout: UnsafePointer<Float>, ldo: Int, u: UnsafePointer<Float>, ldu: Int,
                           b: UnsafePointer<Float>, scaling s: Float, n: Int, outFeatures oc: Int, rank r: Int) {
        precondition(supports(rank: r), "LoRAOutputGradients: rank \(r) is not a multiple of 8")
        let parts = Parallel.active ? 1 : max(1, min(Parallel.threads, n / 64))
        let partial = db == nil || parts == 1 ? nil : CheckedAllocation.floats(parts * oc * r, for: "LoRA dB partial sums")
        defer { if let partial { CheckedAllocation.free(partial) } }
        let body = { (part: Int) in
            let rows = (n * part / parts)..<(n * (part + 1) / parts)
            let target = partial.map { p -> UnsafeMutablePointer<Float> in
                let t = p + part * oc * r
                t.update(repeating: 0, count: oc * r)
                return t
            } ?? db
            for k in Swift.stride(from: 0, to: r, by: 8) {
                rowBlock(du: du + k, lddu: lddu, db: target.map { $0 + k }, dout: dout, ldo: ldo, u: u + k, ldu: ldu,
                         b: b + k, ldb: r, s: s, rows: rows, oc: oc)
            }
        }
        if parts == 1 { body(0) } else { Parallel.forEach(parts, body) }
        if let partial, let db {
            for part in 0..<parts { Vec.add(db, partial + part * oc * r, count: oc * r) }
        }
    }

    /// One 8-wide column block of du and dB over `rows`, four rows at a time. B and dB are
    /// walked by pointer, and whether dB is wanted is decided once per four rows, not per
    /// output column: the loop the compiler made of the per-column `if let db` and
    /// `o * ldb` (an overflow-checked multiply, accumulators copied each iteration) ran
    /// 10–25 % slower in a standalone loop at OC = 1536 (same products, same order, same bits).
    @inline(__always)
    static func rowBlock(du: UnsafeMutablePointer<Float>, lddu: Int, db: UnsafeMutablePointer<Float>?,
                         dout: UnsafePointer<Float>, ldo: Int, u: UnsafePointer<Float>, ldu: Int,
                         b: UnsafePointer<Float>, ldb: Int, s: Float, rows: Range<Int>, oc: Int) {
        let sv = F8(repeating: s)
        var i = rows.lowerBound
        while i + 4 <= rows.upperBound {
            let d0 = dout + i * ldo, d1 = d0 + ldo, d2 = d1 + ldo, d3 = d2 + ldo
            var a0 = F8(repeating: 0), a1 = a0, a2 = a0, a3 = a0
            var bp = b
            if let db {
                let u0 = sv * Vec.load(u + i * ldu), u1 = sv * Vec.load(u + (i + 1) * ldu)
                let u2 = sv * Vec.load(u + (i + 2) * ldu), u3 = sv * Vec.load(u + (i + 3) * ldu)
                var dbp = db
                for o in 0..<oc {
                    let bv = Vec.load(bp)
                    let g0 = F8(repeating: d0[o]), g1 = F8(repeating: d1[o]), g2 = F8(repeating: d2[o]), g3 = F8(repeating: d3[o])
                    a0 = a0.addingProduct(g0, bv); a1 = a1.addingProduct(g1, bv)
                    a2 = a2.addingProduct(g2, bv); a3 = a3.addingProduct(g3, bv)
                    var v = Vec.load(dbp)
                    v = v.addingProduct(g0, u0); v = v.addingProduct(g1, u1)
                    v = v.addingProduct(g2, u2); v = v.addingProduct(g3, u3)
                    Vec.store(v, dbp)
                    bp += ldb; dbp += ldb
                }
            } else {
                for o in 0..<oc {
                    let bv = Vec.load(bp)
                    a0 = a0.addingProduct(F8(repeating: d0[o]), bv); a1 = a1.addingProduct(F8(repeating: d1[o]), bv)
                    a2 = a2.addingProduct(F8(repeating: d2[o]), bv); a3 = a3.addingProduct(F8(repeating: d3[o]), bv)
                    bp += ldb
                }
            }
            Vec.store(sv * a0, du + i * lddu); Vec.store(sv * a1, du + (i + 1) * lddu)
            Vec.store(sv * a2, du + (i + 2) * lddu); Vec.store(sv * a3, du + (i + 3) * lddu)
            i += 4
        }
        while i < rows.upperBound {
            let d0 = dout + i * ldo, u0 = sv * Vec.load(u + i * ldu)
            var a0 = F8(repeating: 0)
            for o in 0..<oc {
                let bv = Vec.load(b + o * ldb), g0 = F8(repeating: d0[o])
                a0 = a0.addingProduct(g0, bv)
                if let db { Vec.store(Vec.load(db + o * ldb).addingProduct(g0, u0), db + o * ldb) }
            }
            Vec.store(sv * a0, du + i * lddu)
            i += 1
        }
    }
}
