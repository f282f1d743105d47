import XCTest
@testable import TensorCore

/// Attention's S = Q·Kᵀ and dP = dout·Vᵀ read transposed copies of each kv head's keys and
/// values (`AttentionTransposedOperand`), made once per (batch row, kv head) in per-thread
/// scratch. Checked against a float64 attention at a length past two causal blocks (the copy
/// must cover every key) with grouped-query heads (one copy serves the group), and at 1, 2
/// and 3 threads (each thread its own copy: same bits); with one row and one kv head the
/// forward's work items at 2 and 3 threads are single heads, which read K in place (NT): the
/// same bits as the copy's NN products at 1 thread.
final class AttentionTransposedOperandTests: XCTestCase {
    var batch = 2, seqLen = 130, heads = 4, kvHeads = 2, hd = 64

    /// out, dqkv for random q|k|v and dout at `threads` threads.
    func run(threads: Int, qkv values: [Float], dout: [Float]) -> (out: [Float], grad: [Float]) {
        Parallel.threads = threads
        defer { Parallel.threads = 1 }
        let qkv = Tensor(zeros: [batch * seqLen, (heads + 2 * kvHeads) * hd], requiresGrad: true)
        for i in 0..<qkv.count { qkv.data[i] = values[i] }
        qkv.grad.update(repeating: 0, count: qkv.count)
        let tape = Tape()
        let out = tape.causalSelfAttention(qkv: qkv, batch: batch, seqLen: seqLen, heads: heads,
                                           kvHeads: kvHeads, headDim: hd)
        dout.withUnsafeBufferPointer { tape.backward(from: out, seed: $0.baseAddress!) }
        return (out.values, qkv.gradValues)
    }

    /// The same attention in float64, one query at a time.
    func reference(qkv x: [Float], dout: [Float]) -> (out: [Double], grad: [Double]) {
        let ld = (heads + 2 * kvHeads) * hd, T = seqLen, group = heads / kvHeads
        let scale = 1 / Double(hd).squareRoot()
        var out = [Double](repeating: 0, count: batch * T * heads * hd)
        var grad = [Double](repeating: 0, count: x.count)
        func at(_ b: Int, _ i: Int, _ col: Int) -> Int { (b * T + i) * ld + col }
        for b in 0..<batch {
            for h in 0..<heads {
                let qc = h * hd, kc = heads * hd + h / group * hd, vc = kc + kvHeads * hd
                for i in 0..<T {
                    var s = (0...i).map { j in scale * (0..<hd).reduce(0.0) { $0 + Double(x[at(b, i, qc + $1)]) * Double(x[at(b, j, kc + $1)]) } }
                    let m = s.max()!
                    s = s.map { exp($0 - m) }
                    let z = s.reduce(0, +)
                    let p = s.map { $0 / z }
                    let o = (b * T + i) * heads * hd + h * hd
                    for d in 0..<hd { out[o + d] = (0...i).reduce(0.0) { $0 + p[$1] * Double(x[at(b, $1, vc + d)]) } }
                    // dP[j] = dout_i · V_j; dS = P ⊙ (dP − Σ P·dP)
                    let dp = (0...i).map { j in (0..<hd).reduce(0.0) { $0 + Double(dout[o + $1]) * Double(x[at(b, j, vc + $1)]) } }
                    let dot = zip(p, dp).reduce(0.0) { $0 + $1.0 * $1.1 }
                    for j in 0...i {
                        let ds = p[j] * (dp[j] - dot) * scale
                        for d in 0..<hd {
                            grad[at(b, j, vc + d)] += p[j] * Double(dout[o + d])
                            grad[at(b, i, qc + d)] += ds * Double(x[at(b, j, kc + d)])
                            grad[at(b, j, kc + d)] += ds * Double(x[at(b, i, qc + d)])
                        }
                    }
                }
            }
        }
        return (out, grad)
    }

    func testMatchesFloat64AttentionAtEveryThreadCount() { check() }

    func testOneRowOneKVHeadSplitsHeadsOverThreads() {
        batch = 1; kvHeads = 1
        check()
    }

    func check(file: StaticString = #filePath, line: UInt = #line) {
        var g = SplitMix64(seed: 5)
        func values(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Double(g.next() % 2001) / 1000 - 1) } }
        let qkv = values(batch * seqLen * (heads + 2 * kvHeads) * hd)
        let dout = values(batch * seqLen * heads * hd)
        let ref = reference(qkv: qkv, dout: dout)
        let one = run(threads: 1, qkv: qkv, dout: dout)
        func worst(_ a: [Float], _ b: [Double]) -> Double {
            let scale = max(b.map(abs).max() ?? 0, 1e-30)
            return zip(a, b).map { abs(Double($0) - $1) }.max()! / scale
        }
        XCTAssertLessThan(worst(one.out, ref.out), 1e-5, "attention output", file: file, line: line)
        XCTAssertLessThan(worst(one.grad, ref.grad), 1e-5, "gradient of q|k|v", file: file, line: line)
        for threads in [2, 3] {
            let many = run(threads: threads, qkv: qkv, dout: dout)
            XCTAssertEqual(one.out.map(\.bitPattern), many.out.map(\.bitPattern), "output at \(threads) threads",
                           file: file, line: line)
            XCTAssertEqual(one.grad.map(\.bitPattern), many.grad.map(\.bitPattern), "gradient at \(threads) threads",
                           file: file, line: line)
        }
    }
}
