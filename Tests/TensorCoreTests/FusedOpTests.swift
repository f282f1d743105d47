import XCTest
@testable import TensorCore

/// Gradient checks for the fused ops of the training step, and the arena / thread pool
/// machinery they run on.
final class FusedOpTests: XCTestCase {
    var rng = RNG(seed: 11)

    func testLinearWithResidual() {
        let x = randomTensor([6, 4], &rng), w = randomTensor([4, 5], &rng), b = randomTensor([5], &rng)
        let r = randomTensor([6, 5], &rng)
        checkGradients([x, w, b, r]) { $0.linear(x, weight: w, bias: b, layout: .inOut, residual: r) }
    }

    func testTokenPlusPositionEmbedding() {
        let table = randomTensor([7, 3], &rng), pos = randomTensor([4, 3], &rng)
        checkGradients([table, pos]) { $0.embedding([1, 5, 1, 0, 6], table: table, plus: [0, 1, 2, 0, 3], table: pos) }
    }

    /// Longer than the attention block (64) so the causal block skipping is exercised.
    func testAttentionAcrossCausalBlocks() {
        let qkv = randomTensor([2 * 70, 3 * 8], &rng, std: 0.5)
        checkGradients([qkv], eps: 1e-2) { $0.causalSelfAttention(qkv: qkv, batch: 2, seqLen: 70, heads: 2) }
    }

    /// The fused head + loss must give the loss and gradients of linear + crossEntropy,
    /// with chunks that do not divide the row count, on one thread and on three.
    func testFusedHeadMatchesUnfused() {
        for threads in [1, 3] {
            Parallel.threads = threads
            defer { Parallel.threads = 1 }
            let h = randomTensor([11, 6], &rng), w = randomTensor([9, 6], &rng)
            let targets: [Int32] = [0, 3, 8, 1, 1, 2, 7, 5, 4, 6, 0]
            let mask: [Float] = [1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1]
            let tape = Tape()
            let loss = tape.crossEntropy(tape.linear(h, weight: w, layout: .outIn), targets: targets, mask: mask, normalizer: 9)
            tape.backward(from: loss)
            let (gh, gw) = (h.gradValues, w.gradValues)
            h.grad.update(repeating: 0, count: h.count); w.grad.update(repeating: 0, count: w.count)

            let fused = Tape()
            var total = [Double](repeating: 0, count: threads)
            total.withUnsafeMutableBufferPointer { total in
                fused.fusedHead(h, weight: w, layout: .outIn, rowsPerChunk: 4) { t, rows, logits, dlogits in
                    total[t] += SoftmaxKernels.crossEntropy(logits: logits, targets: Array(targets[rows]), mask: Array(mask[rows]),
                                                            rows: rows.count, vocab: 9, dlogits: dlogits, scale: 1.0 / 9)
                }
            }
            fused.backward()
            XCTAssertEqual(Float(total.reduce(0, +) / 9), loss.item, accuracy: 1e-5)
            for (a, b) in zip(h.gradValues, gh) { XCTAssertEqual(a, b, accuracy: 1e-5) }
            for (a, b) in zip(w.gradValues, gw) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        }
    }

    /// With an arena, a second pass of the same shape reuses every buffer (no growth), and
    /// gives the same gradients as a pass without one.
    func testArenaPassesMatchPlainTape() {
        let w = randomTensor([5, 4], &rng), b = randomTensor([4], &rng)
        let x = randomTensor([3, 5], &rng, requiresGrad: false)
        func pass(_ tape: Tape) -> [Float] {
            w.grad.update(repeating: 0, count: w.count)
            let y = tape.gelu(tape.layerNorm(tape.linear(x, weight: w, bias: b, layout: .inOut), weight: b, bias: b))
            let seed = [Float](repeating: 0.5, count: y.count)
            seed.withUnsafeBufferPointer { tape.backward(from: y, seed: $0.baseAddress!) }
            return w.gradValues
        }
        let plain = pass(Tape())
        let arena = Arena()
        arena.reset()
        XCTAssertEqual(pass(Tape(arena: arena)), plain)
        arena.reset()
        let held = arena.bytes
        XCTAssertEqual(pass(Tape(arena: arena)), plain)
        arena.reset()
        XCTAssertEqual(arena.bytes, held, "the second pass of a shape must not grow the arena")
    }

    func testThreadPoolCoversEveryIndexOnce() {
        Parallel.threads = 3
        defer { Parallel.threads = 1 }
        var hits = [Int](repeating: 0, count: 1000)
        hits.withUnsafeMutableBufferPointer { h in
            Parallel.forRanges(1000, minChunk: 10, align: 8) { r in for i in r { h[i] += 1 } }
            Parallel.forEach(1000) { i in h[i] += 1 }
        }
        XCTAssertEqual(hits, [Int](repeating: 2, count: 1000))
        // A split GEMM equals the unsplit one.
        let a = randomTensor([300, 200], &rng, requiresGrad: false), b = randomTensor([200, 150], &rng, requiresGrad: false)
        let c1 = Tensor(zeros: [300, 150]), c2 = Tensor(zeros: [300, 150])
        BLAS.gemm(transA: false, transB: false, m: 300, n: 150, k: 200, a: a.data, lda: 200, b: b.data, ldb: 150, beta: 0, c: c1.data, ldc: 150)
        Parallel.threads = 1
        BLAS.gemm(transA: false, transB: false, m: 300, n: 150, k: 200, a: a.data, lda: 200, b: b.data, ldb: 150, beta: 0, c: c2.data, ldc: 150)
        for i in 0..<c1.count { XCTAssertEqual(c1.data[i], c2.data[i], accuracy: 1e-4) }
    }

    func testVectorExp() {
        var x = F8(repeating: 0)
        for j in 0..<8 { x[j] = Float(j) * 3.1 - 12 }
        let e = Vec.exp(x)
        for j in 0..<8 { XCTAssertEqual(e[j], expf(x[j]), accuracy: expf(x[j]) * 1e-6) }
    }
}
