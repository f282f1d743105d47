import Distributed
import Foundation
import XCTest
import Models
import TensorCore
@testable import Training

/// The forgetting controls of `Training/Forgetting/` through the real trainer: `--freeze` /
/// `--trainable` selections, the `--l2-init` update against an independent computation, the
/// `--ema` average against an independent one, and exact resumption with all three.
final class ForgettingControlTests: XCTestCase {
    var support: TinyRun!
    var dir: String { support.dir }
    override func setUpWithError() throws { support = try TinyRun() }
    override func tearDownWithError() throws { support.remove() }

    func values(_ p: ParameterStore) -> [Float] { Array(UnsafeBufferPointer(start: p.values, count: p.count)) }

    func testSelectionByRegexAndRefusals() throws {
        let setup = try support.makeSetup(support.recipe(steps: 1, saveEvery: 0))
        let store = setup.model.parameters
        let set = try ParameterSelection(freeze: "wte|wpe", trainable: nil).trainableSet(store)
        XCTAssertFalse(set.names.contains("transformer.wte.weight"))
        XCTAssertFalse(set.names.contains("transformer.wpe.weight"))
        XCTAssertEqual(set.names.count, store.entries.count - 2)
        let only = try ParameterSelection(freeze: "bias$", trainable: "^transformer\\.h\\.0\\.").trainableSet(store)
        XCTAssertTrue(!only.names.isEmpty && only.names.allSatisfy { $0.hasPrefix("transformer.h.0.") && !$0.hasSuffix("bias") }, "\(only.names)")

        func problem(_ freeze: String?, _ trainable: String?) -> String {
            do { _ = try ParameterSelection(freeze: freeze, trainable: trainable).trainableSet(store); return "accepted" } catch { return "\(error)" }
        }
        let none = problem("no_such_layer", nil)
        XCTAssertTrue(none.hasPrefix("--freeze \"no_such_layer\" matches none") && none.contains("transformer.wte.weight"), none)
        XCTAssertTrue(problem(".", nil).hasPrefix("--freeze \".\" matches every one"), problem(".", nil))
        XCTAssertTrue(problem(nil, "weight|bias").hasPrefix("--trainable \"weight|bias\" matches every one"))
        XCTAssertTrue(problem(nil, "zzz").hasPrefix("--trainable \"zzz\" matches none"))
        XCTAssertTrue(problem("h\\.0", "h\\.0\\.attn").contains("nothing would train"), problem("h\\.0", "h\\.0\\.attn"))
        XCTAssertFalse(ParameterSelection.isValidPattern("(unclosed"))
        var r = Recipe()
        XCTAssertThrowsError(try Recipe.key(named: "freeze")!.read(flag: "(unclosed", into: &r)) {
            XCTAssertTrue("\($0)".hasPrefix("--freeze must be a regular expression"), "\($0)")
        }
    }

