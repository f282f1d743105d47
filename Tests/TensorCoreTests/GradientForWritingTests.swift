import XCTest
@testable import TensorCore

/// `Tensor.gradForWriting`: the first backward kernel to reach an arena activation's
/// gradient may write it whole (the buffer comes from the pool uncleared); every later one
/// adds. SwiGLU on a packed gate|up is such a writer. The gradients must be bit for bit those
/// of the plain tape (zeroed buffers, every kernel adding), on fresh and on reused (dirty)
/// pool buffers, with one consumer of gate|up or two.
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

    /// x·Wᵀ → gate|up → SwiGLU (`consumers` times on the same gate|up) → summed against a
    /// fixed seed; returns dW and dx.
    func gradients(arena: Arena?, consumers: Int, x: Tensor, w: Tensor, seed: [Float]) -> [Float] {
        arena?.reset()
        let tape = Tape(arena: arena)
        w.grad.update(repeating: 0, count: w.count)
        x.grad.update(repeating: 0, count: x.count)
        let gateUp = tape.linear(x, weight: w, layout: .outIn)
        let outs = (0..<consumers).map { _ in tape.swiglu(gateUp: gateUp) }
        let total = consumers == 1 ? outs[0] : tape.add(outs[0], outs[1])
        seed.withUnsafeBufferPointer { tape.backward(from: total, seed: $0.baseAddress!) }
        return w.gradValues + x.gradValues
    }

    func testPackedSwiGLUGradientsEqualThePlainTapesOnFreshAndReusedBuffers() {
        var rng = RNG(seed: 29)
        let (n, c, i) = (6, 5, 11)   // 11: a vector and a tail per row
        let x = randomTensor([n, c], &rng), w = randomTensor([2 * i, c], &rng)
        let seed = (0..<n * i).map { _ in rng.normal() }
        for consumers in [1, 2] {
            let plain = gradients(arena: nil, consumers: consumers, x: x, w: w, seed: seed)
            let arena = Arena()
            for pass in 0..<3 {   // passes 1 and 2 get the pool's buffers back, holding pass 0's values
                let got = gradients(arena: arena, consumers: consumers, x: x, w: w, seed: seed)
                let differing = zip(got, plain).filter { $0 != $1 }.count
                XCTAssertEqual(differing, 0, "\(consumers) consumer(s) of gate|up, arena pass \(pass): entries of dW|dx differ")
            }
        }
    }
}
