import Distributed
import Models
import TensorCore
@testable import Training
import XCTest

/// UDS's scores from hidden states and the head (`HeadGramFactor`, `UDSSketch.sketch(hidden:)`,
/// `HeadFactoredScorer`) against the same scores from the formed logits H·op(W), which
/// `SelectionReferenceTests` checks against torch: equal up to float rounding, for both head
/// layouts, fewer or more rows than the hidden width, and a vocabulary smaller than the width
/// (a rank-deficient head Gram).
final class HeadFactoredScoringTests: XCTestCase {
    func randoms(_ n: Int, _ rng: inout RNG, scale: Float = 1) -> [Float] { (0..<n).map { _ in rng.normal() * scale } }

    /// logits [n, V] = H · op(W).
    func logits(_ h: [Float], _ w: [Float], n: Int, d: Int, V: Int, layout: WeightLayout) -> [Float] {
        var out = [Float](repeating: 0, count: n * V)
        LinearKernels.forward(out: &out, x: h, w: w, bias: nil, n: n, inFeatures: d, outFeatures: V, layout: layout)
        return out
    }

    func testNuclearNormAndSketchFromHiddenStatesEqualThoseOfTheLogits() {
        var rng = RNG(seed: 11, stream: 3)
        for (n, d, V) in [(5, 12, 40), (20, 6, 33), (7, 16, 9), (1, 8, 30)] {
            for layout in [WeightLayout.outIn, .inOut] {
                let h = randoms(n * d, &rng), w = randoms(V * d, &rng, scale: 0.3)
                let l = logits(h, w, n: n, d: d, V: V, layout: layout)
                let expected = NuclearNorm.of(l, rows: n, cols: V)
                let factor = HeadGramFactor(head: w, vocab: V, width: d, layout: layout)
                XCTAssertEqual(factor.rank, min(d, V), "rank of the head Gram, n=\(n) d=\(d) V=\(V) \(layout)")
                XCTAssertEqual(factor.nuclearNorm(hidden: h, rows: n), expected, accuracy: 1e-5 * expected,
                               "‖H·op(W)‖_*, n=\(n) d=\(d) V=\(V) \(layout)")

                let sketch = UDSSketch(T: 24, V: V, r1: 4, r2: 8, seed: 7)
                let direct = sketch.sketch(l, rows: n)
                let factored = sketch.sketch(hidden: h, rows: n, width: d,
                                             projection: sketch.headProjection(head: w, width: d, layout: layout))
                let scale = direct.map(abs).max()!
                XCTAssertGreaterThan(scale, 0)
                for (k, (a, b)) in zip(factored, direct).enumerated() {
                    XCTAssertEqual(a, b, accuracy: 2e-5 * scale, "sketch[\(k)], n=\(n) d=\(d) V=\(V) \(layout)")
                }
            }
        }
    }

    /// Through `CandidateScoring` on a GPT-2 (a `HiddenStateModel`: the factored path) against
    /// the UDS scorer on each candidate's logits from `forward`.
    func testScoringPassOnAModelMatchesTheLogitsPath() {
        let model = GPT2(config: GPT2Config(vocabSize: 50, contextLength: 16, embedDim: 16, layers: 1, heads: 2), seed: 4)
        let sketch = UDSSketch(T: 16, V: 50, r1: 4, r2: 8, seed: 9)
        let scorer = UDSScorer(sketch: sketch)
        var rng = RNG(seed: 2, stream: 1)
        let candidates = (0..<4).map { i -> StepSequence in
            let ids = (0..<(6 + 3 * i)).map { _ in Int32(rng.below(50)) }
            var mask = [UInt8](repeating: 1, count: ids.count); mask[0] = 0
            return StepSequence(example: i, origin: .demonstration, ids: ids, lossMask: mask, promptLength: 1)
        }
        let scores = CandidateScoring.score(candidates, with: scorer, model: model, comm: LocalCommunicator(), padId: 0)
        for (c, got) in zip(candidates, scores) {
            let n = c.ids.count - 1
            let mb = Batching.padded([c], indices: [0], padId: 0)
            let l = model.forward(Tape(recording: false), inputs: mb.inputs, positions: mb.positions, segments: nil,
                                  batch: 1, seqLen: mb.seqLen)
            let want = withExtendedLifetime(l) {
                scorer.score(CandidateView(rows: n, vocab: 50, logits: UnsafePointer(l.data), targets: mb.targets[0..<n],
                                           mask: mb.mask[0..<n]))
            }
            XCTAssertEqual(got.count, want.count)
            XCTAssertEqual(got[0], want[0], accuracy: 1e-5 * want[0], "nuclear norm of candidate \(c.example)")
            let scale = want.dropFirst().map(abs).max()!
            for (k, (a, b)) in zip(got.dropFirst(), want.dropFirst()).enumerated() {
                XCTAssertEqual(a, b, accuracy: 2e-5 * scale, "sketch[\(k)] of candidate \(c.example)")
            }
        }
    }
}