    /// SGD at a constant rate, no clipping or decay, so θ' = θ − η(g + λ(θ − θ₀)). Two runs
    /// from the same weights, with λ and without: the first step is identical (θ = θ₀), and
    /// after the second their difference is −ηλ(θ₁ − θ₀) element by element.
    func testL2InitAddsLambdaTimesDriftToTheUpdate() throws {
        var recipe = support.recipe(steps: 2, saveEvery: 0)
        recipe.optimizer = .sgd; recipe.schedule = .constant; recipe.warmupSteps = 0
        recipe.gradClip = 0; recipe.weightDecay = 0; recipe.lr = 0.1
        recipe.freeze = "wpe"
        let lambda = 3.0
        var withL2 = recipe
        withL2.l2Init = lambda
        let plain = try support.makeSetup(recipe), anchored = try support.makeSetup(withL2)
        let comm = LocalCommunicator()
        let a = Trainer(setup: plain, comm: comm), b = Trainer(setup: anchored, comm: comm)
        let theta0 = values(plain.model.parameters)
        XCTAssertEqual(theta0, values(anchored.model.parameters))
        _ = a.step(0); _ = b.step(0)
        let theta1 = values(plain.model.parameters)
        XCTAssertEqual(theta1.map(\.bitPattern), values(anchored.model.parameters).map(\.bitPattern), "no drift yet: no penalty")
        _ = a.step(1)
        let report = b.step(1)
        let pa = values(plain.model.parameters), pb = values(anchored.model.parameters)
        var worst = 0.0, largest = 0.0, squares = 0.0
        for i in theta0.indices where b.trainable.contains(i) {
            let drift = Double(theta1[i]) - Double(theta0[i])
            let expected = -0.1 * lambda * drift
            worst = max(worst, abs((Double(pb[i]) - Double(pa[i])) - expected))
            largest = max(largest, abs(expected))
            squares += drift * drift
        }
        XCTAssertGreaterThan(largest, 1e-3, "the test needs a visible pull")
        XCTAssertLessThan(worst, 2e-6, "largest pull \(largest)")
        let penalty = try XCTUnwrap(report.diagnostics.first { $0.0 == "l2_init_penalty" }?.1)
        XCTAssertEqual(penalty, lambda / 2 * squares, accuracy: 1e-6 * max(penalty, 1e-9))
        for e in plain.model.parameters.entries where e.name.contains("wpe") {
            XCTAssertEqual(Array(pb[e.offset..<(e.offset + e.count)]), Array(theta0[e.offset..<(e.offset + e.count)]), "frozen")
        }
    }

    /// The gradient `L2InitPenalty.addGradient` adds is ∇θ of the penalty λ/2·‖θ − θ₀‖² (L2-SP,
    /// arXiv 1802.01483): per trained entry, a central difference of that penalty computed here
    /// in double precision from θ and θ₀ (exact for a quadratic up to round-off), added on top of
    /// the data gradient already there; entries outside the ranges keep their data gradient, and
    /// the returned penalty is the same sum. Small hand-made store: two tensors, the second
    /// only partly trained.
    func testL2InitGradientIsACentralDifferenceOfThePenalty() {
        let layout: [(name: String, shape: [Int])] = [("a", [3]), ("b", [2, 3])]
        let initial = ParameterStore(layout: layout)
        for i in 0..<initial.count { initial.values[i] = Float(i % 5) * 0.25 - 0.4 }
        let lambda: Float = 0.7
        let penalty = L2InitPenalty(lambda: lambda, initial: initial)
        let theta0 = values(initial)
        let params = ParameterStore(layout: layout)
        var rng = RNG(seed: 5)
        for i in 0..<params.count { params.values[i] = theta0[i] + rng.normal() }
        let data = (0..<params.count).map { _ in rng.normal() }
        for i in 0..<params.count { params.grads[i] = data[i] }
        let b = params.entry("b")!
        let ranges = [params.entry("a")!.offset..<(params.entry("a")!.offset + 3), b.offset..<(b.offset + 4)]
        let trained = Set(ranges.flatMap { Array($0) })
        let theta = values(params).map(Double.init)
        func f(_ x: [Double]) -> Double {
            0.5 * Double(lambda) * trained.reduce(0.0) { $0 + (x[$1] - Double(theta0[$1])) * (x[$1] - Double(theta0[$1])) }
        }
        let returned = penalty.addGradient(params, ranges: ranges)
        // θ − θ₀ is taken in float32 (relative error ≤ 2⁻²⁴ each, so ≤ 1.2e-7 on a square).
        XCTAssertEqual(returned, f(theta), accuracy: 2e-7 * f(theta))
        let h = 1e-3
        var largest = 0.0
        for i in 0..<params.count {
            let added = Double(params.grads[i]) - Double(data[i])
            guard trained.contains(i) else { XCTAssertEqual(params.grads[i], data[i], "entry \(i) is not trained"); continue }
            var up = theta, down = theta
            up[i] += h; down[i] -= h
            let fd = (f(up) - f(down)) / (2 * h)
            largest = max(largest, abs(fd))
            XCTAssertEqual(added, fd, accuracy: 1e-5 * max(1, abs(fd)), "entry \(i)")
        }
        XCTAssertGreaterThan(largest, 0.1, "the test needs a visible pull")
    }

