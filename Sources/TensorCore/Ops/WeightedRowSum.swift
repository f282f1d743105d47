import COpenBLAS

/// out[c] = Σ_j w[j]·rows[j][c] for one output row: attention's P·V when a single new token
/// attends to its cache (decoding). A GEMM call per head per row was 5 % of batched
/// generation time; this loop is the same arithmetic — each out[c] one chain of fused
/// multiply-adds over j in order, from 0 — which is what OpenBLAS's 1-row kernel computes,
/// so logits (and hence sampled tokens) do not change.
public enum WeightedRowSum {
    /// With `prefetch`, the floats at `prefetch + j·stride` (dim of them) are prefetched beside
    /// row j: what the attention reads next (the next head's keys), rows the hardware misses.
    public static func forward(out: UnsafeMutablePointer<Float>, weights w: UnsafePointer<Float>,
                               rows: UnsafePointer<Float>, stride: Int, count L: Int, dim: Int,
                               prefetch: UnsafePointer<Float>? = nil) {
        let ahead = prefetch ?? rows
        var c = 0
        // 64 columns at a time: eight independent chains keep both FMA pipes busy.
        while c + 64 <= dim {
            var a0 = F8(repeating: 0), a1 = F8(repeating: 0), a2 = F8(repeating: 0), a3 = F8(repeating: 0)
            var a4 = F8(repeating: 0), a5 = F8(repeating: 0), a6 = F8(repeating: 0), a7 = F8(repeating: 0)
            for j in 0..<L {
                let p = ahead + j * stride + c
                sftblas_prefetch(p); sftblas_prefetch(p + 16); sftblas_prefetch(p + 32); sftblas_prefetch(p + 48)
                let wj = F8(repeating: w[j]), r = rows + j * stride + c
                a0 = a0.addingProduct(wj, Vec.load(r)); a1 = a1.addingProduct(wj, Vec.load(r + 8))
                a2 = a2.addingProduct(wj, Vec.load(r + 16)); a3 = a3.addingProduct(wj, Vec.load(r + 24))
                a4 = a4.addingProduct(wj, Vec.load(r + 32)); a5 = a5.addingProduct(wj, Vec.load(r + 40))
                a6 = a6.addingProduct(wj, Vec.load(r + 48)); a7 = a7.addingProduct(wj, Vec.load(r + 56))
            }
            Vec.store(a0, out + c); Vec.store(a1, out + c + 8); Vec.store(a2, out + c + 16); Vec.store(a3, out + c + 24)
            Vec.store(a4, out + c + 32); Vec.store(a5, out + c + 40); Vec.store(a6, out + c + 48); Vec.store(a7, out + c + 56)
            c += 64
        }
        while c + 16 <= dim {
            var a0 = F8(repeating: 0), a1 = F8(repeating: 0)
            for j in 0..<L {
                let wj = F8(repeating: w[j]), r = rows + j * stride + c
                a0 = a0.addingProduct(wj, Vec.load(r))
                a1 = a1.addingProduct(wj, Vec.load(r + 8))
            }
            Vec.store(a0, out + c); Vec.store(a1, out + c + 8)
            c += 16
        }
        while c + 8 <= dim {
            var a = F8(repeating: 0)
            for j in 0..<L { a = a.addingProduct(F8(repeating: w[j]), Vec.load(rows + j * stride + c)) }
            Vec.store(a, out + c)
            c += 8
        }
        while c < dim {
            var a: Float = 0
            for j in 0..<L { a = a.addingProduct(w[j], rows[j * stride + c]) }
            out[c] = a
            c += 1
        }
    }
}
