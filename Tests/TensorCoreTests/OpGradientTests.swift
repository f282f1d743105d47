import XCTest
@testable import TensorCore

final class OpGradientTests: XCTestCase {
    var rng = RNG(seed: 42)

    func testLinearOutInWithBias() {
        let x = randomTensor([5, 4], &rng), w = randomTensor([3, 4], &rng), b = randomTensor([3], &rng)
        checkGradients([x, w, b]) { $0.linear(x, weight: w, bias: b, layout: .outIn) }
    }

    func testLinearInOut() {
        let x = randomTensor([2, 3, 4], &rng), w = randomTensor([4, 6], &rng), b = randomTensor([6], &rng)
        checkGradients([x, w, b]) { $0.linear(x, weight: w, bias: b, layout: .inOut) }
    }

    func testLinearMatchesNaiveProduct() {
        let x = randomTensor([3, 4], &rng), w = randomTensor([4, 2], &rng)
        let out = Tape(recording: false).linear(x, weight: w, layout: .inOut)
        for r in 0..<3 {
            for c in 0..<2 {
                var s: Float = 0
                for k in 0..<4 { s += x.data[r * 4 + k] * w.data[k * 2 + c] }
                XCTAssertEqual(out.data[r * 2 + c], s, accuracy: 1e-5)
            }
        }
    }

    func testEmbeddingWithRepeatedIds() {
        let table = randomTensor([6, 3], &rng)
        checkGradients([table]) { $0.embedding([1, 4, 1, 0], table: table) }
    }

    func testLayerNorm() {
        let x = randomTensor([4, 8], &rng), w = randomTensor([8], &rng), b = randomTensor([8], &rng)
        checkGradients([x, w, b], eps: 1e-2) { $0.layerNorm(x, weight: w, bias: b) }
    }

    func testGELU() {
        let x = randomTensor([3, 7], &rng, std: 2)
        checkGradients([x], eps: 1e-3) { $0.gelu(x) }
    }

    func testResidualAddUsedTwice() {
        let a = randomTensor([2, 5], &rng)
        checkGradients([a]) { t in t.add(a, t.add(a, a)) }
    }

    func testAttentionFusedQKV() {
        let qkv = randomTensor([2 * 5, 3 * 8], &rng)
        checkGradients([qkv], eps: 1e-2) { $0.causalSelfAttention(qkv: qkv, batch: 2, seqLen: 5, heads: 2) }
    }

    func testAttentionGroupedQueryWithSegments() {
        let q = randomTensor([6, 8], &rng), k = randomTensor([6, 4], &rng), v = randomTensor([6, 4], &rng)
        let seg: [Int32] = [0, 0, 0, 1, 1, -1]
        checkGradients([q, k, v], eps: 1e-2) {
            $0.causalSelfAttention(q: q, k: k, v: v, batch: 1, seqLen: 6, heads: 4, kvHeads: 2, segments: seg)
        }
    }

    /// Position t's output must not change when a later position's input does (causality),
    /// nor when another packed segment's input does.
    func testAttentionIsCausalAndRespectsSegments() {
        let qkv = randomTensor([4, 12], &rng, requiresGrad: false)
        let seg: [Int32] = [0, 0, 1, 1]
        let before = Tape(recording: false).causalSelfAttention(qkv: qkv, batch: 1, seqLen: 4, heads: 1, segments: seg).values
        for j in 0..<12 { qkv.data[3 * 12 + j] += 1; qkv.data[2 * 12 + j] -= 0.5 }  // change segment 1
        let after = Tape(recording: false).causalSelfAttention(qkv: qkv, batch: 1, seqLen: 4, heads: 1, segments: seg).values
        XCTAssertEqual(Array(before[0..<8]), Array(after[0..<8]))
        XCTAssertNotEqual(Array(before[8..<16]), Array(after[8..<16]))
    }

    func testCrossEntropyWithMask() {
        let logits = randomTensor([4, 5], &rng)
        checkGradients([logits], eps: 1e-2) {
            $0.crossEntropy(logits, targets: [1, 0, 4, 2], mask: [1, 0, 1, 1], normalizer: 3)
        }
    }

    func testCrossEntropyValue() {
        // One token, V = 4, p(target) = 0.2: logits [ln(3p/(1−p)), 0, 0, 0] → loss −ln 0.2.
        let p: Float = 0.2
        let logits = Tensor(shape: [1, 4], values: [log(3 * p / (1 - p)), 0, 0, 0])
        let loss = Tape(recording: false).crossEntropy(logits, targets: [0], mask: [1], normalizer: 1)
        XCTAssertEqual(loss.data[0], 1.609438, accuracy: 1e-5)
    }
}