    /// The average after each of three steps, computed independently in double precision from
    /// the weights the steps produced; frozen tensors stay the initial ones, bit for bit.
    func testEMAFollowsTheWeightsAsAnIndependentAverage() throws {
        var recipe = support.recipe(steps: 3, saveEvery: 0)
        recipe.ema = 0.75
        recipe.freeze = "^transformer\\.wte\\."
        let setup = try support.makeSetup(recipe)
        let trainer = Trainer(setup: setup, comm: LocalCommunicator())
        let ema = try XCTUnwrap(trainer.ema)
        let theta0 = values(setup.model.parameters)
        var expected = theta0.map(Double.init)
        for step in 0..<3 {
            _ = trainer.step(step)
            let theta = values(setup.model.parameters)
            for i in expected.indices { expected[i] = 0.75 * expected[i] + 0.25 * Double(theta[i]) }
        }
        let got = values(ema.average.parameters)
        let final = values(setup.model.parameters)
        var worst = 0.0, apart = 0.0
        for i in got.indices {
            worst = max(worst, abs(Double(got[i]) - expected[i]))
            apart = max(apart, abs(Double(got[i]) - Double(final[i])))
        }
        XCTAssertLessThan(worst, 1e-6)
        XCTAssertGreaterThan(apart, 1e-4, "the average lags the weights")
        let wte = try XCTUnwrap(setup.model.parameters.entry("transformer.wte.weight"))
        let range = wte.offset..<(wte.offset + wte.count)
        XCTAssertEqual(final[range].map(\.bitPattern), theta0[range].map(\.bitPattern), "frozen weights never move")
        XCTAssertEqual(got[range].map(\.bitPattern), theta0[range].map(\.bitPattern), "nor does their average")
    }

    /// A run with a frozen set, `--l2-init` and `--ema`, resumed from its step-3 checkpoint,
    /// continues with the uninterrupted run's losses, weights, anchor and average, bit for bit.
    func testResumeWithFrozenSetL2InitAndEMAIsBitExact() throws {
        var recipe = support.recipe(steps: 6, saveEvery: 3)
        recipe.freeze = "wpe|ln_f"; recipe.l2Init = 0.5; recipe.ema = 0.9
        func run(_ r: Recipe) throws -> (losses: [Double], from: Int, weights: [Float], ema: [Float], anchor: [Float]) {
            var trainer: Trainer!
            let (losses, from) = try support.train(r, prepare: { t, _ in trainer = t })
            return (losses, from, values(trainer.model.parameters), values(trainer.ema!.average.parameters),
                    values(trainer.l2Init!.anchor))
        }
        let full = try run(recipe)
        let saved = try CheckpointStore.readComponents(dir + "/run/checkpoints/step-000003",
                                                       try CheckpointStore.readState(dir + "/run/checkpoints/step-000003"))
        XCTAssertTrue(saved.keys.contains("ema") && saved.keys.contains("l2_init_anchor"), "\(saved.keys.sorted())")
        var resuming = recipe
        resuming.resume = dir + "/run/checkpoints/step-000003"
        let resumed = try run(resuming)
        XCTAssertEqual(resumed.from, 3)
        XCTAssertEqual(resumed.losses.map(\.bitPattern), full.losses.suffix(from: 3).map(\.bitPattern))
        XCTAssertEqual(resumed.weights.map(\.bitPattern), full.weights.map(\.bitPattern))
        XCTAssertEqual(resumed.ema.map(\.bitPattern), full.ema.map(\.bitPattern), "the average resumes exactly")
        XCTAssertEqual(resumed.anchor.map(\.bitPattern), full.anchor.map(\.bitPattern))
        XCTAssertNotEqual(full.ema, full.weights)
    }
}
