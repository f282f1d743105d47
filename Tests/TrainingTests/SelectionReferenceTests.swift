import Foundation
import XCTest
@testable import Training
import TensorCore

/// The selectors against independent numpy/torch values on fixed logits
/// (`scripts/make-selection-references`, committed output): UDS's nuclear norm, JL sketch
/// (torch.fft), queue distances and choice; Q-Tuning's statistics, quadrants, bisection and
/// token pruning.
final class SelectionReferenceTests: XCTestCase {
    static let fixture: [String: Any] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/selection-references.json")
        return (try? JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]) ?? [:]
    }()

    static func floats(_ v: Any?) -> [Float] { (v as? [Any] ?? []).map { Float(($0 as? NSNumber)?.doubleValue ?? .nan) } }
    static func doubles(_ v: Any?) -> [Double] { (v as? [Any] ?? []).map { ($0 as? NSNumber)?.doubleValue ?? .nan } }
    static func ints(_ v: Any?) -> [Int] { (v as? [Any] ?? []).map { ($0 as? NSNumber)?.intValue ?? -1 } }
    static func matrix(_ v: Any?) -> [Float] { (v as? [Any] ?? []).flatMap { floats($0) } }

    /// A candidate's features from raw logits [rows, V].
    func features(_ scorer: CandidateScorer, logits: [Float], V: Int, targets: [Int32], mask: [Float]) -> [Float] {
        logits.withUnsafeBufferPointer {
            scorer.score(CandidateView(rows: logits.count / V, vocab: V, logits: $0.baseAddress!, targets: targets[...], mask: mask[...]))
        }
    }

    func testUDSNuclearNormSketchDiversityAndChoiceMatchTorch() throws {
        let u = try XCTUnwrap(Self.fixture["uds"] as? [String: Any])
        let V = u["V"] as! Int, T = u["T"] as! Int
        let sketch = UDSSketch(T: T, V: V, d1: Self.floats(u["d1"]), d2: Self.floats(u["d2"]),
                               idx1: Self.ints(u["idx1"]), idx2: Self.ints(u["idx2"]))
        let selector = UDSSelector(alpha: (u["alpha"] as! NSNumber).doubleValue, capacity: 8, sketch: sketch)
        let scorer = try XCTUnwrap(selector.scorer)
        func feats(_ key: String) -> [[Float]] {
            (u[key] as! [Any]).map { m in
                let l = Self.matrix(m)
                return features(scorer, logits: l, V: V, targets: Array(repeating: 0, count: l.count / V), mask: Array(repeating: 0, count: l.count / V))
            }
        }
        // The queue: the previous candidates' sketches, pushed as a selection of all of them.
        let previous = feats("previous")
        let prevPool = SelectionPool(step: 0, seed: 0, candidates: [], features: previous, referenceFeatures: [], keep: previous.count)
        selector.commit(SelectionDecision(selected: Array(previous.indices)), pool: prevPool)
        XCTAssertEqual(selector.count, previous.count)

        let pool = feats("pool")
        let utility = Self.doubles(u["utility"]), diversity = Self.doubles(u["diversity"])
        let sketches = (u["sketches"] as! [Any]).map { Self.doubles($0) }
        for (i, f) in pool.enumerated() {
            XCTAssertEqual(Double(f[0]), utility[i], accuracy: 1e-5 * utility[i], "nuclear norm of candidate \(i)")
            XCTAssertEqual(f.count - 1, sketches[i].count)
            let scale = sketches[i].map(abs).max()!
            for (k, (a, b)) in zip(f.dropFirst(), sketches[i]).enumerated() {
                XCTAssertEqual(Double(a), b, accuracy: 2e-6 * scale, "sketch \(i)[\(k)]")
            }
            XCTAssertEqual(selector.diversity(f.dropFirst()), diversity[i], accuracy: 1e-5 * diversity[i], "diversity of candidate \(i)")
        }
        let keep = u["keep"] as! Int
        let decision = selector.select(SelectionPool(step: 1, seed: 0, candidates: [], features: pool, referenceFeatures: [], keep: keep))
        XCTAssertEqual(decision.selected, Self.ints(u["chosen"]))
    }

    func testQTuningStatisticsQuadrantsAndTokenPruningMatchNumpy() throws {
        let q = try XCTUnwrap(Self.fixture["qtuning"] as? [String: Any])
        let V = q["V"] as! Int
        let selector = QTuningSelector(sampleBudget: (q["budget"] as! NSNumber).doubleValue,
                                       tokenBudget: (q["token_budget"] as! NSNumber).doubleValue,
                                       lambda: (q["lambda"] as! NSNumber).doubleValue, iterations: q["iterations"] as! Int)
        var candidates: [StepSequence] = [], feats: [[Float]] = []
        for (i, c) in (q["candidates"] as! [[String: Any]]).enumerated() {
            let ids = Self.ints(c["ids"]).map(Int32.init), mask = Self.ints(c["mask"]).map(UInt8.init)
            candidates.append(StepSequence(example: i, origin: .demonstration, ids: ids, lossMask: mask, promptLength: 0))
            // Row r predicts ids[r + 1]; its mask is that token's.
            feats.append(features(TokenStatisticsScorer(), logits: Self.matrix(c["logits"]), V: V, targets: Array(ids.dropFirst()),
                                  mask: mask.dropFirst().map(Float.init)))
        }
        let stats = feats.map(TokenStatisticsScorer.Statistics.init)
        for (i, s) in stats.enumerated() {
            XCTAssertEqual(s.samplePPL, Self.doubles(q["ppl"])[i], accuracy: 1e-5 * s.samplePPL, "PPL of \(i)")
            XCTAssertEqual(s.meanEntropy, Self.doubles(q["entropy"])[i], accuracy: 1e-5, "entropy of \(i)")
        }
        let t = QTuningSelector.thresholds(ppl: stats.map(\.samplePPL), ent: stats.map(\.meanEntropy),
                                           budget: selector.sampleBudget, iterations: selector.iterations)
        XCTAssertEqual(t.alpha, (q["alpha"] as! NSNumber).doubleValue, accuracy: 1e-12)
        XCTAssertEqual(stats.map { QTuningSelector.quadrant(ppl: $0.samplePPL, ent: $0.meanEntropy, t).rawValue }, Self.ints(q["quadrants"]))
        // keep as SelectionRegistry sets it (budget × pool, rounded): 8 of 14, which the fixture's 8 meet.
        let keep = max(1, Int(((q["budget"] as! NSNumber).doubleValue * Double(candidates.count)).rounded()))
        let decision = selector.select(SelectionPool(step: 0, seed: 0, candidates: candidates, features: feats, referenceFeatures: [], keep: keep))
        XCTAssertEqual(decision.selected, Self.ints(q["selected"]))
        let masks = (q["masks"] as! [Any]).map { Self.ints($0).map(UInt8.init) }
        XCTAssertEqual(decision.lossMasks, masks, "token pruning of the Q2 samples")
        XCTAssertTrue(masks.contains { !$0.isEmpty }, "the fixture prunes some Q2 sample")
    }

    /// The budget as a hard cap, by hand: PPL 1…8 against entropy 8…1 puts every sample in
    /// Q4 (low PPL, high entropy: 0–3) or Q2 (4–7) at any α, so the bisection keeps all 8. With
    /// keep 2 the deepest of each side train: rank(PPL) − rank(Ent) is (2i − 7)/8 for Q2 and its
    /// negative for Q4, largest at 7 and 0; with keep 3 the tie at 5/8 (1 and 6) goes to 1.
    func testQTuningBudgetCapsTheSamplesThatTrain() {
        let selector = QTuningSelector(sampleBudget: 0.25, tokenBudget: 0.5, lambda: 0.5, iterations: 10)
        let candidates = (0..<8).map { StepSequence(example: $0, origin: .demonstration, ids: [1, 2, 3], lossMask: [0, 1, 1], promptLength: 1) }
        // [m, ℓ…, H…] with two loss tokens of the same ℓ = log PPL and entropy.
        let feats = (0..<8).map { i -> [Float] in
            let l = Float(log(Double(i + 1))), h = Float(8 - i)
            return [2, l, l, h, h]
        }
        func select(keep: Int) -> SelectionDecision {
            selector.select(SelectionPool(step: 0, seed: 0, candidates: candidates, features: feats, referenceFeatures: [], keep: keep))
        }
        let all = select(keep: 8)
        XCTAssertEqual(all.selected, Array(0..<8), "the bisection alone keeps every sample")
        XCTAssertEqual(all.values[all.statistics.firstIndex(of: "qtuning_q2")!], 4)
        let two = select(keep: 2)
        XCTAssertEqual(two.selected, [0, 7])
        XCTAssertEqual(two.lossMasks, [[], [0, 1, 0]], "the Q2 sample keeps ⌊0.5 · 2⌋ = 1 loss token")
        XCTAssertEqual(two.values[two.statistics.firstIndex(of: "qtuning_over_budget")!], 6)
        XCTAssertEqual(select(keep: 3).selected, [0, 1, 7])
    }

    /// One candidate's logits [rows, V = 3] whose row t gives its target (0) the probability
    /// e^{−ℓ_t}: z = [ln(2p/(1 − p)), 0, 0], so −log p(target) = ℓ_t whatever computes it.
    static func lossLogits(_ losses: [Double]) -> [Float] {
        losses.flatMap { l -> [Float] in
            let p = exp(-l)
            return [Float(log(2 * p / (1 - p))), 0, 0]
        }
    }

    /// [Σ −log p, loss tokens] of a candidate whose loss rows have the token losses `trained`,
    /// followed by a masked row of loss 9 (outside every mean), through the selectors' scorer.
    func lossFeatures(_ trained: [Double]) -> [Float] {
        let losses = trained + [9]
        return features(LossScorer(), logits: Self.lossLogits(losses), V: 3, targets: Array(repeating: 0, count: losses.count),
                        mask: Array(repeating: 1, count: trained.count) + [0])
    }

    /// Token losses chosen so the token means are round numbers and rank otherwise than the sums
    /// (4.0, 1.5, 0.4, 9.0, 2.5) or the first tokens: current means 2.0, 1.5, 0.2, 3.0, 0.5; reference means 1.8, 0.3, 0.1,
    /// 1.5, 0.05; candidate 5 has no loss tokens (mean 0 by definition).
    static let currentTokenLosses: [[Double]] = [[1.7, 2.3], [1.5], [0.1, 0.3], [2.5, 3.0, 3.5], [0.3, 0.4, 0.5, 0.6, 0.7], []]
    static let referenceTokenLosses: [[Double]] = [[1.8], [0.2, 0.4], [0.05, 0.15], [1.0, 2.0], [0.04, 0.05, 0.06], []]

    /// LoBaSS (arXiv 2310.13008 §3.2) by hand on the candidates above, keep 2:
    ///   learnability L_cur − L_ref = 0.2, 1.2, 0.1, 1.5, 0.45, 0 → the top two are 3 and 1;
    ///   normalised (L_cur − L_ref)/L_cur = 0.1, 0.8, 0.5, 0.5, 0.9, 0 (0 when L_cur = 0) → 4 and 1.
    /// Neither is the highest current loss (3, 0) nor the lowest reference loss (5, 4), and
    /// swapping L_ref − L_cur would choose 2 and 5. Statistics: pool mean 3.45/6 = 0.575 and
    /// chosen mean (1.5 + 1.2)/2 = 1.35 with chosen loss (3.0 + 1.5)/2 = 2.25; normalised, pool
    /// mean 2.8/6, chosen (0.9 + 0.8)/2 = 0.85 with chosen loss (0.5 + 1.5)/2 = 1.0.
    func testLearnabilityScoresAndChoiceMatchLoBaSSByHand() throws {
        let current = Self.currentTokenLosses.map(lossFeatures), reference = Self.referenceTokenLosses.map(lossFeatures)
        let pool = SelectionPool(step: 0, seed: 0, candidates: [], features: current, referenceFeatures: reference, keep: 2)
        let cases: [(normalise: Bool, learnability: [Double], chosen: [Int], stats: [Double])] = [
            (false, [0.2, 1.2, 0.1, 1.5, 0.45, 0], [1, 3], [0.575, 1.35, 2.25]),
            (true, [0.1, 0.8, 0.5, 0.5, 0.9, 0], [1, 4], [2.8 / 6, 0.85, 1.0]),
        ]
        for c in cases {
            let selector = LearnabilitySelector(normalise: c.normalise)
            XCTAssertNotNil(selector.referenceScorer, "learnability scores the reference model")
            let described = Dictionary(uniqueKeysWithValues: selector.describe(pool))
            let label = "normalise=\(c.normalise)"
            for (key, want) in [("loss", [2.0, 1.5, 0.2, 3.0, 0.5, 0]), ("reference_loss", [1.8, 0.3, 0.1, 1.5, 0.05, 0]),
                                ("learnability", c.learnability)] {
                let got = try XCTUnwrap(described[key], "\(label): \(key)")
                XCTAssertEqual(got.count, want.count, "\(label): \(key)")
                for (i, (g, w)) in zip(got, want).enumerated() { XCTAssertEqual(g, w, accuracy: 1e-5, "\(label): \(key)[\(i)]") }
            }
            let decision = selector.select(pool)
            XCTAssertEqual(decision.selected, c.chosen, label)
            XCTAssertEqual(decision.statistics, ["selection_pool_learnability", "selection_selected_learnability", "selection_selected_loss"], label)
            XCTAssertEqual(decision.values.count, c.stats.count, label)
            for (k, (g, w)) in zip(decision.values, c.stats).enumerated() { XCTAssertEqual(g, w, accuracy: 1e-5, "\(label): \(decision.statistics[k])") }
        }
    }

    /// Online hard-example mining (arXiv 1511.06343 §3) and its easy-first opposite on the
    /// candidates above less the one without loss tokens: the token-mean NLL computed here from
    /// the logits (log Σ e^z − z_y in double precision, masked row left out), ranked here, against
    /// the selector's choice for every keep. By hand: means 2.0, 1.5, 0.2, 3.0, 0.5, so keep 2
    /// is {0, 3} by highest and {2, 4} by lowest.
    func testLossSelectorChoosesByIndependentTokenMeanNLL() throws {
        let n = 5
        let logits = Self.currentTokenLosses.prefix(n).map { Self.lossLogits($0 + [9]) }
        let feats = Self.currentTokenLosses.prefix(n).map(lossFeatures)
        let mean = (0..<n).map { i -> Double in
            let rows = Self.currentTokenLosses[i].count   // the loss rows; the last (masked) row is left out
            let nll = (0..<rows).map { r -> Double in
                let z = logits[i][(r * 3)..<(r * 3 + 3)].map(Double.init)
                return log(z.map(exp).reduce(0, +)) - z[0]
            }
            return nll.reduce(0, +) / Double(rows)
        }
        for (i, want) in [2.0, 1.5, 0.2, 3.0, 0.5].enumerated() { XCTAssertEqual(mean[i], want, accuracy: 1e-5, "the logits' NLL of \(i)") }
        for order in ["highest", "lowest"] {
            let selector = try LossSelector(order: order)
            let described = try XCTUnwrap(selector.describe(SelectionPool(step: 0, seed: 0, candidates: [], features: feats, referenceFeatures: [], keep: 1)).first)
            XCTAssertEqual(described.0, "loss")
            XCTAssertEqual(described.1.count, n)
            for (i, (g, w)) in zip(described.1, mean).enumerated() { XCTAssertEqual(g, w, accuracy: 1e-5, "\(order): loss[\(i)]") }
            let ranked = (0..<n).sorted { order == "highest" ? mean[$0] > mean[$1] : mean[$0] < mean[$1] }
            for keep in 1...n {
                let decision = selector.select(SelectionPool(step: 0, seed: 0, candidates: [], features: feats, referenceFeatures: [], keep: keep))
                XCTAssertEqual(decision.selected, ranked.prefix(keep).sorted(), "\(order), keep \(keep)")
            }
        }
        XCTAssertEqual(try LossSelector(order: "highest").select(SelectionPool(step: 0, seed: 0, candidates: [], features: feats, referenceFeatures: [], keep: 2)).selected, [0, 3])
        XCTAssertEqual(try LossSelector(order: "lowest").select(SelectionPool(step: 0, seed: 0, candidates: [], features: feats, referenceFeatures: [], keep: 2)).selected, [2, 4])
        // A candidate without loss tokens (features [0, 0]) trains nothing: last in either order
        // (its mean loss 0 made it the easiest, chosen first under order=lowest).
        let withEmpty = feats + [[0, 0]]
        for order in ["highest", "lowest"] {
            let d = try LossSelector(order: order).select(SelectionPool(step: 0, seed: 0, candidates: [], features: withEmpty, referenceFeatures: [], keep: 2))
            XCTAssertEqual(d.selected, order == "highest" ? [0, 3] : [2, 4], order)
            XCTAssertEqual(try LossSelector(order: order).select(SelectionPool(step: 0, seed: 0, candidates: [], features: withEmpty, referenceFeatures: [], keep: 6)).selected,
                           Array(0...5), "\(order): chosen only when nothing else is left")
        }
    }

    /// `random` is the equal-budget baseline: its choice is its sampler's, a function of (seed,
    /// step) alone. The same pool with no features, the loss features, and those features
    /// permuted or reversed gives the same choice at every step; the choice is keep distinct
    /// indices in range, ascending; another seed changes it at some step; and over 6000 steps
    /// every candidate of 6 is chosen about keep/6 of the time (2000 at keep 2, σ ≈ 36.5: within
    /// 5σ), which a choice leaning on the order or the scores would not be.
    func testRandomSelectorIgnoresScoresAndIsUniformPerSeedAndStep() throws {
        let selector = RandomSelector()
        XCTAssertNil(selector.scorer, "random runs no scoring pass")
        let candidates = (0..<6).map { StepSequence(example: $0, origin: .demonstration, ids: [1, 2], lossMask: [0, 1], promptLength: 1) }
        let feats = Self.currentTokenLosses.map(lossFeatures)
        let featureSets: [[[Float]]] = [candidates.map { _ in [] }, feats, [3, 5, 0, 4, 1, 2].map { feats[$0] }, feats.reversed()]
        func choice(_ f: [[Float]], seed: UInt64, step: Int, keep: Int = 2) -> [Int] {
            selector.select(SelectionPool(step: step, seed: seed, candidates: candidates, features: f, referenceFeatures: f, keep: keep)).selected
        }
        var counts = [Int](repeating: 0, count: 6), differsAcrossSeeds = false
        for step in 0..<6000 {
            let chosen = choice(featureSets[0], seed: 11, step: step)
            for f in featureSets.dropFirst() { XCTAssertEqual(choice(f, seed: 11, step: step), chosen, "step \(step): scores changed the choice") }
            XCTAssertEqual(choice(featureSets[0], seed: 11, step: step), chosen, "step \(step): not a function of (seed, step)")
            XCTAssertEqual(chosen.count, 2)
            XCTAssertEqual(chosen, Array(Set(chosen)).sorted(), "step \(step): distinct and ascending")
            XCTAssertTrue(chosen.allSatisfy { (0..<6).contains($0) })
            for i in chosen { counts[i] += 1 }
            if choice(featureSets[0], seed: 12, step: step) != chosen { differsAcrossSeeds = true }
        }
        XCTAssertTrue(differsAcrossSeeds, "the seed changes the choice")
        for (i, c) in counts.enumerated() { XCTAssertEqual(Double(c), 2000, accuracy: 5 * 36.5, "candidate \(i) chosen \(c) of 6000 steps") }
        XCTAssertEqual(choice(feats, seed: 11, step: 3, keep: 6), Array(0..<6), "keep = pool: everything")
        XCTAssertEqual(choice(feats, seed: 11, step: 3, keep: 9), Array(0..<6), "keep above the pool: everything once")
    }

    /// numpy.quantile's linear interpolation, by hand: [1, 2, 4, 8] at 0.25 → 1.75, at 0.9 → 6.8.
    func testQuantileIsNumpyLinear() {
        XCTAssertEqual(QTuningSelector.quantile([8, 1, 4, 2], 0.25), 1.75, accuracy: 1e-12)
        XCTAssertEqual(QTuningSelector.quantile([8, 1, 4, 2], 0.9), 6.8, accuracy: 1e-12)
        // Neighbour smoothing by hand: PPL [2, 10, 1, 1], λ = 0.5 → s = [4, 5.75, 3.25, 1]; keep 2 → tokens 2, 3.
        XCTAssertEqual(QTuningSelector.keptTokens(ppl: [2, 10, 1, 1], lambda: 0.5, budget: 0.5), [2, 3])
    }
}
