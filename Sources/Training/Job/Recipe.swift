import Foundation
import Yams

/// Everything that defines a training run. Read from a YAML recipe (`--config`), then
/// overridden by command-line flags; its canonical JSON is compared across ranks at start-up
/// and stored with every checkpoint. Unknown keys and out-of-range values are errors that
/// name the key — a typo in a recipe must not silently train with a default.
public struct Recipe: Codable, Equatable, Sendable {
    public var model = "default"                // preset name or a model directory
    public var data = "builtin:tasks"           // JSONL path, or builtin:tasks
    public var heldout: String? = nil           // JSONL path; else a split of `data`
    public var heldoutFraction = 0.05
    public var steps = 1000
    public var batchSize = 48                   // global examples per optimizer step
    public var microBatchSize = 12              // examples per forward pass on one rank
    public var lr = 3e-3
    public var minLRRatio = 0.1
    public var warmupSteps = 20
    public var schedule = "cosine"
    public var optimizer = "adamw"
    public var beta1 = 0.9
    public var beta2 = 0.95
    public var adamEps = 1e-8
    public var weightDecay = 0.01
    public var momentum = 0.0
    public var gradClip = 1.0
    public var seed: UInt64 = 1234
    public var out = "sft-dist-out"
    public var maxLength = 64
    public var truncation = "right"
    public var packing = false
    public var chatTemplate = "auto"              // auto: the model tokenizer's own (chatml, llama3), else chatml/plain
    public var objective = "nll"
    public var objectiveArgs: [String: String] = [:]
    public var refModel: String? = nil
    public var evalEvery = -1                   // -1: four times during the run; 0: before and after only
    public var evalExamples = 200               // held-out examples for generation accuracy
    public var maxNewTokens = 12
    public var checksumEvery = 50
    public var logEvery = 10
    public var skipBadLines = false
    public var nanPolicy = "abort"              // abort | skip
    public var overlapGradSync = true           // gradient sums start during backward
    public var saveFormat = "native"           // native | hf (adds HF tokenizer files for the byte tokenizer)
    public var saveEvery = 0                    // checkpoint every N steps; 0: none
    public var keepLast = 3                     // complete checkpoints kept; 0: all
    public var resume: String? = nil            // checkpoint directory, or "latest"
    public var watchdogSeconds = 300.0          // abort when a collective waits this long; 0: off

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, data, heldout, heldoutFraction = "heldout_fraction", steps
        case batchSize = "batch_size", microBatchSize = "micro_batch_size", lr
        case minLRRatio = "min_lr_ratio", warmupSteps = "warmup_steps", schedule, optimizer
        case beta1, beta2, adamEps = "adam_eps", weightDecay = "weight_decay", momentum
        case gradClip = "grad_clip", seed, out, maxLength = "max_length", truncation, packing
        case chatTemplate = "chat_template", objective, objectiveArgs = "objective_args"
        case refModel = "ref_model", evalEvery = "eval_every", evalExamples = "eval_examples"
        case maxNewTokens = "max_new_tokens", checksumEvery = "checksum_every", logEvery = "log_every"
        case skipBadLines = "skip_bad_lines", nanPolicy = "nan_policy", overlapGradSync = "overlap_grad_sync"
        case saveFormat = "save_format"
        case saveEvery = "save_every", keepLast = "keep_last", resume, watchdogSeconds = "watchdog_seconds"
    }

    /// Decodes only the keys present; everything else keeps its default.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func get<T: Decodable>(_ k: CodingKeys, _ v: inout T) throws {
            if let x = try c.decodeIfPresent(T.self, forKey: k) { v = x }
        }
        try get(.model, &model); try get(.data, &data); heldout = try c.decodeIfPresent(String.self, forKey: .heldout)
        try get(.heldoutFraction, &heldoutFraction); try get(.steps, &steps)
        try get(.batchSize, &batchSize); try get(.microBatchSize, &microBatchSize); try get(.lr, &lr)
        try get(.minLRRatio, &minLRRatio); try get(.warmupSteps, &warmupSteps); try get(.schedule, &schedule)
        try get(.optimizer, &optimizer); try get(.beta1, &beta1); try get(.beta2, &beta2)
        try get(.adamEps, &adamEps); try get(.weightDecay, &weightDecay); try get(.momentum, &momentum)
        try get(.gradClip, &gradClip); try get(.seed, &seed); try get(.out, &out)
        try get(.maxLength, &maxLength); try get(.truncation, &truncation); try get(.packing, &packing)
        try get(.chatTemplate, &chatTemplate); try get(.objective, &objective)
        try get(.objectiveArgs, &objectiveArgs); refModel = try c.decodeIfPresent(String.self, forKey: .refModel)
        try get(.evalEvery, &evalEvery); try get(.evalExamples, &evalExamples)
        try get(.maxNewTokens, &maxNewTokens); try get(.checksumEvery, &checksumEvery)
        try get(.logEvery, &logEvery); try get(.skipBadLines, &skipBadLines); try get(.nanPolicy, &nanPolicy)
        try get(.overlapGradSync, &overlapGradSync)
        try get(.saveFormat, &saveFormat)
        try get(.saveEvery, &saveEvery); try get(.keepLast, &keepLast)
        resume = try c.decodeIfPresent(String.self, forKey: .resume); try get(.watchdogSeconds, &watchdogSeconds)
    }

    public static let knownKeys = Set(CodingKeys.allCases.map(\.rawValue))

    /// Loads a YAML recipe. Errors name the file and the key.
    public static func load(path: String) throws -> Recipe {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw RecipeError(FileManager.default.fileExists(atPath: path) ? "\(path): cannot read recipe" : "\(path): no such recipe file")
        }
        return try parse(yaml: text, source: path)
    }

    public static func parse(yaml text: String, source: String) throws -> Recipe {
        let node: Any?
        do { node = try Yams.load(yaml: text) } catch {
            throw RecipeError("\(source): invalid YAML (\(String(describing: error).split(separator: "\n").first ?? ""))")
        }
        guard let dict = node as? [String: Any] else {
            if node == nil { return Recipe() }
            throw RecipeError("\(source): a recipe must be a mapping of keys to values")
        }
        for key in dict.keys.sorted() where !knownKeys.contains(key) {
            let hint = knownKeys.min { editDistance($0, key) < editDistance($1, key) }.map { " (did you mean \"\($0)\"?)" } ?? ""
            throw RecipeError("\(source): unknown key \"\(key)\"\(hint)")
        }
        // objective_args values may be numbers in YAML; keep them as strings.
        if let args = dict["objective_args"] as? [String: Any] {
            var recipe = try decode(text, source: source, dropping: "objective_args")
            recipe.objectiveArgs = args.mapValues { "\($0)" }
            try recipe.validate()
            return recipe
        }
        let recipe = try decode(text, source: source, dropping: nil)
        try recipe.validate()
        return recipe
    }

    private static func decode(_ text: String, source: String, dropping: String?) throws -> Recipe {
        do {
            var node = try Yams.compose(yaml: text) ?? Node("")
            if let k = dropping, case .mapping(var m) = node {
                m[Node(k)] = nil
                node = .mapping(m)
            }
            return try YAMLDecoder().decode(Recipe.self, from: try Yams.serialize(node: node))
        } catch let DecodingError.typeMismatch(type, ctx), let DecodingError.valueNotFound(type, ctx) {
            let key = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            throw RecipeError("\(source): key \"\(key)\" must be \(describe(type))")
        } catch let e as RecipeError {
            throw e
        } catch {
            throw RecipeError("\(source): \(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is UInt64.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        default: return "a \(type)"
        }
    }

    /// Range checks; the message names the key as it is spelled in recipes.
    public func validate() throws {
        func need(_ ok: Bool, _ key: String, _ what: String) throws {
            if !ok { throw RecipeError("recipe: \(key) \(what)") }
        }
        try need(steps >= 1, "steps", "must be ≥ 1 (got \(steps))")
        try need(batchSize >= 1, "batch_size", "must be ≥ 1 (got \(batchSize))")
        try need(microBatchSize >= 1, "micro_batch_size", "must be ≥ 1 (got \(microBatchSize))")
        try need(lr > 0 && lr.isFinite, "lr", "must be a positive number (got \(lr))")
        try need((0...1).contains(minLRRatio), "min_lr_ratio", "must be in [0, 1] (got \(minLRRatio))")
        try need(warmupSteps >= 0, "warmup_steps", "must be ≥ 0 (got \(warmupSteps))")
        try need(LRSchedule.Kind(rawValue: schedule) != nil, "schedule", "must be cosine, linear or constant (got \"\(schedule)\")")
        try need(["adamw", "sgd"].contains(optimizer), "optimizer", "must be adamw or sgd (got \"\(optimizer)\")")
        try need((0..<1).contains(beta1), "beta1", "must be in [0, 1) (got \(beta1))")
        try need((0..<1).contains(beta2), "beta2", "must be in [0, 1) (got \(beta2))")
        try need(adamEps > 0, "adam_eps", "must be > 0 (got \(adamEps))")
        try need(weightDecay >= 0, "weight_decay", "must be ≥ 0 (got \(weightDecay))")
        try need((0..<1).contains(momentum), "momentum", "must be in [0, 1) (got \(momentum))")
        try need(gradClip >= 0, "grad_clip", "must be ≥ 0, 0 = off (got \(gradClip))")
        try need(maxLength >= 2, "max_length", "must be ≥ 2 (got \(maxLength))")
        try need(Truncation(rawValue: truncation) != nil, "truncation", "must be left, right or drop (got \"\(truncation)\")")
        try need(ChatTemplate.names.contains(chatTemplate), "chat_template", "must be one of \(ChatTemplate.names.joined(separator: ", ")) (got \"\(chatTemplate)\")")
        try need(["native", "hf"].contains(saveFormat), "save_format", "must be native or hf (got \"\(saveFormat)\")")
        try need(heldoutFraction >= 0 && heldoutFraction < 1, "heldout_fraction", "must be in [0, 1) (got \(heldoutFraction))")
        try need(evalEvery >= -1, "eval_every", "must be ≥ 0, or -1 for four times during the run (got \(evalEvery))")
        try need(evalExamples >= 0, "eval_examples", "must be ≥ 0 (got \(evalExamples))")
        try need(maxNewTokens >= 1, "max_new_tokens", "must be ≥ 1 (got \(maxNewTokens))")
        try need(checksumEvery >= 0, "checksum_every", "must be ≥ 0 (got \(checksumEvery))")
        try need(logEvery >= 1, "log_every", "must be ≥ 1 (got \(logEvery))")
        try need(["abort", "skip"].contains(nanPolicy), "nan_policy", "must be abort or skip (got \"\(nanPolicy)\")")
        try need(!out.isEmpty, "out", "must not be empty")
        try need(saveEvery >= 0, "save_every", "must be ≥ 0, 0 = no checkpoints (got \(saveEvery))")
        try need(keepLast >= 0, "keep_last", "must be ≥ 0, 0 = keep all (got \(keepLast))")
        try need(resume.map { !$0.isEmpty } ?? true, "resume", "must be a checkpoint directory or \"latest\"")
        try need(watchdogSeconds >= 0 && watchdogSeconds.isFinite, "watchdog_seconds", "must be ≥ 0 seconds, 0 = off (got \(watchdogSeconds))")
    }

    /// Sorted-key JSON: the byte-exact form compared across ranks and saved with checkpoints.
    public var canonicalJSON: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: (try? enc.encode(self)) ?? Data(), as: UTF8.self)
    }

    public var yaml: String { (try? YAMLEncoder().encode(self)) ?? "" }

    /// The first key whose value differs between two recipes (for the cross-rank check).
    public func firstDifference(from other: Recipe) -> String? {
        let a = (try? JSONSerialization.jsonObject(with: Data(canonicalJSON.utf8))) as? [String: Any] ?? [:]
        let b = (try? JSONSerialization.jsonObject(with: Data(other.canonicalJSON.utf8))) as? [String: Any] ?? [:]
        for key in Set(a.keys).union(b.keys).sorted() {
            if "\(a[key] ?? "nil")" != "\(b[key] ?? "nil")" { return key }
        }
        return nil
    }
}

public struct RecipeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Levenshtein distance, for "did you mean" hints on misspelled keys.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var prev = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var cur = [i] + [Int](repeating: 0, count: b.count)
        for j in 1...max(b.count, 1) where !b.isEmpty {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        prev = cur
    }
    return a.isEmpty ? b.count : prev[b.count]
}
