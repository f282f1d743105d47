/// Objectives by name, with their `--objective-arg key=value` parameters.
/// One line per method; each method lives in its own file.
public enum ObjectiveRegistry {
    public static let names = ["nll", "dft", "p", "power", "threshold", "asft", "psft", "talr", "iwsft", "otr",
                               "token-clean", "forgetting", "dpo", "grpo", "chord", "spin", "srft", "relift",
                               "superhf"]
        + ["uft", "prefix-rft", "cpo", "orpo", "online-dpo", "gkd", "kto", "rloo", "reward", "gmpo", "tpo", "a2po"]

    public static func make(name: String, args: [String: String]) throws -> Objective {
        try build(name: name, args: args).objective
    }

    /// Every argument the objective reads, as the value it trains with (defaults included,
    /// numbers as float32 or Int text): `alpha=10` spelled out and left out resolve alike.
    public static func resolvedArguments(name: String, args: [String: String]) throws -> [String: String] {
        try build(name: name, args: args).resolved
    }

    /// The resolved arguments and the defaults an objective leaves out of them (dpo's
    /// loss_type sigmoid, f_divergence_type reverse_kl, use_weighting false): the start-up
    /// `methods:` line shows every argument read, defaults included.
    public static func shownArguments(name: String, args: [String: String]) throws -> [String: String] {
        let built = try build(name: name, args: args)
        return built.resolved.merging(built.shownDefaults) { given, _ in given }
    }

