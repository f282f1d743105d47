import Foundation
import XCTest
import TensorCore
@testable import Training

/// `--bema` against TRL 1.16's own `BEMACallback` (`scripts/make-bema-references`: a fixed
/// sequence of weights θ_0 … θ_9, the callback's running model after every step) over six
/// schedules — the interval, a burn-in reset, the floor on β, β = α = 1, a vanishing
/// correction, other powers, lag and multiplier — plus frozen tensors and a restored state, and
/// TRL's experimental reference-model update (`bema_for_ref_model`) over two schedules.
final class BEMATests: XCTestCase {
    struct Fixture: Decodable {
        struct Case: Decodable {
            struct Args: Decodable {
                var update_freq: Int; var ema_power: Double; var bias_power: Double; var lag: Int
                var update_after: Int; var multiplier: Double; var min_ema_multiplier: Double
            }
            var name: String; var args: Args; var averages: [[String: [Float]]]
        }
        var shapes: [String: [Int]]
        var weights: [[String: [Float]]]
        var cases: [Case]
        struct ReferenceCase: Decodable {
            struct Ref: Decodable { var ref_model_update_freq: Int; var ref_model_update_after: Int }
            var name: String; var args: Case.Args; var averages: [[String: [Float]]]; var references: [[String: [Float]]]
            /// The reference keys, beside the average's in the same "args" object.
            var ref: Ref
            enum CodingKeys: String, CodingKey { case name, args, averages, references }
            init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                name = try c.decode(String.self, forKey: .name); args = try c.decode(Case.Args.self, forKey: .args)
                ref = try c.decode(Ref.self, forKey: .args)
                averages = try c.decode([[String: [Float]]].self, forKey: .averages); references = try c.decode([[String: [Float]]].self, forKey: .references)
            }
        }
        var reference_start: [String: [Float]]
        var reference_cases: [ReferenceCase]
    }

    static let fixture: Fixture = referenceFixture("bema-reference.json")
    static let names = ["a", "b"]

    static func schedule(_ a: Fixture.Case.Args) -> BiasCorrectedEMA.Schedule {
        var s = BiasCorrectedEMA.Schedule()
        s.updateFreq = a.update_freq; s.emaPower = a.ema_power; s.biasPower = a.bias_power; s.lag = a.lag
        s.updateAfter = a.update_after; s.multiplier = a.multiplier; s.minEMAMultiplier = a.min_ema_multiplier
        return s
    }

    /// A store laid out as the fixture's module, holding θ_t.
    static func store(step t: Int) -> ParameterStore {
        let f = fixture
        let s = ParameterStore(layout: names.map { ($0, f.shapes[$0]!) })
        set(s, step: t)
        return s
    }

    static func set(_ s: ParameterStore, step t: Int) {
        for n in names { let v = fixture.weights[t][n]!; (s.values + s.entry(n)!.offset).update(from: v, count: v.count) }
    }

    static func values(_ s: ParameterStore, _ n: String) -> [Float] {
        let e = s.entry(n)!
        return Array(UnsafeBufferPointer(start: s.values + e.offset, count: e.count))
    }

    func testTheAverageAfterEveryStepIsTRLs() {
        let f = Self.fixture
        XCTAssertEqual(f.cases.count, 6)
        for c in f.cases {
            let weights = Self.store(step: 0)
            let bema = BiasCorrectedEMA(schedule: Self.schedule(c.args), initial: weights, trainable: Self.names)
            var moved = 0
            for t in 1..<f.weights.count {
                Self.set(weights, step: t)
                if bema.afterStep(t, weights: weights) { moved += 1 }
                // TRL's rule from the fixture's arguments: t > τ and (t − τ) a multiple of φ.
                let due = (1...t).filter { $0 > c.args.update_after && ($0 - c.args.update_after) % c.args.update_freq == 0 }
                XCTAssertEqual(bema.schedule.lastUpdate(atOrBefore: t), due.last, "\(c.name): step \(t)")
                for n in Self.names {
                    let got = Self.values(bema.average, n), want = c.averages[t - 1][n]!
                    for (i, (g, w)) in zip(got, want).enumerated() {
                        // One float32 rounding of each of TRL's three tensor operations.
                        XCTAssertEqual(g, w, accuracy: 4 * Float.ulpOfOne * max(1, abs(w)), "\(c.name): step \(t) \(n)[\(i)]")
                    }
                }
            }
            let due = (1..<f.weights.count).filter { $0 > c.args.update_after && ($0 - c.args.update_after) % c.args.update_freq == 0 }
            XCTAssertEqual(moved, due.count, c.name)
            XCTAssertGreaterThan(due.count, 0, "\(c.name): the schedule never moves the average")
        }
    }

    /// bema_update_ref_model against TRL's experimental callback: a reference of other weights
    /// replaced by the average every φ_ref steps from τ_ref (a stale average between its updates,
    /// the initial weights before the first).
    func testTheReferenceIsReplacedAsTRLsCallbackReplacesIt() {
        let f = Self.fixture
        XCTAssertEqual(f.reference_cases.count, 2)
        for c in f.reference_cases {
            let weights = Self.store(step: 0), reference = Self.store(step: 0)
            for n in Self.names { let v = f.reference_start[n]!; (reference.values + reference.entry(n)!.offset).update(from: v, count: v.count) }
            let bema = BiasCorrectedEMA(schedule: Self.schedule(c.args), initial: weights, trainable: Self.names)
            let update = BEMAReferenceUpdate(every: c.ref.ref_model_update_freq, after: c.ref.ref_model_update_after, reference: reference)
            var replaced = 0
            for t in 1..<f.weights.count {
                Self.set(weights, step: t)
                bema.afterStep(t, weights: weights)
                if update.afterStep(t, policy: weights, average: bema) { replaced += 1 }
                for n in Self.names {
                    for (i, (g, w)) in zip(Self.values(reference, n), c.references[t - 1][n]!).enumerated() {
                        XCTAssertEqual(g, w, accuracy: 4 * Float.ulpOfOne * max(1, abs(w)), "\(c.name): step \(t) reference \(n)[\(i)]")
                    }
                    for (g, w) in zip(Self.values(bema.average, n), c.averages[t - 1][n]!) {
                        XCTAssertEqual(g, w, accuracy: 4 * Float.ulpOfOne * max(1, abs(w)), "\(c.name): step \(t) average \(n)")
                    }
                }
            }
            // TRL's rule: t ≥ τ_ref and (t − τ_ref) a multiple of φ_ref.
            XCTAssertEqual(replaced, (1..<f.weights.count).filter { $0 >= c.ref.ref_model_update_after && ($0 - c.ref.ref_model_update_after) % c.ref.ref_model_update_freq == 0 }.count)
            XCTAssertGreaterThanOrEqual(replaced, 3, c.name)
            XCTAssertEqual(update.snapshot.stateName, "reference_model")
        }
    }

    /// With a frozen tensor (which TRL's callback cannot take) the replaced reference holds the
    /// policy's weights there, as TRL loads the running model — a copy of the policy — whole.
    func testAReplacedReferenceTakesThePolicysFrozenTensors() {
        let f = Self.fixture, c = f.reference_cases[0]
        let weights = Self.store(step: 0), reference = Self.store(step: 0)
        for n in Self.names { let v = f.reference_start[n]!; (reference.values + reference.entry(n)!.offset).update(from: v, count: v.count) }
        let bema = BiasCorrectedEMA(schedule: Self.schedule(c.args), initial: weights, trainable: ["a"])
        let update = BEMAReferenceUpdate(every: c.ref.ref_model_update_freq, after: c.ref.ref_model_update_after, reference: reference)
        XCTAssertTrue(update.updates(at: 2))
        Self.set(weights, step: 1)
        bema.afterStep(1, weights: weights); update.afterStep(1, policy: weights, average: bema)
        XCTAssertEqual(Self.values(reference, "b"), f.reference_start["b"]!, "replaced before its first step")
        Self.set(weights, step: 2)
        bema.afterStep(2, weights: weights)
        XCTAssertTrue(update.afterStep(2, policy: weights, average: bema))
        XCTAssertEqual(Self.values(reference, "b"), f.weights[2]["b"]!, "the frozen tensor is not the policy's")
        XCTAssertEqual(Self.values(reference, "a"), Self.values(bema.average, "a"))
    }

    /// Only the trainable tensors average; `write` leaves the rest of the model as it is.
    func testFrozenTensorsKeepTheModelsWeights() {
        let f = Self.fixture, c = f.cases[0]
        let weights = Self.store(step: 0)
        let bema = BiasCorrectedEMA(schedule: Self.schedule(c.args), initial: weights, trainable: ["a"])
        for t in 1..<f.weights.count {
            Self.set(weights, step: t)
            bema.afterStep(t, weights: weights)
        }
        XCTAssertEqual(bema.average.entries.map(\.name), ["a"])
        let model = Self.store(step: 4)
        bema.write(into: model)
        XCTAssertEqual(Self.values(model, "a"), Self.values(bema.average, "a"))
        XCTAssertEqual(Self.values(model, "b"), f.weights[4]["b"]!, "a frozen tensor was written")
        for (g, w) in zip(Self.values(model, "a"), c.averages.last!["a"]!) { XCTAssertEqual(g, w, accuracy: 4 * Float.ulpOfOne * max(1, abs(w))) }
    }

    /// θ_0, the EMA and the average restored from a checkpoint's state continue bit for bit.
    func testRestoredStateContinuesBitForBit() throws {
        let f = Self.fixture, c = f.cases[1]   // burn-in 3: θ_0 is no longer the initial weights
        let weights = Self.store(step: 0)
        let full = BiasCorrectedEMA(schedule: Self.schedule(c.args), initial: weights, trainable: Self.names)
        var saved: [ComponentState] = []
        for t in 1..<f.weights.count {
            Self.set(weights, step: t)
            full.afterStep(t, weights: weights)
            if t == 5 { saved = full.snapshots.map { $0.saveState() } }
        }
        // A resumed run starts from the weights of step 5 and the checkpoint's three tensors.
        Self.set(weights, step: 5)
        let resumed = BiasCorrectedEMA(schedule: Self.schedule(c.args), initial: weights, trainable: Self.names)
        XCTAssertEqual(resumed.snapshots.map(\.stateName), ["bema_theta0", "bema_ema", "bema"])
        for (snapshot, state) in zip(resumed.snapshots, saved) { try snapshot.restoreState(state, step: 5) }
        for t in 6..<f.weights.count {
            Self.set(weights, step: t)
            resumed.afterStep(t, weights: weights)
        }
        for n in Self.names {
            XCTAssertEqual(Self.values(resumed.average, n).map(\.bitPattern), Self.values(full.average, n).map(\.bitPattern), n)
        }
    }
}
