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
        ("token-clean", [:]), ("token-clean", ["scores": "online"]), ("token-clean", ["ratio": "0.3", "scores": "online"]),
        ("forgetting", [:]), ("forgetting", ["scores": "online"]), ("forgetting", ["ratio": "0.4", "p_floor": "0.1", "scores": "online"]),
        ("dpo", [:]), ("dpo", ["beta": "2"]),
        // TRL's other pairwise loss types (DPOLoss.swift); ipo and sppo_hard with a wider step
        // (testFiniteDifferences).
        ("dpo", ["loss_type": "hinge", "beta": "0.5"]), ("dpo", ["loss_type": "ipo"]),
        ("dpo", ["loss_type": "exo_pair", "label_smoothing": "0.2", "beta": "0.5"]), ("dpo", ["loss_type": "nca_pair", "beta": "0.5"]),
        ("dpo", ["loss_type": "robust", "label_smoothing": "0.2", "beta": "0.5"]), ("dpo", ["loss_type": "bco_pair", "beta": "0.5"]),
        ("dpo", ["loss_type": "sppo_hard", "beta": "0.5"]), ("dpo", ["loss_type": "apo_zero", "beta": "0.5"]),
        ("dpo", ["loss_type": "apo_down", "beta": "0.5"]), ("dpo", ["loss_type": "discopop", "discopop_tau": "0.3", "beta": "0.5"]),
        ("dpo", ["loss_type": "sigmoid_norm", "beta": "0.5"]),
        ("dpo", ["f_divergence_type": "forward_kl", "beta": "0.5"]), ("dpo", ["f_divergence_type": "js_divergence", "loss_type": "robust", "label_smoothing": "0.1"]),
        ("dpo", ["f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": "0.3", "loss_type": "discopop", "beta": "0.5"]),
        ("dpo", ["ld_alpha": "0.3", "beta": "0.5"]), ("dpo", ["use_weighting": "true", "beta": "0.5", "loss_type": "hinge"]),
        ("dpo", ["loss_type": "sft"]), ("dpo", ["loss_type": "sigmoid,bco_pair,sft", "loss_weights": "0.8,0.2,1", "beta": "0.5", "ld_alpha": "0.5"]),
        ("online-dpo", ["beta": "0.5"]), ("online-dpo", ["loss_type": "ipo", "beta": "0.5"]),
        ("cpo", [:]), ("cpo", ["loss_type": "simpo", "beta": "2", "label_smoothing": "0.1"]), ("cpo", ["loss_type": "ipo", "beta": "0.5"]),
        ("cpo", ["loss_type": "hinge", "beta": "0.5"]), ("cpo", ["alpha": "0.1", "beta": "0.05", "cpo_alpha": "0.2"]), ("orpo", [:]), ("orpo", ["beta": "1"]),
        // TPO's triples (the gold answers' NLL); at tpo_alpha 0 pairs alone, as the loader reads no gold.
        ("tpo", [:]), ("tpo", ["loss_type": "tpo-l", "beta": "2", "label_smoothing": "0.1", "tpo_l_gamma": "1"]),
        ("tpo", ["loss_type": "ipo", "beta": "0.5", "tpo_alpha": "0.5"]), ("tpo", ["loss_type": "hinge", "beta": "0.5"]),
        ("tpo", ["tpo_alpha": "0", "beta": "0.5"]),
        // A*-PO's regression of each rollout's β2-scaled log-ratio to the reference onto its advantage
        // (at β2 = 2 the squared error of this batch's log-ratio sums, ~100, puts the float32 central
        // differences 1e-4 past the floor; A2POTests checks β2 = 2 against TRL's float64 autograd).
        ("a2po", ["beta2": "0.5"]), ("a2po", ["beta2": "0.1"]),
        ("grpo", [:]), ("grpo", ["loss_type": "grpo"]), ("grpo", ["loss_type": "bnpo"]), ("grpo", ["loss_type": "dr_grpo"]),
        ("grpo", ["beta": "0.3", "epsilon": "0.1", "epsilon_high": "0.15", "loss_type": "grpo"]),
        ("grpo", ["beta": "0.3", "epsilon": "0.1", "use_bias_correction_kl": "false"]),
        ("grpo", ["importance_sampling_level": "sequence", "loss_type": "grpo"]),
        ("grpo", ["importance_sampling_level": "sequence", "beta": "0.3", "epsilon": "0.05", "epsilon_high": "0.1"]),
        // (Not dr_grpo: with this batch's max_completion_length of 1 its loss is large enough that the float32
        // central differences of the scored-data rows below drift by 0.5 % between h = 3e-2 and 1e-3, even
        // at the token level; dr_grpo at the sequence level is checked against TRL's autograd in GRPOReferenceTests.)
        ("grpo", ["importance_sampling_level": "sequence", "beta": "0.3", "use_bias_correction_kl": "false", "loss_type": "bnpo"]),
        ("grpo", ["delta": "1.1", "epsilon": "0.05", "loss_type": "bnpo"]),
        ("grpo", ["delta": "1.05", "epsilon_high": "0.3"]),   // δ < 1 + ε_high: the clipped term's live gradient
        ("grpo", ["top_entropy_quantile": "0.3", "beta": "0.3"]),
        ("grpo", ["loss_type": "cispo", "epsilon_high": "1.1", "beta": "0.3"]), ("grpo", ["loss_type": "cispo", "epsilon_high": "5"]),
        ("grpo", ["top_entropy_quantile": "0.5", "importance_sampling_level": "sequence", "loss_type": "grpo", "beta": "0.2"]),
        // The entropy bonus (every token, the top ρ), the off-policy mask (δ −100: every A < 0 rollout).
        ("grpo", ["entropy_coef": "0.3", "beta": "0.3"]), ("grpo", ["entropy_coef": "-0.2", "top_entropy_quantile": "0.5", "loss_type": "bnpo"]),
        ("grpo", ["entropy_coef": "0.2", "importance_sampling_level": "sequence", "loss_type": "grpo", "off_policy_mask_threshold": "-100"]),
        ("grpo", ["off_policy_mask_threshold": "-100", "beta": "0.3", "epsilon": "0.05"]),
        // SAPO's gate at both levels, LUSPO's length-scaled sequence term.
        ("grpo", ["loss_type": "sapo", "beta": "0.3"]), ("grpo", ["loss_type": "sapo", "importance_sampling_level": "sequence", "sapo_temperature_neg": "3"]),
        ("grpo", ["loss_type": "luspo", "importance_sampling_level": "sequence", "epsilon": "0.05", "beta": "0.2"]),
        ("grpo", ["loss_type": "vespo", "beta": "0.3"]), ("grpo", ["loss_type": "vespo", "vespo_k_neg": "1", "vespo_lambda_neg": "0.5"]),
        ("chord", [:]), ("chord", ["phi": "false", "mu_peak": "0.7", "mu_valley": "0.7", "epsilon": "0.1"]),
        ("chord", ["mu_warmup": "2", "mu_decay": "3", "mu_peak": "0.5", "mu_valley": "0.05"]),
        ("chord", ["clip_ratio_c": "1.05"]),
        ("spin", [:]), ("spin", ["beta": "2"]),
        ("srft", [:]), ("srft", ["sft_coef": "1.5", "rl_coef": "0.3"]),
        ("uft", [:]), ("uft", ["sft_coef": "0.7", "beta": "0.2", "entropy_coef": "0.3", "epsilon": "0.1"]),
        ("prefix-rft", [:]), ("prefix-rft", ["entropy_mask": "0.3", "entropy_coef": "0.4", "epsilon": "0.1", "epsilon_high": "0.3"]),
        ("relift", [:]), ("relift", ["loss_type": "grpo", "epsilon": "0.1"]),
        ("superhf", [:]), ("superhf", ["kl_coefficient": "2"]),
        // TRL's two ends (forward and reverse KL) and the mixture between them.
        ("gkd", [:]), ("gkd", ["beta": "0"]), ("gkd", ["beta": "1"]), ("gkd", ["beta": "0.15"]),
        // KL term positive (the batch's mismatched sequence), weights apart; and APO's unpaired form.
        ("kto", [:]), ("kto", ["beta": "2", "desirable_weight": "1.3", "undesirable_weight": "0.7"]),
        ("kto", ["loss_type": "apo_zero_unpaired", "beta": "1.5"]),
        // One ratio per rollout from its summed log-ratios; a narrow clip, and a wide one (beta only
        // decides whether a reference is loaded: its penalty is in the producer's advantages).
        ("rloo", [:]), ("rloo", ["epsilon": "0.05", "epsilon_high": "0.1"]), ("rloo", ["epsilon": "0.5", "epsilon_high": "1", "beta": "0"]),
        // The geometric mean of log-space-clipped token ratios: TRL's ε = 0.4, a narrow clip both
        // ways, and the KL term (k3 averaged over each rollout).
        ("gmpo", [:]), ("gmpo", ["epsilon": "0.05", "epsilon_high": "0.1"]), ("gmpo", ["epsilon": "0.1", "epsilon_high": "0.2", "beta": "0.3"]),
        ("gmpo", ["top_entropy_quantile": "0.4", "beta": "0.3"]),
        // A reward model's one score per position (pair 0 with a margin); with the centring term.
        ("reward", [:]), ("reward", ["center_rewards_coefficient": "0.05"]),
    ]

    /// The random batch, as preference pairs for pair objectives (and spin, whose producer pairs
    /// rows), with confident targets for power.
    func batch(_ name: String, _ args: [String: String] = [:]) throws -> ObjectiveTestBatch {
        let r = try makeObjective(name, args).requirements
        // scores=fixed: the rows carry the labels the trainer scored before the first step.
        if r.tokenLabels { return ObjectiveTestBatch.random().labelled([1, 0, 1, 1, 0, 1, 0, 1, 0, 1]) }
        // online-dpo's rollouts are ranked pairs: the pair batch stands in for them, with logits
        // half as spread, as its ipo squares the log-ratio sums unaveraged (at 1.5 their float32
        // round-off, times the slope 2·(c − r − 1/(2β)), passed the finite differences' floor).
        if r.rolloutsPerPrompt == 2 { return .randomPairs(spread: 0.75) }
        // reward: one score per position (logits [N, 1]), read at each answer's last row; pair 0 has a margin.
        if r.sequenceScores {
            let batch = ObjectiveTestBatch.randomPairs(vocab: 1, spread: 2)
            batch.sequences[0].margin = 0.7
            return batch
        }
        if r.goldAnswers { return .randomTriples() }
        if r.pairs || name == "spin" { return .randomPairs() }
        if r.unpaired { return .randomUnpaired() }
        if r.rollouts {
            // Mixing objectives (chord) see the middle sequence as a demonstration.
            let batch = ObjectiveTestBatch.randomRollouts()
            if name == "chord" || name == "srft" { batch.sequences[1].origin = .demonstration }
            // Revealed-prefix objectives: sequences 0 and 2 continue a prefix of two tokens (rows 0, 1 and 7, 8).
            if name == "uft" || name == "prefix-rft" { for s in [0, 2] { batch.sequences[s].promptLength = 3; batch.sequences[s].origin = .prefixRollout } }
            return batch
        }
        // power's default α = 10 weighs tokens by p^10: on `random` its gradient is ~3e-8.
        if name == "power" { return .confident() }
        return .random()
    }

    func testEveryNameIsRegisteredAndCovered() throws {
        for name in ObjectiveRegistry.names {
            XCTAssertEqual(try makeObjective(name).name, name)
            XCTAssertTrue(Self.configurations.contains { $0.0 == name }, "\(name) has no gradient test configuration")
        }
    }

    func testFiniteDifferences() throws {
        for (name, args) in Self.configurations {
            let batch = try batch(name, args)
            let context = batch.context(step: 3, totalSteps: 4)   // forgetting's λ > 0
            // dpo's ipo and sppo_hard square log-ratio sums that reach ±10 on this batch: the slope
            // multiplies the float32 round-off of those sums (≈ 1e-6) by 2·(c − 1/(2β)), which at
            // h = 1e-2 puts the central differences past the 2e-5 floor (2e-4 seen); a step 5× wider
            // divides that noise by 5. DPOTests checks both against float64 autograd. tpo's ipo on the
            // triples (the pair term plus the gold NLL) sat 3e-5 past the floor at h = 1e-2 for the
            // same reason; TPOObjectiveTests checks it against TRL's autograd to 1e-5.
            let squared = (name == "dpo" && ["ipo", "sppo_hard"].contains(args["loss_type"] ?? "")) || (name == "tpo" && args["loss_type"] == "ipo")
            // rloo's one ratio per rollout is the exp of its summed log-probs: A·c multiplies the
            // float32 round-off of the per-token log-probs in that sum, which at h = 1e-2 put an
            // unclipped rollout (c = 1.66) 9e-6 past the floor; a step twice as wide halves that noise.
            let h: Float = squared ? 5e-2 : name == "rloo" ? 2e-2 : 1e-2
            let excess = batch.finiteDifferenceError(try makeObjective(name, args), context: context, h: h,
                                                     label: "\(name) \(args)")
            XCTAssertLessThanOrEqual(excess, 0, "\(name) \(args): worst |FD − grad| beyond 0.1 % + 2e-5")
        }
    }

    /// rloo, gmpo and the PPO-clip objectives on a generation's first step: π_old is the current
    /// weights, detached (held at the unperturbed logits), so the ratio is 1 there and only the perturbation moves it; with c
    /// near 1, A·c does not amplify the round-off as the off-policy rows' c = 1.66 does (h = 1e-2 holds).
    func testRLOOOnPolicyFiniteDifferences() throws {
        // Every objective with a sampler's log-probs: on a generation's first step π_old is π_θ
        // itself, detached (ratio 1), whose gradient the finite differences see at the unperturbed logits.
        // (Not luspo: its loss sums each rollout's tokens, so with the ratio at 1 its float32 central
        // differences sit just past the 2e-5 floor, as on scored data below.)
        for (name, args) in Self.configurations where ["rloo", "gmpo", "grpo", "chord", "uft", "prefix-rft", "relift"].contains(name)
            && args["loss_type"] != "luspo" {
            let batch = try batch(name, args)
            var context = batch.context(step: 0, totalSteps: 4)
            context.onPolicy = true
            let excess = batch.finiteDifferenceError(try makeObjective(name, args), context: context, label: "\(name) on-policy \(args)")
            XCTAssertLessThanOrEqual(excess, 0, "\(name) on-policy \(args): worst |FD − grad| beyond 0.1 % + 2e-5")
        }
    }

    /// ReLIFT's rows above only see rollouts (its RL step); its SFT step (a batch of
    /// demonstrations, `ReLIFTObjective.isSFTStep`) is checked here, at both argument sets.
    func testReLIFTSFTStepFiniteDifferences() throws {
        for (name, args) in Self.configurations where name == "relift" {
            let batch = try batch(name)
            for s in batch.sequences.indices { batch.sequences[s].origin = .demonstration }
            XCTAssertTrue(ReLIFTObjective.isSFTStep(batch.sequences))
            let excess = batch.finiteDifferenceError(try makeObjective(name, args), context: batch.context(step: 3, totalSteps: 4),
                                                     label: "relift SFT step \(args)")
            XCTAssertLessThanOrEqual(excess, 0, "relift SFT step \(args): worst |FD − grad| beyond 0.1 % + 2e-5")
        }
    }

    /// Scored data (`ScoredDataProducer`: rewarded rows, no sampler) trains grpo without
    /// behaviour log-probs, and the ratio's denominator is π_θ detached (TRL with old =
    /// logp.detach(); ReLIFTReferenceTests). Its gradient is then that of the clipped surrogate
    /// with π_behaviour held at the batch's own log-probs (ratio 1, inside every clip range),
    /// plus k3's when β > 0: the rows above without `behaviour`, at every grpo argument set.
    func testGRPOScoredDataFiniteDifferences() throws {
        // (Not luspo: its loss sums each rollout's tokens, so with the ratio at 1 its float32 central
        // differences sit just past the 2e-5 floor; on scored data it is checked against TRL's
        // autograd in ReLIFTReferenceTests.)
        for (name, args) in Self.configurations where name == "grpo" && args["loss_type"] != "luspo" {
            let batch = try batch(name)
            batch.behaviour = []
            let excess = batch.finiteDifferenceError(try makeObjective(name, args), context: batch.context(step: 3, totalSteps: 4),
                                                     label: "grpo on scored data \(args)")
            XCTAssertLessThanOrEqual(excess, 0, "grpo on scored data \(args): worst |FD − grad| beyond 0.1 % + 2e-5")
        }
    }

    /// (Not orpo: its NLL term covers the chosen sequences' prompt tokens too, as TRL's
    /// ORPOTrainer, so their unmasked-for-the-loss rows train; PreferenceObjectiveTests checks it.)
    func testMaskedRowsGetNoGradient() throws {
        // (Nor reward: a reward is read at its sequence's last token, whatever the loss mask, as
        // TRL's RewardTrainer, which has none; row 2 is sequence 0's last.)
        for (name, args) in Self.configurations where name != "orpo" && name != "reward" {
            let batch = try batch(name)
            let run = try batch.train(name, args)
            for r in [2, 7] {
                XCTAssertEqual(run.grad[r * batch.vocab..<(r + 1) * batch.vocab].map { $0 }, [Float](repeating: 0, count: batch.vocab),
                               "\(name): masked row \(r)")
            }
            XCTAssertTrue(run.loss.isFinite, name)
        }
    }

    /// The same global batch through the trainer as one micro-batch, as three, and on two and
    /// three ranks (ranks as threads): the same loss, gradient and diagnostics — what makes
    /// `-n 1` and `-n 2` agree.
    func testSplitInvariance() throws {
        for (name, args) in Self.configurations {
            let batch = try batch(name)
            let whole = try batch.train(name, args, microBatchSize: 3, step: 3, totalSteps: 4)
            for (ranks, micro) in [(1, 1), (2, 1), (3, 1), (2, 2)] {
                let split = try batch.train(name, args, ranks: ranks, microBatchSize: micro, step: 3, totalSteps: 4)
                let label = "\(name) \(args) at \(ranks) rank(s), micro-batches of \(micro)"
                XCTAssertEqual(split.loss, whole.loss, accuracy: 1e-9 * max(1, abs(whole.loss)), "\(label): loss")
                let diff = zip(split.grad, whole.grad).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(diff, 1e-7, "\(label): grad")
                XCTAssertEqual(Set(split.diagnostics.keys), Set(whole.diagnostics.keys), label)
                for (key, v) in whole.diagnostics {
                    XCTAssertEqual(split.diagnostics[key] ?? .nan, v, accuracy: 1e-6 * max(1, abs(v)), "\(label): \(key)")
                }
            }
        }
    }

    func testDFTGradientEqualsPGradient() throws {
        let batch = ObjectiveTestBatch.random()
        let dft = try batch.train("dft"), p = try batch.train("p")
        for (a, b) in zip(dft.grad, p.grad) { XCTAssertEqual(a, b, accuracy: 1e-7) }
        XCTAssertNotEqual(dft.loss, p.loss)   // same gradient, different loss value
    }

    func testTALRWithTauOneIsDFT() throws {
        // Logits in ±0.5 over V = 7 keep every p above TALR's 0.01 weight floor.
        let batch = ObjectiveTestBatch.random(seed: 3, spread: 0.25)
        let dft = try batch.train("dft"), talr = try batch.train("talr", ["tau": "1"])
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
                sum += Double(SoftmaxKernels.logSumExp(z, count: batch.vocab) - z[Int(batch.targets[r])]); n += 1
            }
            means.append(sum / n)
        }
        XCTAssertEqual(try batch.train("talr", ranks: 2).diagnostics["tau"] ?? .nan, means.sorted()[1], accuracy: 1e-5)
        // Even count: the lower of the two middle values (torch.median), from two sequences.
        let V = batch.vocab
        let two = ObjectiveTestBatch(vocab: V, logits: Array(UnsafeBufferPointer(start: batch.logits, count: 7 * V)),
                                     targets: Array(batch.targets[0..<7]), mask: Array(batch.mask[0..<7]),
                                     sequenceId: Array(batch.sequenceId[0..<7]))
        XCTAssertEqual(try two.train("talr").diagnostics["tau"] ?? .nan, means[0...1].sorted()[0], accuracy: 1e-5)
    }

    func testOTRReproducibleAndSeeded() throws {
        let batch = ObjectiveTestBatch.random()
        let a = try batch.train("otr", seed: 1), b = try batch.train("otr", seed: 1)
        XCTAssertEqual(a.loss, b.loss); XCTAssertEqual(a.grad, b.grad)
        let c = try batch.train("otr", seed: 2)
        XCTAssertNotEqual(a.grad, c.grad)
        // β = 0 with many draws approaches the DFT-like weight π(y) (τ = 1).
        let many = try batch.train("otr", ["k": "4000", "beta": "0"]), dft = try batch.train("dft")
        XCTAssertEqual(many.loss, dft.loss, accuracy: 0.02)
    }

    /// Token selection is global on all ranks — over the step (online) or over the training
    /// set (fixed; here the step is the whole set): with 8 loss tokens over two ranks, exactly
    /// ⌈ratio·8⌉ are kept.
    func testSelectionKeepsGlobalTopRatio() throws {
        let batch = ObjectiveTestBatch.random()
        for ratio in [0.25, 0.5, 1.0] {
            for scores in ["online", "fixed"] {
                let run = try batch.train("token-clean", ["ratio": "\(ratio)", "scores": scores], ranks: 2)
                XCTAssertEqual(run.diagnostics["kept_ratio"] ?? .nan, (ratio * 8).rounded(.up) / 8, accuracy: 1e-12, "kept tokens, \(scores)")
            }
        }
        let threshold = try batch.train("threshold", ["variant": "top-p", "q": "0.15"], ranks: 2)
        XCTAssertGreaterThan(threshold.diagnostics["kept_ratio"] ?? .nan, 0)
        XCTAssertLessThan(threshold.diagnostics["kept_ratio"] ?? .nan, 1)
    }

    func testArgumentValidation() {
        func message(_ name: String, _ args: [String: String]) -> String {
            do { _ = try makeObjective(name, args); return "" } catch { return "\(error)" }
        }
        let rejected: [(String, [String: String], String)] = [
            ("power", ["alpha": "0"], "alpha"), ("power", ["alpha": "-2"], "alpha"), ("power", ["alpha": "ten"], "alpha=ten is not a decimal number"),
            ("power", ["alpha": "0x10"], "alpha=0x10 is not a decimal number"),
            // uft's schedule values read hexadecimal (upper=0x1p-1 was 0.5); online-dpo's beta named objective dpo.
            ("uft", ["upper": "0x1p-1"], "objective uft: upper=0x1p-1 is not a decimal number"), ("uft", ["upper": "nan"], "objective uft: upper=nan is not a finite number"),
            ("online-dpo", ["beta": "0"], "objective online-dpo: beta must be > 0, got 0.0"),
            // Finite as written, beyond float32: said "is not a finite number".
            ("talr", ["tau": "1e308"], "tau=1e308 is beyond float32's range"), ("talr", ["tau": "inf"], "tau=inf is not a finite number"),
            // Below float32's normal range: read as 0 (said "beta must be > 0, got 0.0") or a
            // subnormal that trained with a zero gradient.
            ("dpo", ["beta": "1e-300"], "beta=1e-300 is too close to 0 for float32"), ("dpo", ["beta": "1e-40"], "beta=1e-40 is too close to 0 for float32"),
            ("dpo", ["loss_type": "kto"], "objective dpo: unknown loss_type kto; known: sigmoid, hinge, ipo"),
            ("dpo", ["loss_type": "aot"], "unknown loss_type aot (aot, which TRL has too, is not here)"),
            ("dpo", ["label_smoothing": "0.1"], "label_smoothing is read by loss_type robust and exo_pair; with loss_type sigmoid it does nothing"),
            ("dpo", ["loss_type": "ipo", "discopop_tau": "0.1"], "discopop_tau is read by loss_type discopop; with loss_type ipo it does nothing"),
            ("dpo", ["loss_type": "robust", "label_smoothing": "0.5"], "label_smoothing must be in [0, 0.5) for loss_type robust"),
            ("dpo", ["loss_type": "exo_pair"], "label_smoothing must be in (0, 1) for loss_type exo_pair"),
            ("dpo", ["loss_type": "discopop", "discopop_tau": "0"], "discopop_tau must be > 0"),
            ("dpo", ["f_divergence_type": "tv"], "unknown f_divergence_type tv; known: reverse_kl, forward_kl, js_divergence, alpha_divergence"),
            ("dpo", ["f_divergence_type": "forward_kl", "loss_type": "bco_pair"], "f_divergence_type forward_kl changes the loss types built on the chosen − rejected difference"),
            ("dpo", ["ld_alpha": "1.5"], "ld_alpha must be in [0, 1]"),
            ("dpo", ["use_weighting": "yes"], "use_weighting must be true or false (got yes)"),
            ("dpo", ["loss_type": "sigmoid,sft", "loss_weights": "1"], "loss_weights has 1 weight(s) for 2 loss type(s) (sigmoid,sft)"),
            ("dpo", ["loss_type": "sigmoid,sft", "loss_weights": "1,x"], "loss_weights=1,x: x is not a finite number"),
            ("dpo", ["loss_type": "sigmoid,sft", "loss_weights": "1,-0.5"], "loss_weights must be finite and ≥ 0, got -0.5"),
            ("dpo", ["loss_type": "sigmoid,sigmoid"], "loss_type lists sigmoid twice"),
            ("dpo", ["loss_type": "sigmoid,"], "loss_type=sigmoid, holds an empty type"),
            ("dpo", ["loss_type": "sigmoid,sft", "use_weighting": "true"], "use_weighting weighs each pair's loss; the sft type is a mean"),
            ("dpo", ["loss_type": "sft,bco_pair", "f_divergence_type": "js_divergence"], "not bco_pair, as TRL"),
            ("dpo", ["loss_type": "sigmoid,hinge", "label_smoothing": "0.1"], "with loss_type sigmoid,hinge it does nothing"),
            ("cpo", ["loss_type": "kto"], "objective cpo: unknown loss_type kto; known: sigmoid, hinge, ipo, simpo, alphapo"),
            ("cpo", ["loss_type": "hinge", "label_smoothing": "0.1"], "label_smoothing is read by loss_type sigmoid and simpo; with loss_type hinge it does nothing"),
            ("cpo", ["simpo_gamma": "1"], "simpo_gamma is read by loss_type simpo; with loss_type sigmoid it does nothing"),
            ("cpo", ["loss_type": "alphapo", "cpo_alpha": "1"], "loss_type alphapo is simpo with cpo_alpha 0"),
            ("cpo", ["cpo_alpha": "-1"], "cpo_alpha must be ≥ 0"), ("cpo", ["beta": "0"], "beta must be > 0"),
            ("cpo", ["label_smoothing": "0.5"], "label_smoothing must be in [0, 0.5)"), ("orpo", ["beta": "-1"], "beta must be > 0"),
            ("orpo", ["lambda": "0.1"], "unknown argument(s) lambda"),
            ("tpo", ["loss_type": "simpo"], "objective tpo: unknown loss_type simpo; known: sigmoid, hinge, ipo, tpo-l"),
            ("tpo", ["loss_type": "ipo", "label_smoothing": "0.1"], "objective tpo: label_smoothing is read by loss_type sigmoid and tpo-l; with loss_type ipo it does nothing"),
            ("tpo", ["tpo_l_gamma": "1"], "objective tpo: tpo_l_gamma is read by loss_type tpo-l; with loss_type sigmoid it does nothing"),
            ("tpo", ["tpo_alpha": "-1"], "objective tpo: tpo_alpha must be ≥ 0"), ("tpo", ["cpo_alpha": "1"], "unknown argument(s) cpo_alpha"),
            ("dpo", ["f_alpha_divergence_coef": "0.3"], "f_alpha_divergence_coef is read by f_divergence_type alpha_divergence; with reverse_kl it does nothing"),
            ("threshold", ["variant": "top-p", "q": "1"], "q must be in [0, 1)"),
            ("threshold", ["variant": "bottom-logp", "q": "0"], "q must be in (0, 1]"),
            ("threshold", ["variant": "middle"], "variant=middle"),
            ("asft", ["kl_weight": "-0.1"], "kl_weight"),
            ("superhf", ["kl_coefficient": "-1"], "kl_coefficient"),
            ("gkd", ["beta": "1.5"], "beta must be in [0, 1]"), ("gkd", ["lmbda": "-0.1"], "lmbda must be in [0, 1]"),
            ("gkd", ["seq_kd": "yes"], "seq_kd"), ("gkd", ["alpha": "1"], "unknown argument(s) alpha"),
            ("psft", ["clip_low": "1"], "clip_low"), ("psft", ["clip_high": "-0.1"], "clip_high"),
            ("psft", ["refresh": "0"], "refresh"), ("psft", ["refresh": "1.5"], "refresh must be an integer in 1…100000000 (got 1.5)"),
            ("talr", ["tau": "0"], "tau"), ("talr", ["floor": "2"], "floor"),
            ("iwsft", ["temp": "0"], "temp"), ("iwsft", ["w_max": "0"], "w_max"),
            ("otr", ["k": "0"], "k must be an integer in 1…4096 (got 0)"), ("otr", ["k": "1000000000"], "k must be an integer in 1…4096"), ("otr", ["temperature": "0"], "temperature"), ("otr", ["beta": "0.5"], "beta"),
            ("token-clean", ["ratio": "0"], "ratio"), ("token-clean", ["ratio": "1.5"], "ratio"),
            ("forgetting", ["ratio": "0"], "ratio"), ("forgetting", ["lambda_max": "0.1", "lambda_min": "0.2"], "lambda_max"),
            ("forgetting", ["lambda_min": "-1"], "lambda_min"), ("forgetting", ["p_floor": "1"], "p_floor"),
            ("token-clean", ["scores": "offline"], "scores must be fixed or online (got offline)"),
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
        for name in ["asft", "iwsft"] {
            XCTAssertTrue(try makeObjective(name).requirements.referenceModel, name)
        }
        XCTAssertTrue(try makeObjective("threshold").requirements.statisticsPass)
        for name in ["token-clean", "forgetting"] {
            // Fixed scores by default (the papers'): labels once before training, no per-step reference.
            let fixed = try makeObjective(name).requirements, online = try makeObjective(name, ["scores": "online"]).requirements
            XCTAssertTrue(fixed.tokenLabels && !fixed.referenceModel && !fixed.statisticsPass, name)
            XCTAssertTrue(!online.tokenLabels && online.referenceModel && online.statisticsPass, name)
        }
        XCTAssertEqual((try makeObjective("power") as? PowerObjective)?.alpha, 10)
        XCTAssertEqual((try makeObjective("asft") as? AnchoredSFTObjective)?.klWeight, 0.1)
        XCTAssertEqual((try makeObjective("superhf") as? SuperHFObjective)?.klCoefficient, 0.35)
        XCTAssertTrue(try makeObjective("superhf").requirements.referenceModel)
        let otr = try XCTUnwrap(try makeObjective("otr") as? OTRObjective)
        XCTAssertEqual([Float(otr.k), otr.temperature, otr.beta], [8, 1, -0.1])
    }
}
