import XCTest
@testable import TensorCore

/// The LoRA linear op (Ops/LoRALinear.swift) and dropout (Ops/Dropout.swift): finite-difference
/// checks of every input for both base weight layouts, the frozen base weight getting no
/// gradient, and the output equal to a linear layer with the merged weight W + s·B·A.
final class LoRAOpTests: XCTestCase {
    var rng = RNG(seed: 17)

    func testLoRALinearOutInWithBiasGradients() {
        let x = randomTensor([5, 4], &rng), w = randomTensor([3, 4], &rng), b = randomTensor([3], &rng)
        let a = randomTensor([2, 4], &rng), bb = randomTensor([3, 2], &rng)
        checkGradients([x, w, b, a, bb]) {
            $0.loraLinear(x, weight: w, bias: b, layout: .outIn, adapter: LoRAAdapter(a: a, b: bb, scaling: 1.5))
        }
    }

    func testLoRALinearInOutWithResidualGradients() {
        let x = randomTensor([2, 3, 4], &rng), w = randomTensor([4, 6], &rng), b = randomTensor([6], &rng)
        let res = randomTensor([2, 3, 6], &rng), a = randomTensor([3, 4], &rng), bb = randomTensor([6, 3], &rng)
        checkGradients([x, w, b, res, a, bb]) {
            $0.loraLinear(x, weight: w, bias: b, layout: .inOut, residual: res, adapter: LoRAAdapter(a: a, b: bb, scaling: 0.75))
        }
    }

    /// A frozen base weight (requiresGrad false) gets no gradient at all; x, A and B still do.
    func testFrozenBaseWeightGetsNoGradient() {
        for layout in [WeightLayout.outIn, .inOut] {
            let x = randomTensor([6, 5], &rng), a = randomTensor([2, 5], &rng), bb = randomTensor([4, 2], &rng)
            let w = randomTensor(layout == .outIn ? [4, 5] : [5, 4], &rng, requiresGrad: false)
            checkGradients([x, a, bb]) {
                $0.loraLinear(x, weight: w, layout: layout, adapter: LoRAAdapter(a: a, b: bb, scaling: 2))
            }
            XCTAssertFalse(w.hasGrad, "\(layout): a frozen weight's gradient buffer was touched")
        }
    }

    /// Only the adapter trains and the input needs no gradient (the first block of a LoRA run:
    /// frozen embeddings and norms): the op still records, and A and B get their gradients.
    func testAdapterGradientsWhenNothingElseNeedsOne() {
        let x = randomTensor([4, 3], &rng, requiresGrad: false), w = randomTensor([3, 5], &rng, requiresGrad: false)
        let a = randomTensor([2, 3], &rng), bb = randomTensor([5, 2], &rng)
        checkGradients([a, bb]) { $0.loraLinear(x, weight: w, layout: .inOut, adapter: LoRAAdapter(a: a, b: bb, scaling: 1)) }
    }

    func testOutputEqualsLinearWithMergedWeight() {
        for layout in [WeightLayout.outIn, .inOut] {
            let (n, ic, oc, r) = (3, 4, 5, 2), s: Float = 0.5
            let x = randomTensor([n, ic], &rng), a = randomTensor([r, ic], &rng), bb = randomTensor([oc, r], &rng)
            let w = randomTensor(layout == .outIn ? [oc, ic] : [ic, oc], &rng)
            let merged = Tensor(shape: w.shape, values: w.values)
            for o in 0..<oc {
                for i in 0..<ic {
                    var d: Float = 0
                    for k in 0..<r { d += bb.data[o * r + k] * a.data[k * ic + i] }
                    merged.data[layout == .outIn ? o * ic + i : i * oc + o] += s * d
                }
            }
            let tape = Tape(recording: false)
            let got = tape.loraLinear(x, weight: w, layout: layout, adapter: LoRAAdapter(a: a, b: bb, scaling: s))
            let want = tape.linear(x, weight: merged, layout: layout)
            for j in 0..<got.count { XCTAssertEqual(got.data[j], want.data[j], accuracy: 1e-5, "\(layout) [\(j)]") }
        }
    }

    func testLoRAWithDropoutInputGradients() {
        let x = randomTensor([6, 4], &rng), w = randomTensor([3, 4], &rng, requiresGrad: false)
        let a = randomTensor([2, 4], &rng), bb = randomTensor([3, 2], &rng)
        let mask = DropoutMask(probability: 0.3, salt: 5, rowKeys: (0..<6).map { UInt64($0) * 7 })
        checkGradients([x, a, bb]) { t in
            t.loraLinear(x, weight: w, layout: .outIn, adapter: LoRAAdapter(a: a, b: bb, scaling: 1), adapterInput: t.dropout(x, mask: mask))
        }
    }

    /// The mask follows the row's key, not its index (rank-count invariance), drops about p,
    /// and scales the kept elements by 1/(1 − p).
    func testDropoutMaskFollowsRowKeys() {
        let x = randomTensor([200, 16], &rng, requiresGrad: false)
        let keys = (0..<200).map { UInt64($0) &* 0x1234_5678 }
        let out = Tape(recording: false).dropout(x, mask: DropoutMask(probability: 0.25, salt: 9, rowKeys: keys))
        let perm = Array((0..<200).reversed())
        let xr = Tensor(shape: x.shape, values: perm.flatMap { r in (0..<16).map { x.data[r * 16 + $0] } })
        let outR = Tape(recording: false).dropout(xr, mask: DropoutMask(probability: 0.25, salt: 9, rowKeys: perm.map { keys[$0] }))
        var dropped = 0
        for (i, r) in perm.enumerated() {
            for j in 0..<16 {
                XCTAssertEqual(outR.data[i * 16 + j], out.data[r * 16 + j])
                if out.data[r * 16 + j] == 0 { dropped += 1 } else { XCTAssertEqual(out.data[r * 16 + j], x.data[r * 16 + j] / 0.75, accuracy: 1e-6) }
            }
        }
        XCTAssertEqual(Double(dropped) / 3200, 0.25, accuracy: 0.03)
    }
}
