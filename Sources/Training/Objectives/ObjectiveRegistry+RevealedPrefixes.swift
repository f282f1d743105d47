/// The arguments of the objectives whose rollouts continue revealed demonstration prefixes
/// (`RevealedPrefixObjective`), with the papers' code defaults.
extension ObjectiveRegistry {
    static func makeUFT(_ args: inout ObjectiveArgs) throws -> Objective {
        try UFTObjective(sftCoef: try args.float("sft_coef", default: 0.001), beta: try args.float("beta", default: 0.001),
                         entropyCoef: try args.float("entropy_coef", default: 0.001), epsilon: try args.float("epsilon", default: 0.2),
                         epsilonHigh: try args.optionalFloat("epsilon_high"),
                         hintSteps: try args.int("hint_steps", default: 300, in: 1...100_000_000),
                         upper: try args.double("upper", default: 0.95), lower: try args.double("lower", default: 0.05),
                         segments: try args.int("segments", default: 5, in: 1...1_000_000))
    }

    static func makePrefixRFT(_ args: inout ObjectiveArgs) throws -> Objective {
        try PrefixRFTObjective(hybrid: try args.int("hybrid", default: 1, in: 1...1_000_000),
                               lowStart: try args.double("low_start", default: 0.95), lowEnd: try args.double("low_end", default: 0.05),
                               high: try args.double("high", default: 1),
                               decaySteps: try args.int("decay_steps", default: 0, in: 0...100_000_000),
                               minPrefix: try args.int("min_prefix", default: 1, in: 0...1_000_000),
                               entropyMask: try args.float("entropy_mask", default: 0.8), entropyCoef: try args.float("entropy_coef", default: 0.001),
                               epsilon: try args.float("epsilon", default: 0.2), epsilonHigh: try args.optionalFloat("epsilon_high"))
    }
}

extension ObjectiveArgs {
    /// A schedule value read in double precision (probabilities, fractions), so 0.95 is 0.95.
    mutating func double(_ key: String, default d: Double) throws -> Double {
        used.insert(key)
        guard let s = values[key] else { return noted(key, d) }
        return noted(key, try decimal(key, s))
    }
}
