import XCTest
import TensorCore
@testable import Training

/// The papers' single-token vectors (V = 4, logits [ln(3p/(1−p)),0,0,0], one loss token so
/// every normalisation agrees), through the real trainer step: loss and ∂L/∂z_y.
/// `scripts/make-objective-references vectors` recomputes every value below from the formulas
/// (in PyTorch, gradients by autograd), which is where they come from.
final class ObjectiveVectorTests: XCTestCase {
    let tol = 1e-6

    /// The vectors are printed to 6 decimals, or to 3 significant digits below 1e-4: half a
    /// unit in the last printed digit, never coarser than the value's own size allows.
    func tolerance(_ expected: Double) -> Double { abs(expected) < 1e-4 ? 2.5e-3 * abs(expected) : tol }

    /// Runs `name` on the one-token batch and checks (loss, ∂z_y); also that the gradient of
    /// a softmax-based loss sums to zero over the vocabulary.
    @discardableResult
    func check(_ name: String, _ args: [String: String] = [:], p: Double, reference: [Float]? = nil, old: [Float]? = nil,
               loss: Double, dzy: Double, file: StaticString = #filePath, line: UInt = #line) throws -> Trained {
        let batch = ObjectiveTestBatch.single(p: p, reference: reference, old: old)
        let run = try batch.train(name, args)
        XCTAssertEqual(run.loss, loss, accuracy: tolerance(loss), "\(name) \(args) p=\(p): loss", file: file, line: line)
        XCTAssertEqual(Double(run.grad[0]), dzy, accuracy: tolerance(dzy), "\(name) \(args) p=\(p): ∂z_y", file: file, line: line)
        XCTAssertEqual(Double(run.grad.reduce(0, +)), 0, accuracy: tol, "\(name): Σ_v ∂z_v", file: file, line: line)
        return run
    }

    func testNLLAndLabelSmoothing() throws {
        try check("nll", p: 0.2, loss: 1.609438, dzy: -0.8)
        try check("nll", p: 0.9, loss: 0.105361, dzy: -0.1)
        try check("nll", ["label_smoothing": "0.1"], p: 0.2, loss: 1.587862, dzy: -0.725)
        try check("nll", ["label_smoothing": "0.1"], p: 0.9, loss: 0.352548, dzy: -0.025)
    }

    func testBeyondLogLikelihoodFamily() throws {
        try check("p", p: 0.2, loss: 0.8, dzy: -0.16)
        try check("p", p: 0.9, loss: 0.1, dzy: -0.09)
        try check("power", p: 0.2, loss: 0.0999999898, dzy: -8.19e-8)          // default α = 10
        try check("power", ["alpha": "10"], p: 0.9, loss: 0.065132, dzy: -0.034868)
        try check("power", ["alpha": "8"], p: 0.2, loss: 0.125000, dzy: -2.05e-6)
        try check("power", ["alpha": "8"], p: 0.9, loss: 0.071192, dzy: -0.043047)
        try check("power", ["alpha": "2"], p: 0.2, loss: 0.48, dzy: -0.032)
        try check("power", ["alpha": "2"], p: 0.9, loss: 0.095, dzy: -0.081)
        // Small α: the loss tends to −log p (computed as −expm1(α log p)/α; 1 − p^α cancelled in
        // float32 and gave 0 at α = 1e-9). Values from Python's math.expm1 in double.
        try check("power", ["alpha": "1e-6"], p: 0.2, loss: 1.6094366, dzy: -0.7999987)
        try check("power", ["alpha": "1e-9"], p: 0.2, loss: 1.6094379, dzy: -0.8)
    }

    func testThresholdVectors() throws {
        // OnlyTopP-0.5: p = 0.2 is out of numerator and denominator (selected count 0).
        let masked = ObjectiveTestBatch.single(p: 0.2)
        let run = try masked.train("threshold", ["variant": "top-p", "q": "0.5"])
        XCTAssertEqual(run.loss, 0)
        XCTAssertEqual(run.grad, [0, 0, 0, 0])
        XCTAssertEqual(run.diagnostics["kept_ratio"], 0)
        try check("threshold", ["variant": "top-p", "q": "0.5"], p: 0.9, loss: 0.1, dzy: -0.09)
        // Derived from the same definitions: the loss of `p` / NLL on a selected token.
        try check("threshold", ["variant": "bottom-p", "q": "0.5"], p: 0.2, loss: 0.8, dzy: -0.16)
        try check("threshold", ["variant": "top-logp", "q": "0.5"], p: 0.9, loss: 0.105361, dzy: -0.1)
        try check("threshold", ["variant": "bottom-logp", "q": "0.5"], p: 0.2, loss: 1.609438, dzy: -0.8)
        XCTAssertEqual(try masked.train("threshold", ["variant": "bottom-p", "q": "0.1"]).loss, 0)
    }

