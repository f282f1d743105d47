import XCTest
import TensorCore
@testable import Training

/// Finite-difference checks, the documented equivalences, split invariance and argument
/// validation for every registered objective.
final class ObjectiveGradientTests: XCTestCase {
    /// Every objective with arguments that exercise its non-trivial branches on the random
    /// batch (clipping, selection, gating, label smoothing…).
    static let configurations: [(String, [String: String])] = [
        ("nll", [:]), ("nll", ["label_smoothing": "0.1"]), ("dft", [:]), ("p", [:]),
        ("power", [:]), ("power", ["alpha": "0.5"]), ("power", ["alpha": "2"]),
        ("threshold", ["variant": "top-p", "q": "0.15"]), ("threshold", ["variant": "bottom-p", "q": "0.2"]),
        ("threshold", ["variant": "top-logp", "q": "0.1"]), ("threshold", ["variant": "bottom-logp", "q": "0.08"]),
        ("asft", [:]), ("asft", ["kl_weight": "0.5"]),
        ("psft", [:]), ("psft", ["clip_low": "0.05", "clip_high": "0.05"]),
        ("talr", [:]), ("talr", ["tau": "0.5"]), ("talr", ["tau": "3", "floor": "0.2"]),
        ("iwsft", [:]), ("iwsft", ["temp": "3", "w_max": "1.5"]),
        ("otr", [:]), ("otr", ["k": "5", "temperature": "2", "beta": "-0.7"]),
        ("token-clean", [:]), ("token-clean", ["ratio": "0.3"]),
        ("forgetting", [:]), ("forgetting", ["ratio": "0.4", "p_floor": "0.1"]),
    ]

    func testEveryNameIsRegisteredAndCovered() throws {
        for name in ObjectiveRegistry.names {
            XCTAssertEqual(try makeObjective(name).name, name)
            XCTAssertTrue(Self.configurations.contains { $0.0 == name }, "\(name) has no gradient test configuration")
        }
    }

    func testFiniteDifferences() throws {
        let batch = ObjectiveTestBatch.random()
        let context = batch.context(step: 3, totalSteps: 4)   // forgetting's λ > 0
        for (name, args) in Self.configurations {
            let err = batch.finiteDifferenceError(try makeObjective(name, args), context: context)
            XCTAssertLessThan(err, 5e-5, "\(name) \(args): max |FD − grad|")
        }
    }

    func testMaskedRowsGetNoGradient() throws {
        let batch = ObjectiveTestBatch.random()
        for (name, args) in Self.configurations {
            let run = batch.run(try makeObjective(name, args))
            for r in [2, 7] {
                XCTAssertEqual(run.grad[r * batch.vocab..<(r + 1) * batch.vocab].map { $0 }, [Float](repeating: 0, count: batch.vocab),
                               "\(name): masked row \(r)")
            }
            XCTAssertTrue(run.loss.isFinite, name)
        }
    }

    /// The same global batch as one micro-batch on one rank, as two ranks, and as one rank
    /// with two micro-batches (cut at sequence boundaries, as the batcher does): the summed
    /// contributions agree — what makes `-n 1` and `-n 2` agree.
    func testSplitInvariance() throws {
        let batch = ObjectiveTestBatch.random()
        let context = batch.context(step: 3, totalSteps: 4)
        let splits: [[[Range<Int>]]] = [[[0..<4], [4..<10]], [[0..<4, 4..<7], [7..<10]], [[0..<7, 7..<10]]]
        for (name, args) in Self.configurations {
            let whole = batch.run(try makeObjective(name, args), context: context)
            for parts in splits {
                let split = batch.run(try makeObjective(name, args), parts: parts, context: context)
                XCTAssertEqual(split.loss, whole.loss, accuracy: 1e-9 * max(1, abs(whole.loss)), "\(name) \(args) \(parts): loss")
                let diff = zip(split.grad, whole.grad).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(diff, 1e-7, "\(name) \(args) \(parts): grad")
                for (key, v) in whole.diagnostics {
                    XCTAssertEqual(split.diagnostics[key] ?? .nan, v, accuracy: 1e-9 * max(1, abs(v)), "\(name): \(key)")
                }
            }
        }
    }

