import Foundation
import XCTest
@testable import TensorCore

/// Finite-difference and reference-value tests of the Llama-family ops: RMSNorm, rotary
/// embeddings (HF rotate_half), SwiGLU.
final class LlamaOpGradientTests: XCTestCase {
    var rng = RNG(seed: 11)

    func testRMSNormGradient() {
        let x = randomTensor([4, 8], &rng), w = randomTensor([8], &rng)
        checkGradients([x, w], eps: 1e-2) { $0.rmsNorm(x, weight: w, eps: 1e-6) }
    }

    func testRMSNormValue() {
        // x = [3, 4]: mean(x²) = 12.5, rstd = 1/√(12.5 + eps).
        let x = Tensor(shape: [1, 2], values: [3, 4]), w = Tensor(shape: [2], values: [2, -1])
        let y = Tape(recording: false).rmsNorm(x, weight: w, eps: 0.5).values
        let r = 1 / Float(13).squareRoot()
        XCTAssertEqual(y[0], 6 * r, accuracy: 1e-6)
        XCTAssertEqual(y[1], -4 * r, accuracy: 1e-6)
    }

    /// Qwen3's QK-Norm in place on column blocks of a packed q|k|v (2 q heads, 1 k head, 1 v
    /// head of 4), behind the projection that makes it: finite differences for the input, the
    /// projection and both norm weights; and with only the norm weights trainable.
    func testHeadRMSNormInPlaceGradient() {
        let x = randomTensor([5, 6], &rng), w = randomTensor([16, 6], &rng, std: 0.5)
        let qn = randomTensor([4], &rng), kn = randomTensor([4], &rng)
        func build(_ t: Tape) -> Tensor {
            let qkv = t.linear(x, weight: w, layout: .outIn)
            t.headRMSNormInPlace(qkv, column: 0, heads: 2, headDim: 4, weight: qn, eps: 1e-6)
            t.headRMSNormInPlace(qkv, column: 8, heads: 1, headDim: 4, weight: kn, eps: 1e-6)
            return qkv
        }
        checkGradients([x, w, qn, kn], eps: 1e-2, build)
        x.requiresGrad = false; w.requiresGrad = false
        checkGradients([qn, kn], eps: 1e-2, build)
    }

    /// Each head's row equals `rmsNorm` of that row alone; the columns outside the block are kept.
    func testHeadRMSNormInPlaceMatchesRMSNormPerHead() {
        let (n, heads, hd, ld, column) = (3, 2, 4, 12, 2)
        let x = randomTensor([n, ld], &rng, requiresGrad: false), w = randomTensor([hd], &rng, requiresGrad: false)
        let before = x.values
        Tape(recording: false).headRMSNormInPlace(x, column: column, heads: heads, headDim: hd, weight: w, eps: 1e-5)
        let after = x.values
        for t in 0..<n {
            for h in 0..<heads {
                let start = t * ld + column + h * hd
                let row = Tensor(shape: [1, hd], values: Array(before[start..<(start + hd)]))
                let expected = Tape(recording: false).rmsNorm(row, weight: w, eps: 1e-5).values
                for j in 0..<hd { XCTAssertEqual(after[start + j], expected[j], accuracy: 1e-6) }
            }
            for j in 0..<ld where j < column || j >= column + heads * hd { XCTAssertEqual(after[t * ld + j], before[t * ld + j]) }
        }
    }

    func testRotaryGradient() {
        let x = randomTensor([5, 2 * 6], &rng)
        checkGradients([x], eps: 1e-2) {
            $0.rotary(x, positions: [0, 3, 1, 0, 7], heads: 2, headDim: 6, theta: 10_000)
        }
    }

    /// HF: q·cos(emb) + rotate_half(q)·sin(emb), emb = cat(freqs, freqs), computed naively.
    func testRotaryMatchesRotateHalfFormula() {
        let d = 8, heads = 2, theta: Float = 500
        let x = randomTensor([3, heads * d], &rng, requiresGrad: false)
        let positions: [Int32] = [0, 5, 2]
        let y = Tape(recording: false).rotary(x, positions: positions, heads: heads, headDim: d, theta: theta).values
        for (n, p) in positions.enumerated() {
            for h in 0..<heads {
                let q = (0..<d).map { Double(x.data[n * heads * d + h * d + $0]) }
                let rotated = (0..<d).map { $0 < d / 2 ? -q[$0 + d / 2] : q[$0 - d / 2] }  // rotate_half
                for j in 0..<d {
                    let freq = 1 / pow(Double(theta), Double(2 * (j % (d / 2))) / Double(d))
                    let a = Double(p) * freq
                    let expected = q[j] * cos(a) + rotated[j] * sin(a)
                    XCTAssertEqual(Double(y[n * heads * d + h * d + j]), expected, accuracy: 1e-5)
                }
            }
        }
    }

    /// Attention scores depend only on relative position: q_m·k_n after rotary equals the same
    /// pair shifted by a constant.
    func testRotaryIsRelative() {
        let q = randomTensor([1, 8], &rng, requiresGrad: false), k = randomTensor([1, 8], &rng, requiresGrad: false)
        func score(_ m: Int32, _ n: Int32) -> Float {
            let t = Tape(recording: false)
            let a = t.rotary(q, positions: [m], heads: 1, headDim: 8, theta: 10_000).values
            let b = t.rotary(k, positions: [n], heads: 1, headDim: 8, theta: 10_000).values
            return zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
        }
        XCTAssertEqual(score(7, 3), score(4, 0), accuracy: 1e-4)
        XCTAssertNotEqual(score(7, 3), score(3, 7), accuracy: 1e-3)
    }

    func testSwiGLUGradient() {
        let g = randomTensor([3, 7], &rng, std: 2), u = randomTensor([3, 7], &rng)
        checkGradients([g, u], eps: 1e-3) { $0.swiglu(gate: g, up: u) }
    }

    func testSwiGLUValue() {
        let g = Tensor(shape: [2], values: [0, 2]), u = Tensor(shape: [2], values: [5, 3])
        let y = Tape(recording: false).swiglu(gate: g, up: u).values
        XCTAssertEqual(y[0], 0)
        XCTAssertEqual(y[1], 2 / (1 + expf(-2)) * 3, accuracy: 1e-6)
    }
}
