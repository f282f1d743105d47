import Foundation

/// `--self-train METHOD`: how the model's own generations become training targets (README,
/// "Self-training"). One file per method: `SemiEvolRound.swift`, `RejectionSamplingRound.swift`,
/// `SelfGeneratedTargetsRound.swift`, `SuperHFRound.swift`.
public enum SelfTrainMethod: String, CaseIterable, Sendable {
    case none, semievol, rft, ssr, s3ft, superhf
    public static var names: [String] { allCases.map(\.rawValue) }

    /// Whether the method cannot run without a scorer: RFT keeps only accepted answers, SSR and
    /// S3FT replace a gold answer only when the scorer judges the model's answer equivalent.
    /// SemiEvol votes without one (a scorer then only normalises answers and checks precision).
    var needsScorer: Bool { self == .rft || self == .ssr || self == .s3ft }

    /// The `--self-train-arg` keys the method reads; any other is refused rather than ignored.
    /// SSR and S3FT take one greedy answer (no k, temperature or top_p); only SemiEvol has an
    /// entropy percentile and only SuperHF keeps a top_k.
    var argumentNames: [String] {
        let shared = ["ratio", "prompts", "max_new_tokens"], sampling = ["k", "temperature", "top_p"]
        switch self {
        case .none: return []
        case .semievol: return sampling + shared + ["percentile"]
        case .rft: return sampling + shared
        case .ssr, .s3ft: return shared
        case .superhf: return sampling + shared + ["top_k"]
        }
    }
}

/// The self-training settings of a run: the method, `--self-train-every`, the scorer and
/// `--self-train-arg key=value` (unknown keys refused, each within its limits).
public struct SelfTrainOptions: Sendable, Equatable {
    public var method: SelfTrainMethod = .none
    /// Steps between rounds: a round runs before steps 0, N, 2N, …
    public var every = 100
    /// `--self-train-scorer`, when given.
    public var scorer: String?
    /// Answers sampled per prompt (SemiEvol `num_infer`; RFT's k; SuperHF's `superbatch_size`,
    /// 16). SSR and S3FT take one greedy answer.
    public var samples = 4
    /// Sampling temperature of the round's answers (SemiEvol, RFT and SuperHF sample at 1.0).
    public var temperature: Float = 1
    /// Nucleus sampling of the round's answers (SuperHF samples at top_p 0.95; SemiEvol and RFT at 1).
    public var topP: Float = 1
    /// Share of each step's batch drawn from the round's generated rows (semievol, rft: 0.5;
    /// superhf: 1, SuperHF fine-tunes on its filtered completions only).
    public var ratio = 0.5
    /// SuperHF keeps the `top_k` best completions of each prompt (`completion_filter_top_k`, 1).
    public var topK = 1
    /// SemiEvol keeps an inconsistent prompt's answer when its entropy is below this percentile
    /// of all inconsistent prompts' entropies (30 in the public code).
    public var percentile = 30.0
    /// Prompts sampled per round.
    public var prompts = 256
    /// Generation length of a round's answers (default: the recipe's max_new_tokens).
    public var maxNewTokens: Int

    /// The keys the method reads, each as the value the run uses (defaults included), for the
    /// resume comparison (`Recipe.withResolvedArguments`).
    public var resolvedArguments: [String: String] {
        let all = ["k": "\(samples)", "temperature": "\(temperature)", "top_p": "\(topP)", "ratio": "\(ratio)",
                   "percentile": "\(percentile)", "prompts": "\(prompts)", "max_new_tokens": "\(maxNewTokens)", "top_k": "\(topK)"]
        return all.filter { method.argumentNames.contains($0.key) }
    }

    public static let argumentNames = ["k", "temperature", "top_p", "ratio", "percentile", "prompts", "max_new_tokens", "top_k"]

