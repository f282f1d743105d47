import TensorCore

/// Online selectors by name (`--selection NAME`, `--selection-pool K`, `--selection-arg
/// key=value`), one file each. Every selector takes `budget`: the share of the pool that
/// trains (default 1/K, so a step trains `batch_size` examples, the same backward cost as
/// without selection).
public enum SelectionRegistry {
    public static let names = ["none", "uds", "q-tuning", "loss", "learnability", "random"]

    /// What a run needs to build its selector (from the recipe and the model).
    public struct Context {
        public var batchSize: Int, pool: Int, seed: UInt64, maxLength: Int, vocabSize: Int, hasReference: Bool
        public init(batchSize: Int, pool: Int, seed: UInt64, maxLength: Int, vocabSize: Int, hasReference: Bool) {
            self.batchSize = batchSize; self.pool = pool; self.seed = seed; self.maxLength = maxLength
            self.vocabSize = vocabSize; self.hasReference = hasReference
        }
        public var candidates: Int { batchSize * pool }
    }

    /// The selector and how many candidates of the pool it keeps; nil for `none`.
    public static func make(name: String, args: [String: String], context c: Context) throws -> (CandidateSelector, keep: Int)? {
        try build(name: name, args: args, context: c).made
    }

    /// Every argument the selector reads, as the value it selects with (defaults included:
    /// `budget` left out is 1/selection_pool); see `ObjectiveRegistry.resolvedArguments`.
    public static func resolvedArguments(_ r: Recipe) throws -> [String: String] {
        try build(name: r.selection, args: r.selectionArgs, context: context(r, vocabSize: 2)).resolved
    }

    static func build(name: String, args: [String: String], context c: Context)
        throws -> (made: (CandidateSelector, keep: Int)?, resolved: [String: String]) {
        var a = ObjectiveArgs(objective: name, values: args)
        do {
            guard names.contains(name) else {
                throw BatchSelectionError("unknown selection \"\(name)\"; known: \(names.joined(separator: ", "))")
            }
            if name == "none" {
                try a.finish()
                return (nil, [:])
            }
            let budget = try a.floatAsGiven("budget", default: 1.0 / Double(c.pool))
            guard budget > 0 && budget <= 1 else {
                throw BatchSelectionError("selection \(name): budget=\(budget) must be in (0, 1] (the share of the pool that trains)")
            }
            let selector: CandidateSelector
            switch name {
            case "uds":
                let r1 = try a.int("sketch_time", default: 8, in: 1...4096), r2 = try a.int("sketch_vocab", default: 128, in: 1...65536)
                let alpha = Double(try a.float("alpha", default: 2.5e-3))
                guard alpha >= 0 else {
                    throw BatchSelectionError("selection uds: alpha=\(alpha) must be ≥ 0 (the diversity term's weight; 0 ranks by utility alone)")
                }
                let capacity = try a.int("queue", default: 1024, in: 1...1_000_000)
                // Each within its range, their product was not: queue × sketch_time × sketch_vocab
                // floats (1 TB at the largest) and the sketch's V × sketch_vocab matrix were
                // allocated, and failed, before any check (under --dry-run too).
                let floats = capacity * r1 * r2 + c.vocabSize * r2 + r1 * c.maxLength   // ≤ 3·10¹⁴: no overflow
                if let available = MemoryBudget.availableBytes(), floats > available / MemoryLayout<Float>.size {
                    throw BatchSelectionError("selection uds: its queue of queue × sketch_time × sketch_vocab floats (\(capacity) × \(r1) × \(r2)) and its sketch matrices need at least \(CheckedAllocation.describe(bytes: floats * MemoryLayout<Float>.size)) per rank, more than the \(CheckedAllocation.describe(bytes: available)) available: lower queue, sketch_time or sketch_vocab")
                }
                selector = UDSSelector(alpha: alpha,
                                       capacity: capacity,
                                       sketch: UDSSketch(T: c.maxLength, V: c.vocabSize, r1: r1, r2: r2, seed: c.seed))
            case "q-tuning":
                let tokenBudget = try a.floatAsGiven("token_budget", default: 0.7)
                guard tokenBudget > 0 && tokenBudget <= 1 else {
                    throw BatchSelectionError("selection q-tuning: token_budget=\(tokenBudget) must be in (0, 1]")
                }
                let lambda = Double(try a.float("lambda", default: 0.5))
                guard lambda >= 0 && lambda <= 1 else {
                    throw BatchSelectionError("selection q-tuning: lambda=\(lambda) must be in [0, 1] (the neighbours' share of a token's smoothed PPL)")
                }
                selector = QTuningSelector(sampleBudget: budget, tokenBudget: tokenBudget, lambda: lambda,
                                           iterations: try a.int("iterations", default: 10, in: 1...100))
            case "loss": selector = try LossSelector(order: a.string("order", default: "highest"))
            case "learnability":
                let normalise = a.string("normalise", default: "false")
                guard normalise == "true" || normalise == "false" else {
                    throw BatchSelectionError("selection learnability: normalise=\(normalise) must be true or false")
                }
                guard c.hasReference else {
                    throw BatchSelectionError("selection learnability needs a reference model: give --ref-model DIR")
                }
                selector = LearnabilitySelector(normalise: normalise == "true")
            default: selector = RandomSelector()
            }
            try a.finish()
            return ((selector, max(1, Int((budget * Double(c.candidates)).rounded()))), a.resolved)
        } catch let e as ObjectiveError {
            // The shared key=value reader names the objective; here it is a selection.
            throw BatchSelectionError("selection" + e.description.dropFirst("objective".count))
        }
    }
}

public struct BatchSelectionError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

extension SelectionRegistry {
    /// The recipe's context with a stand-in vocabulary size (what validation and the resolved
    /// arguments need does not depend on it).
    static func context(_ r: Recipe, vocabSize: Int) -> Context {
        Context(batchSize: r.batchSize, pool: r.selectionPool, seed: r.seed, maxLength: r.maxLength,
                vocabSize: vocabSize, hasReference: r.refModel != nil)
    }

    /// The recipe's selection settings checked before anything loads (a tiny stand-in
    /// vocabulary: the arguments, budgets and the reference requirement do not depend on it).
    /// Returns whether the selector reads `--ref-model` (learnability). A selector that would
    /// keep every candidate (`--selection-pool 1` at the default budget) is refused: it scored
    /// the batch and trained on all of it, as without selection (not q-tuning, whose token
    /// pruning still acts).
    @discardableResult
    public static func validate(_ r: Recipe) throws -> Bool {
        let context = context(r, vocabSize: 2)
        guard let (selector, keep) = try make(name: r.selection, args: r.selectionArgs, context: context) else { return false }
        if keep >= context.candidates && r.selection != "q-tuning" {   // q-tuning also prunes tokens
            throw BatchSelectionError("selection \(r.selection) would keep all \(context.candidates) candidates of a step (selection_pool \(r.selectionPool) × batch_size \(r.batchSize), budget \(r.selectionArgs["budget"] ?? "1/selection_pool")): it would score them for nothing; raise --selection-pool or lower budget")
        }
        return selector.referenceScorer != nil
    }
}