    func testDFTGradientEqualsPGradient() throws {
        let batch = ObjectiveTestBatch.random()
        let dft = batch.run(DFTObjective()), p = batch.run(PObjective())
        for (a, b) in zip(dft.grad, p.grad) { XCTAssertEqual(a, b, accuracy: 1e-7) }
        XCTAssertNotEqual(dft.loss, p.loss)   // same gradient, different loss value
    }

    func testTALRWithTauOneIsDFT() throws {
        // Logits in ±0.5 over V = 7 keep every p above TALR's 0.01 weight floor.
        let batch = ObjectiveTestBatch.random(seed: 3, spread: 0.25)
        let dft = batch.run(DFTObjective()), talr = batch.run(try TALRObjective(tau: 1))
        XCTAssertEqual(talr.loss, dft.loss, accuracy: 1e-9)
        for (a, b) in zip(dft.grad, talr.grad) { XCTAssertEqual(a, b, accuracy: 1e-7) }
    }

    func testTALRDynamicTauIsLowerMedianOfSequenceMeans() throws {
        let batch = ObjectiveTestBatch.random()
        var means: [Double] = []
        for rows in [0..<4, 4..<7, 7..<10] {
            var sum = 0.0, n = 0.0
            for r in rows where batch.mask[r] != 0 {
                let z = batch.logits + r * batch.vocab
                sum += Double(LogitRow.logSumExp(z, batch.vocab) - z[Int(batch.targets[r])]); n += 1
            }
            means.append(sum / n)
        }
        let run = batch.run(try TALRObjective())
        XCTAssertEqual(run.mean("tau"), means.sorted()[1], accuracy: 1e-5)
        // Even count: the lower of the two middle values (torch.median), from two sequences.
        let two = batch.run(try TALRObjective(), parts: [[0..<7]])
        XCTAssertEqual(two.mean("tau"), means[0...1].sorted()[0], accuracy: 1e-5)
    }

    func testOTRReproducibleAndSeeded() throws {
        let batch = ObjectiveTestBatch.random()
        let otr = try OTRObjective()
        let a = batch.run(otr, context: batch.context(seed: 1)), b = batch.run(otr, context: batch.context(seed: 1))
        XCTAssertEqual(a.loss, b.loss); XCTAssertEqual(a.grad, b.grad)
        let c = batch.run(otr, context: batch.context(seed: 2))
        XCTAssertNotEqual(a.grad, c.grad)
        // β = 0 with many draws approaches the DFT-like weight π(y) (τ = 1).
        let many = batch.run(try OTRObjective(k: 4000, beta: 0)), dft = batch.run(DFTObjective())
        XCTAssertEqual(many.loss, dft.loss, accuracy: 0.02)
    }

    func testSelectionKeepsGlobalTopRatio() throws {
        let batch = ObjectiveTestBatch.random()
        for ratio in [0.25, 0.5, 1.0] {
            let run = batch.run(try TokenCleanObjective(ratio: Float(ratio)), parts: [[0..<4], [4..<10]])
            XCTAssertEqual(run.diagnostics["kept_ratio"], (ratio * 8).rounded(.up), "kept tokens")
        }
        let threshold = batch.run(try ThresholdObjective(variant: "top-p", q: 0.15), parts: [[0..<4], [4..<10]])
        XCTAssertGreaterThan(threshold.mean("kept_ratio"), 0)
        XCTAssertLessThan(threshold.mean("kept_ratio"), 1)
    }