    public init(recipe: Recipe) throws {
        maxNewTokens = recipe.maxNewTokens
        method = SelfTrainMethod(rawValue: recipe.selfTrain) ?? .none
        every = recipe.selfTrainEvery
        scorer = recipe.selfTrainScorer
        var a = recipe.selfTrainArgs
        if method == .superhf { samples = 16; topP = 0.95; ratio = 1 }   // the SuperHF paper's settings
        func number(_ key: String, _ range: ClosedRange<Double>, integer: Bool = false) throws -> Double? {
            guard let text = a.removeValue(forKey: key) else { return nil }
            guard let v = Double(text), v.isFinite, range.contains(v), !integer || v == v.rounded() else {
                let what = integer ? "an integer" : "a number"
                throw RecipeError("self_train_args: \(key) must be \(what) in \(range.lowerBound.shortText)…\(range.upperBound.shortText) (got \(RecipeError.quote(text)))")
            }
            return v
        }
        if let v = try number("k", 1...64, integer: true) { samples = Int(v) }
        if let v = try number("temperature", 0...10) { temperature = Float(v) }
        if let v = try number("top_p", 0.000001...1) { topP = Float(v) }
        if let v = try number("ratio", 0...1) {
            // A share of 0 would generate every round and train on none of it.
            guard v > 0 else { throw RecipeError("self_train_args: ratio=0 trains on none of the generated rows (each round would be generated for nothing); give a share in (0, 1]") }
            ratio = v
        }
        if let v = try number("percentile", 0...100) { percentile = v }
        if let v = try number("prompts", 1...1_000_000, integer: true) { prompts = Int(v) }
        if let v = try number("max_new_tokens", 1...65_536, integer: true) { maxNewTokens = Int(v) }
        if let v = try number("top_k", 1...64, integer: true) { topK = Int(v) }
        if topK > samples { throw RecipeError("self_train_args: top_k (\(topK)) must be at most k (\(samples)): the best top_k of k completions are kept") }
        if let extra = a.keys.sorted().first {
            // superhf's kl_coefficient sits beside these keys in the README's table, but it is
            // the objective's: say where it goes.
            if let objectives = try? ObjectiveRegistry.resolvedArguments(name: recipe.objective, args: [:]), objectives[extra] != nil {
                throw RecipeError("self_train_args: \(extra) is objective \(recipe.objective)'s argument: give it as --objective-arg \(extra)=\(recipe.selfTrainArgs[extra] ?? "…")")
            }
            throw RecipeError("self_train_args: unknown key \"\(extra)\" (known: \(Self.argumentNames.joined(separator: ", ")))")
        }
        // SSR and S3FT replace the targets of labelled rows and add none, so `ratio` (the share of a
        // step's batch that a round's rows fill) has nothing to fill; it stays among their resolved
        // keys (a checkpoint records it), refused only when given.
        if [.ssr, .s3ft].contains(method), recipe.selfTrainArgs["ratio"] != nil {
            throw RecipeError("self_train_args: ratio does nothing with --self-train \(method.rawValue), which replaces the targets of the labelled rows it judges and adds no rows to fill a share of the batch (ratio is semievol's, rft's and superhf's)")
        }
        if method != .none, let unused = recipe.selfTrainArgs.keys.sorted().first(where: { !method.argumentNames.contains($0) }) {
            throw RecipeError("self_train_args: \(unused) does nothing with --self-train \(method.rawValue) (its keys: \(method.argumentNames.joined(separator: ", ")))")
        }
        let k = Recipe.declared
        let args = !recipe.selfTrainArgs.isEmpty && !recipe.switchedOff(k.selfTrainArgs, by: k.selfTrain)
        let scorer = recipe.selfTrainScorer != nil && !recipe.switchedOff(k.selfTrainScorer, by: k.selfTrain)
        if method == .none, args || scorer {
            let given = [args ? "self_train_args" : nil, scorer ? "self_train_scorer" : nil].compactMap { $0 }
            throw RecipeError("\(given.joined(separator: " and ")) need\(given.count == 1 ? "s" : "") --self-train semievol, rft, ssr, s3ft or superhf")
        }
    }
}
