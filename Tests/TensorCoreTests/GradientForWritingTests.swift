import XCTest
@testable import TensorCore

/// `Tensor.gradForWriting`: the first backward kernel to reach an arena activation's
/// gradient may write it whole (the buffer comes from the pool uncleared); every later one
/// adds. SwiGLU on a packed gate|up is such a writer. The gradients must be bit for bit those
/// of the plain tape (zeroed buffers, every kernel adding), on fresh and on reused (dirty)
/// pool buffers, with one consumer of gate|up or two. GELU's backward writes the same way.
final class GradientForWritingTests: XCTestCase {
    func testSwiGLUWriteModeGivesTheAddedBitsWithoutReadingTheBuffer() {
        var rng = RNG(seed: 17)
        for count in [1, 7, 8, 9, 23, 100] {
            let g = (0..<count).map { _ in rng.normal() * 4 }, u = (0..<count).map { _ in rng.normal() }
            let dout = (0..<count).map { _ in rng.normal() }
            var addedG = [Float](repeating: 0, count: count), addedU = addedG
            SwiGLUKernels.backward(dgate: &addedG, dup: &addedU, dout: dout, gate: g, up: u, count: count)
            var dg = [Float](repeating: .nan, count: count), du = [Float](repeating: .nan, count: count)
            SwiGLUKernels.backward(dgate: &dg, dup: &du, dout: dout, gate: g, up: u, count: count, accumulate: false)
            XCTAssertEqual(dg, addedG, "dgate, count \(count)")
            XCTAssertEqual(du, addedU, "dup, count \(count)")
        }
    }

    func testGELUWriteModeGivesTheAddedBitsWithoutReadingTheBuffer() {
        var rng = RNG(seed: 19)
        for count in [1, 7, 8, 9, 23, 100] {
            let x = (0..<count).map { _ in rng.normal() * 3 }, dout = (0..<count).map { _ in rng.normal() }
            var added = [Float](repeating: 0, count: count), written = [Float](repeating: .nan, count: count)
            GELUKernels.backward(dx: &added, x: x, dout: dout, count: count)
            GELUKernels.backward(dx: &written, x: x, dout: dout, count: count, accumulate: false)
            XCTAssertEqual(written, added, "count \(count)")
        }
    }

    /// x·Wᵀ → `op` (`consumers` times on the same product) → summed against a fixed seed;
    /// returns dW and dx.
    func gradients(arena: Arena?, consumers: Int, x: Tensor, w: Tensor, seed: [Float],
                   op: (Tape, Tensor) -> Tensor) -> [Float] {
        arena?.reset()
        let tape = Tape(arena: arena)
        w.grad.update(repeating: 0, count: w.count)
        x.grad.update(repeating: 0, count: x.count)
        let product = tape.linear(x, weight: w, layout: .outIn)
        let outs = (0..<consumers).map { _ in op(tape, product) }
        let total = consumers == 1 ? outs[0] : tape.add(outs[0], outs[1])
        seed.withUnsafeBufferPointer { tape.backward(from: total, seed: $0.baseAddress!) }
        return w.gradValues + x.gradValues
    }

    /// `op` on an arena activation with one and two consumers, over three passes of one arena
    /// (passes 1 and 2 get the pool's buffers back, holding pass 0's values), against the
    /// plain tape (no arena: zeroed buffers, every kernel adding).
    func checkAgainstThePlainTape(_ name: String, outputColumns: (Int) -> Int, op: @escaping (Tape, Tensor) -> Tensor) {
        var rng = RNG(seed: 29)
        let (n, c, i) = (6, 5, 11)   // 11: a vector and a tail per row
        let x = randomTensor([n, c], &rng), w = randomTensor([2 * i, c], &rng)
        let seed = (0..<n * outputColumns(2 * i)).map { _ in rng.normal() }
        for consumers in [1, 2] {
            let plain = gradients(arena: nil, consumers: consumers, x: x, w: w, seed: seed, op: op)
            let arena = Arena()
            for pass in 0..<3 {
                let got = gradients(arena: arena, consumers: consumers, x: x, w: w, seed: seed, op: op)
                let differing = zip(got, plain).filter { $0 != $1 }.count
                XCTAssertEqual(differing, 0, "\(name): \(consumers) consumer(s), arena pass \(pass): entries of dW|dx differ")
            }
        }
    }

    func testPackedSwiGLUGradientsEqualThePlainTapesOnFreshAndReusedBuffers() {
        checkAgainstThePlainTape("swiglu(gateUp:)", outputColumns: { $0 / 2 }) { $0.swiglu(gateUp: $1) }
    }

    func testGELUGradientsEqualThePlainTapesOnFreshAndReusedBuffers() {
        checkAgainstThePlainTape("gelu", outputColumns: { $0 }) { $0.gelu($1) }
    }
}