    func testArgumentValidation() {
        func message(_ name: String, _ args: [String: String]) -> String {
            do { _ = try makeObjective(name, args); return "" } catch { return "\(error)" }
        }
        let rejected: [(String, [String: String], String)] = [
            ("power", ["alpha": "0"], "alpha"), ("power", ["alpha": "-2"], "alpha"), ("power", ["alpha": "ten"], "alpha=ten is not a finite number"),
            ("threshold", ["variant": "top-p", "q": "1"], "q must be in [0, 1)"),
            ("threshold", ["variant": "bottom-logp", "q": "0"], "q must be in (0, 1]"),
            ("threshold", ["variant": "middle"], "variant=middle"),
            ("asft", ["kl_weight": "-0.1"], "kl_weight"),
            ("psft", ["clip_low": "1"], "clip_low"), ("psft", ["clip_high": "-0.1"], "clip_high"),
            ("psft", ["refresh": "0"], "refresh"), ("psft", ["refresh": "1.5"], "refresh must be an integer in 1…100000000 (got 1.5)"),
            ("talr", ["tau": "0"], "tau"), ("talr", ["floor": "2"], "floor"),
            ("iwsft", ["temp": "0"], "temp"), ("iwsft", ["w_max": "0"], "w_max"),
            ("otr", ["k": "0"], "k must be an integer in 1…4096 (got 0)"), ("otr", ["k": "1000000000"], "k must be an integer in 1…4096"), ("otr", ["temperature": "0"], "temperature"), ("otr", ["beta": "0.5"], "beta"),
            ("token-clean", ["ratio": "0"], "ratio"), ("token-clean", ["ratio": "1.5"], "ratio"),
            ("forgetting", ["ratio": "0"], "ratio"), ("forgetting", ["lambda_max": "0.1", "lambda_min": "0.2"], "lambda_max"),
            ("forgetting", ["lambda_min": "-1"], "lambda_min"), ("forgetting", ["p_floor": "1"], "p_floor"),
            ("dft", ["alpha": "1"], "unknown argument(s) alpha"),
            ("talr", ["tau": "1", "temperature": "2"], "unknown argument(s) temperature"),
            ("bogus", [:], "unknown objective \"bogus\""),
        ]
        for (name, args, expected) in rejected {
            let m = message(name, args)
            XCTAssertTrue(m.contains(expected), "\(name) \(args): got \"\(m)\", expected it to mention \"\(expected)\"")
            if name != "bogus" { XCTAssertTrue(m.hasPrefix("objective \(name)"), "\(name): \(m)") }
        }
        XCTAssertEqual(message("threshold", ["variant": "bottom-p", "q": "1"]), "")
        XCTAssertEqual(message("threshold", ["variant": "top-logp", "q": "0"]), "")
    }

    func testRequirementsAndDefaults() throws {
        XCTAssertEqual((try makeObjective("psft") as? PSFTObjective)?.requirements.oldPolicyRefresh, 8)
        XCTAssertEqual(try makeObjective("psft", ["refresh": "3"]).requirements.oldPolicyRefresh, 3)
        XCTAssertTrue(try makeObjective("talr").requirements.statisticsPass)
        XCTAssertFalse(try makeObjective("talr", ["tau": "1"]).requirements.statisticsPass)
        for name in ["asft", "iwsft", "token-clean", "forgetting"] {
            XCTAssertTrue(try makeObjective(name).requirements.referenceModel, name)
        }
        for name in ["threshold", "token-clean", "forgetting"] {
            XCTAssertTrue(try makeObjective(name).requirements.statisticsPass, name)
        }
        XCTAssertEqual((try makeObjective("power") as? PowerObjective)?.alpha, 10)
        XCTAssertEqual((try makeObjective("asft") as? AnchoredSFTObjective)?.klWeight, 0.1)
        let otr = try XCTUnwrap(try makeObjective("otr") as? OTRObjective)
        XCTAssertEqual([Float(otr.k), otr.temperature, otr.beta], [8, 1, -0.1])
    }
}