    func testDFT() throws {
        try check("dft", p: 0.2, loss: 0.321888, dzy: -0.16)
        try check("dft", p: 0.9, loss: 0.094824, dzy: -0.09)
    }

    func testAnchoredSFTUniformReference() throws {
        let uniform: [Float] = [0, 0, 0, 0]
        var run = try check("asft", p: 0.2, reference: uniform, loss: 0.322626, dzy: -0.165)
        XCTAssertEqual(run.diagnostics["kl_ref"] ?? .nan, 0.007382, accuracy: tol)
        run = try check("asft", ["kl_weight": "0.1"], p: 0.9, reference: uniform, loss: 0.213919, dzy: -0.025)
        XCTAssertEqual(run.diagnostics["kl_ref"] ?? .nan, 1.190944, accuracy: tol)
        try check("asft", ["kl_weight": "0.05"], p: 0.2, reference: uniform, loss: 0.322257, dzy: -0.1625)
        try check("asft", ["kl_weight": "0.05"], p: 0.9, reference: uniform, loss: 0.154372, dzy: -0.0575)
    }

    func testPSFTTable() throws {
        // (p_old → p: r, L, ∂z_y), clip 0.2 / 0.28.
        let table: [(Double, Double, Double, Double, Double)] = [
            (0.2, 0.2, 1, -1, -0.8), (0.2, 0.25, 1.25, -1.25, -0.9375), (0.2, 0.3, 1.5, -1.28, 0),
            (0.2, 0.1, 0.5, -0.5, -0.45), (0.9, 0.9, 1, -1, -0.1),
        ]
        for (pOld, p, r, l, g) in table {
            let run = try check("psft", p: p, old: ObjectiveTestBatch.vectorLogits(pOld), loss: l, dzy: g)
            XCTAssertEqual(run.diagnostics["ratio"] ?? .nan, r, accuracy: 1e-6)
            XCTAssertEqual(run.diagnostics["clip_frac"], r > 1.28 ? 1 : 0)
        }
        // No old logits: the snapshot is the current model (a refresh step), r = 1.
        try check("psft", p: 0.2, loss: -1, dzy: -0.8)
    }

    func testTALRTable() throws {
        // (τ, p, w, L, ∂z_y)
        let table: [(String, Double, Double, Double, Double)] = [
            ("1", 0.2, 0.2, 0.321888, -0.16), ("1", 0.9, 0.9, 0.094824, -0.09),
            ("0.5", 0.2, 0.04, 0.064378, -0.032), ("0.5", 0.9, 0.81, 0.085342, -0.081),
            ("2", 0.2, 0.447214, 0.719763, -0.357771), ("2", 0.9, 0.948683, 0.099954, -0.094868),
        ]
        for (tau, p, w, l, g) in table {
            let run = try check("talr", ["tau": tau], p: p, loss: l, dzy: g)
            XCTAssertEqual(run.diagnostics["mean_weight"] ?? .nan, w, accuracy: 1e-6)
        }
    }

    func testIWSFTTable() throws {
        // (p, p_ref → w, L, ∂z_y); w = 16 is the clip.
        let table: [(Double, Double, Double, Double, Double)] = [
            (0.2, 0.5, 0.4, 0.643775, -0.32), (0.9, 0.5, 1.8, 0.189649, -0.18), (0.9, 0.05, 16, 1.685768, -1.6),
        ]
        for (p, pRef, w, l, g) in table {
            let run = try check("iwsft", p: p, reference: ObjectiveTestBatch.vectorLogits(pRef), loss: l, dzy: g)
            XCTAssertEqual(run.diagnostics["mean_weight"] ?? .nan, w, accuracy: 1e-5)
        }
    }

