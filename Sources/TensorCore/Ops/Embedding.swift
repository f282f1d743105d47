/// Embedding lookup: out[N, C] = table[ids[n], :]. Backward scatters rows of dout back into
/// the table's gradient (+=, so repeated ids and tied output embeddings accumulate).
public enum EmbeddingKernels {
    public static func forward(out: UnsafeMutablePointer<Float>, ids: [Int32],
                               table: UnsafePointer<Float>, rows: Int, dim c: Int) {
        for (n, id) in ids.enumerated() {
            let i = Int(id)
            precondition(i >= 0 && i < rows, "embedding: id \(i) outside table of \(rows) rows")
            (out + n * c).update(from: table + i * c, count: c)
        }
    }

    public static func backward(dtable: UnsafeMutablePointer<Float>, ids: [Int32],
                                dout: UnsafePointer<Float>, dim c: Int) {
        for (n, id) in ids.enumerated() {
            let d = dtable + Int(id) * c, g = dout + n * c
            for j in 0..<c { d[j] += g[j] }
        }
    }
}

extension Tape {
    /// ids: N token (or position) ids → [N, C].
    public func embedding(_ ids: [Int32], table: Tensor) -> Tensor {
        precondition(table.shape.count == 2, "embedding: table must be 2-D")
        let c = table.shape[1]
        let out = Tensor(zeros: [ids.count, c])
        EmbeddingKernels.forward(out: out.data, ids: ids, table: table.data, rows: table.shape[0], dim: c)
        out.requiresGrad = record([table]) {
            EmbeddingKernels.backward(dtable: table.grad, ids: ids, dout: out.grad, dim: c)
        }
        return out
    }
}
