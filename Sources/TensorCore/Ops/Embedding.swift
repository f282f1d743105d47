/// Embedding lookup: out[N, C] = table[ids[n], :]. Backward scatters rows of dout back into
/// the table's gradient (+=, so repeated ids and tied output embeddings accumulate).
public enum EmbeddingKernels {
    public static func forward(out: UnsafeMutablePointer<Float>, ids: [Int32],
                               table: UnsafePointer<Float>, rows: Int, dim c: Int) {
        ids.withUnsafeBufferPointer { ids in
            for (n, id) in ids.enumerated() {
                let i = Int(id)
                precondition(i >= 0 && i < rows, "embedding: id \(i) outside table of \(rows) rows")
                (out + n * c).update(from: table + i * c, count: c)
            }
        }
    }

    /// Column blocks per thread: every thread visits all ids but owns its columns, so
    /// repeated ids never race.
    public static func backward(dtable: UnsafeMutablePointer<Float>, ids: [Int32],
                                dout: UnsafePointer<Float>, dim c: Int) {
        ids.withUnsafeBufferPointer { ids in
            Parallel.forRanges(c, minChunk: ids.count >= 512 ? 64 : c, align: 8) { cols in
                for (n, id) in ids.enumerated() {
                    Vec.add(dtable + Int(id) * c + cols.lowerBound, dout + n * c + cols.lowerBound, count: cols.count)
                }
            }
        }
    }
}

extension Tape {
    /// ids: N token (or position) ids → [N, C].
    public func embedding(_ ids: [Int32], table: Tensor) -> Tensor {
        precondition(table.shape.count == 2, "embedding: table must be 2-D")
        let c = table.shape[1]
        let out = output([ids.count, c])
        EmbeddingKernels.forward(out: out.data, ids: ids, table: table.data, rows: table.shape[0], dim: c)
        out.requiresGrad = record([table], output: out) {
            EmbeddingKernels.backward(dtable: table.grad, ids: ids, dout: out.grad, dim: c)
        }
        return out
    }
}

extension Tape {
    /// table[ids] + positionTable[positions] in one op (GPT-2's token + position embedding),
    /// so neither lookup is stored on its own.
    public func embedding(_ ids: [Int32], table: Tensor, plus positions: [Int32], table positionTable: Tensor) -> Tensor {
        precondition(table.shape.count == 2 && positionTable.shape.count == 2 && table.shape[1] == positionTable.shape[1],
                     "embedding: tables \(table.shape) and \(positionTable.shape)")
        precondition(ids.count == positions.count, "embedding: \(ids.count) ids, \(positions.count) positions")
        let c = table.shape[1]
        let out = output([ids.count, c])
        EmbeddingKernels.forward(out: out.data, ids: ids, table: table.data, rows: table.shape[0], dim: c)
        positions.withUnsafeBufferPointer { pos in
            for (n, p) in pos.enumerated() {
                precondition(p >= 0 && Int(p) < positionTable.shape[0], "embedding: position \(p) outside table of \(positionTable.shape[0]) rows")
                Vec.add(out.data + n * c, positionTable.data + Int(p) * c, count: c)
            }
        }
        out.requiresGrad = record([table, positionTable], output: out) {
            if table.requiresGrad { EmbeddingKernels.backward(dtable: table.grad, ids: ids, dout: out.grad, dim: c) }
            if positionTable.requiresGrad {
                EmbeddingKernels.backward(dtable: positionTable.grad, ids: positions, dout: out.grad, dim: c)
            }
        }
        return out
    }
}