    /// Two tokens, ratio 0.5: the one with the larger ℓ_θ − ℓ_ref (p = 0.2 against a uniform
    /// reference) is kept, the other (p = 0.9) is forgotten with λ = 0.25.
    func forgettingBatch() -> ObjectiveTestBatch {
        ObjectiveTestBatch(vocab: 4, logits: ObjectiveTestBatch.vectorLogits(0.2) + ObjectiveTestBatch.vectorLogits(0.9),
                           targets: [0, 0], mask: [1, 1], sequenceId: [0, 1], reference: [Float](repeating: 0, count: 8))
    }

    func testForgettingVector() throws {
        let batch = forgettingBatch()
        // λ(s) = (λ_max − λ_min)·s/S = 0.5·2/4 = 0.25.
        let args = ["ratio": "0.5", "lambda_max": "0.5", "lambda_min": "0"]
        let run = try batch.train("forgetting", args, step: 2, totalSteps: 4)
        XCTAssertEqual(run.loss, 1.583098, accuracy: tol)
        XCTAssertEqual(Double(run.grad[0]), -0.8, accuracy: tol)
        XCTAssertEqual(Double(run.grad[4]), 0.025, accuracy: tol)
        XCTAssertEqual(run.diagnostics["kept_ratio"], 0.5)
        XCTAssertEqual(run.diagnostics["lambda"] ?? .nan, 0.25, accuracy: 1e-7)
        // The bound: with p_floor above 0.9 the forgotten token no longer ascends.
        let b = try batch.train("forgetting", args.merging(["p_floor": "0.95"]) { $1 }, step: 2, totalSteps: 4)
        XCTAssertEqual(b.loss, 1.609438, accuracy: tol)
        XCTAssertEqual(b.grad[4...7].map { $0 }, [0, 0, 0, 0])
        XCTAssertEqual(b.diagnostics["ascent_frac"], 0)
        // Step 0: λ = 0, plain NLL on P.
        XCTAssertEqual(try batch.train("forgetting", args, step: 0, totalSteps: 4).loss, 1.609438, accuracy: tol)
    }

    func testTokenCleanKeepsTopScores() throws {
        let batch = forgettingBatch()
        let run = try batch.train("token-clean", ["ratio": "0.5"])
        XCTAssertEqual(run.loss, 1.609438, accuracy: tol)     // NLL on the kept token, ÷ |kept| = 1
        XCTAssertEqual(Double(run.grad[0]), -0.8, accuracy: tol)
        XCTAssertEqual(run.grad[4...7].map { $0 }, [0, 0, 0, 0])
        XCTAssertEqual(run.diagnostics["kept_ratio"], 0.5)
        let all = try batch.train("token-clean", ["ratio": "1"])
        XCTAssertEqual(all.loss, (1.609438 + 0.105361) / 2, accuracy: tol)
    }

    /// OTR has no published vectors; these follow from its definition when the draws are
    /// certain: a near-one-hot sampling distribution puts every draw on one token.
    func testOTRDegenerateDraws() throws {
        let K = 4.0, beta = -0.5
        // Every draw hits the target: c = K, no wrong draw → NLL.
        let sure = ObjectiveTestBatch(vocab: 4, logits: [40, 0, 0, 0], targets: [0], mask: [1], sequenceId: [0])
        let otr = ["k": "4", "beta": "-0.5"]
        let a = try sure.train("otr", otr)
        XCTAssertEqual(a.loss, -Double(40 - SoftmaxKernels.logSumExp([40, 0, 0, 0], count: 4)), accuracy: tol)
        XCTAssertEqual(a.diagnostics["hit_rate"], 1)
        // Every draw is token 1 ≠ target 0: the target enters once (c = 1) and token 1 is
        // pushed down K times: L = −(1/K)·log p_0 − β·log p_1.
        let z: [Float] = [0, 40, 0, 0]
        let miss = ObjectiveTestBatch(vocab: 4, logits: z, targets: [0], mask: [1], sequenceId: [0])
        let lse = Double(SoftmaxKernels.logSumExp(z, count: 4))
        let b = try miss.train("otr", otr)
        XCTAssertEqual(b.loss, -(1 / K) * (0 - lse) - beta * (40 - lse), accuracy: tol)
        XCTAssertEqual(Double(b.grad[0]), (1 / K + beta) * exp(0 - lse) - 1 / K, accuracy: tol)
        XCTAssertEqual(Double(b.grad[1]), (1 / K + beta) * exp(40 - lse) - beta, accuracy: tol)
        XCTAssertEqual(b.diagnostics["hit_rate"], 0)
    }
}