    static func build(name: String, args: [String: String]) throws -> (objective: Objective, resolved: [String: String], shownDefaults: [String: String]) {
        var args = ObjectiveArgs(objective: name, values: args)
        let objective: Objective
        switch name {
        case "nll": objective = try NLLObjective(labelSmoothing: try args.float("label_smoothing", default: 0))
        case "dft": objective = DFTObjective()
        case "p": objective = PObjective()
        case "power": objective = try PowerObjective(alpha: try args.float("alpha", default: 10))
        case "threshold":
            objective = try ThresholdObjective(variant: args.string("variant", default: "top-p"),
                                               q: try args.float("q", default: 0.5))
        case "asft": objective = try AnchoredSFTObjective(klWeight: try args.float("kl_weight", default: 0.1))
        case "psft":
            objective = try PSFTObjective(clipLow: try args.float("clip_low", default: 0.2),
                                          clipHigh: try args.float("clip_high", default: 0.28),
                                          refresh: try args.int("refresh", default: 8, in: 1...100_000_000))
        case "talr":
            objective = try TALRObjective(tau: try args.optionalFloat("tau"), floor: try args.float("floor", default: 0.01))
        case "iwsft":
            objective = try IWSFTObjective(temp: try args.float("temp", default: 1), wMax: try args.float("w_max", default: 16))
        case "otr":
            objective = try OTRObjective(k: try args.int("k", default: 8, in: 1...4096),
                                         temperature: try args.float("temperature", default: 1),
                                         beta: try args.float("beta", default: -0.1))
        case "token-clean": objective = try TokenCleanObjective(ratio: try args.floatAsGiven("ratio", default: 0.6), scores: try tokenScores(&args))
        case "forgetting":
            objective = try ForgettingObjective(ratio: try args.floatAsGiven("ratio", default: 0.7),
                                                lambdaMax: try args.float("lambda_max", default: 0.25),
                                                lambdaMin: try args.float("lambda_min", default: 1e-5),
                                                pFloor: try args.float("p_floor", default: 0.01), scores: try tokenScores(&args))
        case "dpo": objective = try makeDPO(&args)
        case "cpo": objective = try makeCPO(&args)
        case "tpo": objective = try makeTPO(&args)
        case "a2po": objective = try makeA2PO(&args)
        case "orpo": objective = try ORPOObjective(beta: try args.float("beta", default: 0.1))
        case "online-dpo":
            objective = try OnlineDPOObjective(beta: try args.float("beta", default: 0.1), lossType: args.string("loss_type", default: "sigmoid"),
                                               missingEOSPenalty: try args.optionalFloat("missing_eos_penalty"))
        case "chord":
            objective = try CHORDObjective(muPeak: try args.float("mu_peak", default: 0.1), muValley: try args.float("mu_valley", default: 0.1),
                                           muWarmup: try args.int("mu_warmup", default: 0, in: 0...100_000_000),
                                           muDecay: try args.int("mu_decay", default: 0, in: 0...100_000_000),
                                           phi: try args.bool("phi", default: true),
                                           expertShare: try args.float("expert_share", default: 0.2),
                                           epsilon: try args.float("epsilon", default: 0.2), epsilonHigh: try args.optionalFloat("epsilon_high"),
                                           clipRatioC: try args.float("clip_ratio_c", default: 3))
        case "grpo":
            try refuseClipSettingsWithoutAClip(args)
            objective = try GRPOObjective(epsilon: try args.float("epsilon", default: 0.2),
                                          epsilonHigh: try args.optionalFloat("epsilon_high"),
                                          beta: try args.float("beta", default: 0), lossType: args.string("loss_type", default: "dapo"),
                                          biasCorrectionKL: try args.bool("use_bias_correction_kl", default: true),
                                          delta: try args.optionalFloat("delta"),
                                          importanceSamplingLevel: args.string("importance_sampling_level", default: "token"),
                                          topEntropyQuantile: try args.float("top_entropy_quantile", default: 1),
                                          offPolicyMaskThreshold: try args.optionalFloat("off_policy_mask_threshold"),
                                          entropyCoef: try args.optionalFloat32Double("entropy_coef") ?? 0,
                                          adaptiveEntropy: try adaptiveEntropy(&args),
                                          sapoTemperatures: try sapoTemperatures(&args), vespo: try vespoGamma(&args))
        case "rloo":
            objective = try RLOOObjective(epsilon: try args.float("epsilon", default: 0.2), epsilonHigh: try args.optionalFloat("epsilon_high"),
                                          beta: try args.float("beta", default: 0.05),
                                          normalizeAdvantages: try args.bool("normalize_advantages", default: false),
                                          rewardClipRange: try RLOOObjective.rewardClipRange(&args))
        case "gmpo":
            objective = try GMPOObjective(epsilon: try args.float("epsilon", default: 0.4), epsilonHigh: try args.optionalFloat("epsilon_high"),
                                          beta: try args.float("beta", default: 0),
                                          topEntropyQuantile: try args.float("top_entropy_quantile", default: 1))
        case "spin":
            objective = try SPINObjective(beta: try args.float("beta", default: 0.1),
                                          iterationSteps: try args.int("iteration_steps", default: 100, in: 1...100_000_000))
        case "srft":
            objective = try SRFTObjective(sftCoef: try args.float("sft_coef", default: 0.5), rlCoef: try args.float("rl_coef", default: 0.1))
        case "uft": objective = try makeUFT(&args)
        case "prefix-rft": objective = try makePrefixRFT(&args)
        case "relift":
            objective = try ReLIFTObjective(epsilon: try args.float("epsilon", default: 0.2), epsilonHigh: try args.optionalFloat("epsilon_high"),
                                            lossType: args.string("loss_type", default: "dr_grpo"),
                                            sftDataSize: try args.int("sft_data_size", default: 0, in: 0...1_048_576))
        case "superhf": objective = try SuperHFObjective(klCoefficient: try args.float("kl_coefficient", default: 0.35))
        case "gkd":
            objective = try GKDObjective(beta: try args.float("beta", default: 0.5), lmbda: try args.float32Double("lmbda", default: 0.5),
                                         seqKD: try args.bool("seq_kd", default: false))
        case "reward":
            objective = try RewardObjective(centerRewardsCoefficient: try args.optionalFloat32Double("center_rewards_coefficient"))
        case "kto":
            let typeName = args.string("loss_type", default: "kto")
            guard let type = KTOObjective.LossType(rawValue: typeName) else {
                throw ObjectiveError("objective kto: unknown loss_type \(RecipeError.quote(typeName)); known: \(KTOObjective.LossType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            // kl_pairing (sft-dist's; TRL always fixes each row's pair, rotating within blocks of
            // per_device_train_batch_size rows): resolved only where there is a KL term; given
            // beside apo_zero_unpaired, KTOObjective refuses it.
            let pairingName = type == .kto || args.values["kl_pairing"] != nil ? args.string("kl_pairing", default: "step") : "step"
            guard let pairing = KTOObjective.KLPairing(rawValue: pairingName) else {
                throw ObjectiveError("objective kto: unknown kl_pairing \(RecipeError.quote(pairingName)); known: \(KTOObjective.KLPairing.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            objective = try KTOObjective(beta: try args.float("beta", default: 0.1), lossType: type,
                                         desirableWeight: try args.float("desirable_weight", default: 1),
                                         undesirableWeight: try args.float("undesirable_weight", default: 1), klPairing: pairing)
        default:
            throw ObjectiveError("unknown objective \"\(name)\"; known: \(names.joined(separator: ", "))")
        }
        try args.finish()
        // Every objective that reads epsilon_high clips at epsilon above when it is absent.
        var resolved = args.resolved
        if args.used.contains("epsilon_high"), resolved["epsilon_high"] == nil { resolved["epsilon_high"] = resolved["epsilon"] }
        return (objective, resolved, args.shownDefaults)
    }

    /// Whether grpo's loss type is `type`, so its own settings (`names`, TRL's) are read; under
    /// another loss type they are refused, as they would do nothing.
    static func reads(_ names: [String], of type: GRPOObjective.LossType, _ what: String, _ args: ObjectiveArgs) throws -> Bool {
        if args.values["loss_type"] == type.rawValue { return true }
        if let given = names.first(where: { args.values[$0] != nil }) {
            throw ObjectiveError("objective grpo: \(given) sets loss_type \(type.rawValue)'s \(what); with loss_type \(args.values["loss_type"] ?? "dapo") it does nothing")
        }
        return false
    }

    /// grpo's SAPO gate temperatures (TRL's names and defaults), read only under loss_type=sapo.
    static func sapoTemperatures(_ args: inout ObjectiveArgs) throws -> (pos: Float, neg: Float) {
        guard try reads(["sapo_temperature_pos", "sapo_temperature_neg"], of: .sapo, "gate", args) else { return (1, 1.05) }
        return (try args.float("sapo_temperature_pos", default: 1), try args.float("sapo_temperature_neg", default: 1.05))
    }

    /// grpo's VESPO Gamma parameters (TRL's names and defaults), read only under loss_type=vespo.
    static func vespoGamma(_ args: inout ObjectiveArgs) throws -> (kPos: Float, lambdaPos: Float, kNeg: Float, lambdaNeg: Float) {
        let names = ["vespo_k_pos", "vespo_lambda_pos", "vespo_k_neg", "vespo_lambda_neg"]
        guard try reads(names, of: .vespo, "weight", args) else { return (2, 3, 3, 2) }
        return (try args.float(names[0], default: 2), try args.float(names[1], default: 3), try args.float(names[2], default: 3), try args.float(names[3], default: 2))
    }

    /// SAPO's gate and VESPO's weight replace PPO's clip: its settings would do nothing there
    /// (TRL ignores them), so given they are refused; so is `delta` under cispo, whose weight is
    /// capped at epsilon_high instead of a clipped PPO term, and `epsilon` there beside
    /// epsilon_high (alone it is epsilon_high's default).
    static func refuseClipSettingsWithoutAClip(_ args: ObjectiveArgs) throws {
        guard let type = args.values["loss_type"] else { return }
        let cispoUnread = args.values["epsilon_high"] != nil ? ["delta", "epsilon"] : ["delta"]
        let unread = type == "sapo" || type == "vespo" ? ["delta", "epsilon", "epsilon_high"] : type == "cispo" ? cispoUnread : []
        guard let given = unread.first(where: { args.values[$0] != nil }) else { return }
        let there = type == "cispo" && given == "epsilon" ? "beside epsilon_high it does nothing there" : "it does nothing there"
        throw ObjectiveError("objective grpo: \(given) sets PPO's clip, which loss_type \(type) replaces; \(there)")
    }

    /// grpo's `use_adaptive_entropy` and its settings (TRL's names and defaults), read only when
    /// it is given, so runs without it resolve the arguments they did before; its settings
    /// without it are refused (they would do nothing).
    static func adaptiveEntropy(_ args: inout ObjectiveArgs) throws -> (min: Double, max: Double, delta: Double, target: Double)? {
        let settings = ["entropy_coef_min", "entropy_coef_max", "entropy_coef_delta", "entropy_target"]
        let adaptive = args.values["use_adaptive_entropy"] != nil ? try args.bool("use_adaptive_entropy", default: false) : false
        guard adaptive else {
            if let given = settings.first(where: { args.values[$0] != nil }) {
                throw ObjectiveError("objective grpo: \(given) sets the adaptive entropy control; it does nothing without use_adaptive_entropy=true")
            }
            return nil
        }
        return (try args.float32Double("entropy_coef_min", default: 0), try args.float32Double("entropy_coef_max", default: 1),
                try args.float32Double("entropy_coef_delta", default: 0.005), try args.float32Double("entropy_target", default: 0.2))
    }

    /// token-clean's and forgetting's `scores`: fixed (default) or online.
    static func tokenScores(_ args: inout ObjectiveArgs) throws -> TokenScores {
        let s = args.string("scores", default: TokenScores.fixed.rawValue)
        guard let v = TokenScores(rawValue: s) else {
            throw ObjectiveError("objective \(args.objective): scores must be fixed or online (got \(RecipeError.quote(s)))")
        }
        return v
    }
}

/// Typed access to `key=value` objective arguments; `finish()` rejects keys nobody read.
public struct ObjectiveArgs {
    let objective: String
    var values: [String: String]
    var used: Set<String> = []
    /// What each read returned, as text (`ObjectiveRegistry.resolvedArguments`).
    public private(set) var resolved: [String: String] = [:]
    /// Defaults read but kept out of `resolved` (so a checkpoint's arguments compare as they did
    /// before the key existed), for the `methods:` line (`ObjectiveRegistry.shownArguments`).
    var shownDefaults: [String: String] = [:]
    public init(objective: String, values: [String: String]) { self.objective = objective; self.values = values }

    /// `s`, given for `key`, as a finite decimal number (`Double(decimal:)`), or the error saying which it is not.
    func decimal(_ key: String, _ s: String) throws -> Double {
        guard let v = Double(decimal: s) else {
            throw ObjectiveError("objective \(objective): \(key)=\(RecipeError.quote(s)) is not a decimal number")
        }
        guard v.isFinite else { throw ObjectiveError("objective \(objective): \(key)=\(RecipeError.quote(s)) is not a finite number") }
        return v
    }

    public mutating func float(_ key: String, default d: Float) throws -> Float {
        used.insert(key)
        guard let s = values[key] else { return noted(key, d) }
        let given = try decimal(key, s)
        let v = Float(given)
        guard v.isFinite else {
            throw ObjectiveError("objective \(objective): \(key)=\(RecipeError.quote(s)) is beyond float32's range (largest magnitude 3.4e38)")
        }
        // Below float32's normal range a value is read as 0 or a subnormal: budget=1e-300 was
        // refused as "budget=0.0", dpo beta=1e-40 trained with a zero gradient at every step.
        if given != 0 && abs(v) < Float.leastNormalMagnitude {
            throw ObjectiveError("objective \(objective): \(key)=\(RecipeError.quote(s)) is too close to 0 for float32 (smallest normal magnitude 1.2e-38)")
        }
        return noted(key, v)
    }
    /// A share that sizes a count (tokens or rows kept), read as its decimal: float32's rounding
    /// moved the count (0.7 is 0.69999999 in float32, and ⌊0.7·10⌋ kept 6 tokens of 10 where
    /// the papers' Python keeps 7). Checked, and recorded for resume, as `float` does.
    public mutating func floatAsGiven(_ key: String, default d: Double) throws -> Double {
        let v = try float(key, default: Float(d))
        guard let s = values[key] else { return d }
        return Double(decimal: s) ?? Double(v)
    }
    /// A number kept in Double, as TRL keeps it (grpo's entropy coefficients, logged as given),
    /// checked as every float32 argument is (a finite decimal within float32's range, not too
    /// close to 0), since the loss applies it in float32.
    public mutating func float32Double(_ key: String, default d: Double) throws -> Double {
        guard let s = values[key] else { used.insert(key); return noted(key, d) }
        _ = try float(key, default: Float(d))
        return noted(key, Double(decimal: s) ?? d)
    }
    public mutating func optionalFloat32Double(_ key: String) throws -> Double? {
        guard values[key] != nil else { used.insert(key); return nil }
        return try float32Double(key, default: 0)
    }
    /// A number with no default: nil when the key is absent (e.g. talr's `tau`, dynamic if unset).
    public mutating func optionalFloat(_ key: String) throws -> Float? {
        guard values[key] != nil else { used.insert(key); return nil }
        return try float(key, default: 0)
    }
    /// A count: checked against `range` before an objective sizes anything from it.
    public mutating func int(_ key: String, default d: Int, in range: ClosedRange<Int>) throws -> Int {
        used.insert(key)
        guard let s = values[key] else { return noted(key, d) }
        guard let v = Int(s), range.contains(v) else {
            throw ObjectiveError("objective \(objective): \(key) must be an integer in \(range.lowerBound)…\(range.upperBound) (got \(RecipeError.quote(s)))")
        }
        return noted(key, v)
    }
    public mutating func bool(_ key: String, default d: Bool) throws -> Bool {
        used.insert(key)
        guard let s = values[key] else { return noted(key, d) }
        guard let v = Bool(s) else { throw ObjectiveError("objective \(objective): \(key) must be true or false (got \(RecipeError.quote(s)))") }
        return noted(key, v)
    }
    public mutating func string(_ key: String, default d: String) -> String {
        used.insert(key)
        return noted(key, values[key] ?? d)
    }
    /// `value`, recorded as what `key` resolved to; a zero as 0 (-0 trains as 0).
    mutating func noted<T: CustomStringConvertible>(_ key: String, _ value: T) -> T {
        let zero = (value as? Float).map { $0 == 0 } ?? (value as? Double).map { $0 == 0 } ?? false
        resolved[key] = zero ? "0" : value.description
        return value
    }
    public func finish() throws {
        let unknown = Set(values.keys).subtracting(used).sorted()
        if !unknown.isEmpty {
            let accepted = used.isEmpty ? "it takes none" : "accepted: " + used.sorted().joined(separator: ", ")
            throw ObjectiveError("objective \(objective): unknown argument(s) \(unknown.prefix(5).map { RecipeError.quote($0) }.joined(separator: ", ")); \(accepted)")
        }
    }
}
