import Foundation
import Models
import TensorCore

/// `state.json`: everything besides the tensors that a resumed run needs to continue exactly
/// as if never interrupted, and what `--resume` checks before trusting the checkpoint.
///
/// What the run's state is made of, and where each piece lives:
/// - the parameters: `model/`, a model directory in its own right; `parameterChecksum` here;
/// - the step: here; everything else that lives across steps is a registered stateful
///   component (`Training/State/`: the trainer's skipped-step count, the batch source, the
///   optimizer, the old-policy snapshot, …): its small values under `components.<name>`,
///   its tensors in `<name>.safetensors`, their names and shapes listed here;
/// - what is a pure function of (seed, step, rank) or of the recipe — batches of the uniform
///   sampler, the LR schedule, the objectives' random streams — is derived, not stored;
/// - the reference model (objectives that regularise towards it): the initial weights or
///   `ref_model`, rebuilt at start-up; `referenceChecksum` proves it is the same.
struct CheckpointState: Codable {
    var step: Int                        // optimizer steps completed
    var ranks: Int                       // rank count that wrote it (informational)
    var recipe: Recipe
    var components: [String: SavedComponent]
    var parameterChecksum: String        // ParameterStore.checksum(), hex
    var referenceChecksum: String?       // of the reference the run reads: the objective's, else learnability selection's
    var trainingDataHash: String         // XXH64 over the tokenized training examples
    var trainingExamples: Int
    /// XXH64 of `--unlabelled`'s bytes: self-training reads its prompts each round, so a file
    /// changed in place would make the resumed rounds differ (nil: no such file, or a
    /// checkpoint from before this field).
    var unlabelledHash: String? = nil
    /// XXH64 of `--prompts`' bytes: rollouts draw from them every generation, as above (nil: no
    /// such file, or a checkpoint from before this field).
    var promptsHash: String? = nil
    /// XXH64 of each evaluated set's tokenized examples, by `--eval-data` name ("" for the
    /// held-out set): a resumed run that evaluates another set under the same name would put
    /// two sets in one metrics series and one retention row (nil: a checkpoint from before).
    var evaluatedSetHashes: [String: String]? = nil
    /// The checksum of each reward model (`--reward DIR`: weights, tokenizer, pad), by its metrics
    /// name: a resumed run whose reward model under the same path is another would score its
    /// rollouts otherwise from the next step on (nil: none, or a checkpoint from before
    /// 2026-12-07, whose reward models are compared by path, as the recipe's `rewards`).
    var rewardModelChecksums: [String: String]? = nil
    /// The training loss logged at `step` (finite; nil otherwise, or a checkpoint from before
    /// this field): which metrics.jsonl holds this run's rows — the one whose row at `step` has
    /// this loss — when the checkpoint is resumed into another --out, copied, or forked.
    var lastLoss: Double? = nil
    /// TRL's `num_tokens` after `step`: every token of the sequences trained so far, which the
    /// resumed run's rows go on counting from (nil: a checkpoint from before this field, whose
    /// resumed rows leave it out).
    var numTokens: Int? = nil
    /// The objectives' meaning the run was written with: 2 since GRPO's KL term is multiplied
    /// by the importance ratio by default (`use_bias_correction_kl`, 2026-12-05); nil before.
    /// An earlier GRPO run with β > 0 resumes only with `use_bias_correction_kl=false`, its
    /// term then (`withDefaultsOfItsTime`), not with today's default changing its gradient unseen.
    /// 3 since a rollout run takes its log-probs at the rollout temperature and a dpo run
    /// evaluates its held-out pairs with the DPO loss (2026-12-06): an earlier rollout run at
    /// another temperature than 1, or dpo run with held-out pairs, is refused (`meaningChanged`).
    /// 4 since rollouts stop at every eos id of the model, as TRL's (the same day). 5 since grpo
    /// evaluates with rollouts of the held-out prompts, as TRL's (the same day): an earlier grpo
    /// run that would now evaluate so is refused, its eval_loss having been the NLL. 6 since PPO's
    /// clip takes a generation's first-step ratio as exactly 1 and passes half the gradient on a
    /// clip bound, as torch (2026-12-07): an earlier run whose clip has a bound at 1 is refused.
    var semantics: Int? = nil
    static let currentSemantics = 7

    /// One component's entry: its small values, and the name and shape of each tensor in
    /// `<name>.safetensors` (none: no file).
    struct SavedComponent: Codable, Equatable {
        var values: [String: StateValue]
        var tensors: [String: [Int]]
        init(_ state: ComponentState) {
            values = state.values
            tensors = state.tensors.mapValues(\.shape)
        }
        init(values: [String: StateValue], tensors: [String: [Int]]) { self.values = values; self.tensors = tensors }
    }

    static let fileName = "state.json"
    static func tensorFile(_ component: String) -> String { component + ".safetensors" }

    var encoded: [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array((try? enc.encode(self)) ?? Data()) + [0x0A]
    }

    /// The manifest proves these bytes are the ones written, not who wrote them; Foundation's
    /// JSON parsers trap on some text nested past their own limit (Models/JSONNesting.swift).
    static func checkNesting(_ data: Data, path: String) throws {
        guard JSONNesting.depth(data, limit: 32) <= 32 else {
            throw CheckpointError("\(path): corrupt checkpoint state (nested more than 32 levels deep)")
        }
    }

    /// Every field `encoded` can write. A field outside it — from a newer sft-dist, or a typo
    /// in a hand-made file — would be dropped by the decoder and the run resumed without it.
    static let fields: Set<String> = ["step", "ranks", "recipe", "components", "parameterChecksum", "referenceChecksum",
                                      "trainingDataHash", "trainingExamples", "unlabelledHash", "promptsHash",
                                      "evaluatedSetHashes", "rewardModelChecksums", "lastLoss", "numTokens", "semantics"]
    static let componentFields: Set<String> = ["values", "tensors"]

    /// The first field of `json` (a decoded `state.json`) this version does not read, as
    /// "components.trainer.extra"; recipe keys are checked against the recipe's own keys.
    static func unknownField(_ json: [String: Any]) -> String? {
        if let key = json.keys.sorted().first(where: { !fields.contains($0) }) { return key }
        if let recipe = json["recipe"] as? [String: Any],
           let key = recipe.keys.sorted().first(where: { !Recipe.knownKeys.contains($0) }) { return "recipe." + key }
        for (name, entry) in ((json["components"] as? [String: Any]) ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let key = (entry as? [String: Any])?.keys.sorted().first(where: { !componentFields.contains($0) }) {
                return "components.\(name).\(key)"
            }
        }
        return nil
    }

    static func decode(_ data: Data, path: String) throws -> CheckpointState {
        try checkNesting(data, path: path)
        do {
            let state = try JSONDecoder().decode(CheckpointState.self, from: data)
            if let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], let field = unknownField(json) {
                throw CheckpointError("\(path): unknown field \"\(field.prefix(80))\" (written by another version of sft-dist, or by hand): resuming without it would not continue the run exactly")
            }
            return state
        } catch let error as CheckpointError { throw error } catch {
            if let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
                // Foundation reports a number that is no Int (1e30, 1.5) without its field: name it.
                for key in ["step", "ranks", "trainingExamples", "numTokens", "semantics"] {
                    if let n = json[key] as? NSNumber, Int(exactly: n.doubleValue) == nil {
                        throw CheckpointError("\(path): \(key) is \(n.doubleValue), not an integer")
                    }
                }
            }
            throw CheckpointError("\(path): unreadable checkpoint state (\(CheckpointManifest.describe(error)))")
        }
    }

    /// The fields that are not checked against the run: each must at least make sense.
    /// `manifestStep` is the step the manifest records.
    func validate(path: String, manifestStep: Int) throws {
        func bad(_ field: String, _ problem: String) -> CheckpointError { CheckpointError("\(path): \(field) \(problem)") }
        guard step >= 0, step == manifestStep else { throw bad("step", "is \(step), the manifest's is \(manifestStep)") }
        // Informational, but said in the resume line ("saved by 2147483648 ranks" was accepted):
        // bounded as an MPI job's size can be (an Int32 communicator size).
        guard ranks >= 1, ranks <= Int(Int32.max) else { throw bad("ranks", "is \(ranks), not a rank count") }
        guard trainingExamples >= 0 else { throw bad("trainingExamples", "is \(trainingExamples), not a count") }
        if let n = numTokens, n < 0 { throw bad("numTokens", "is \(n), not a count") }
        if let v = semantics, !(1...Self.currentSemantics).contains(v) {
            throw bad("semantics", "is \(v), not one this version of sft-dist knows (1…\(Self.currentSemantics))")
        }
        for (field, value) in [("parameterChecksum", parameterChecksum), ("trainingDataHash", trainingDataHash),
                               ("referenceChecksum", referenceChecksum ?? StateValue.hex(0))]
                               + (rewardModelChecksums ?? [:]).sorted(by: { $0.key < $1.key }).map({ ("rewardModelChecksums.\($0.key.prefix(40))", $0.value) })
        where value.utf8.count != 16 || UInt64(value, radix: 16) == nil {
            throw bad(field, "is \"\(value.prefix(40))\", not 16 hex digits")
        }
        for (name, saved) in components.sorted(by: { $0.key < $1.key }) {
            guard StateRegistry.isValidName(name) else {
                throw bad("components", "names \"\(name.prefix(40))\", not a component name")
            }
            if let (key, shape) = saved.tensors.first(where: { $0.value.contains { $0 < 0 } }) {
                throw bad("components.\(name).tensors.\(key)", "has shape \(shape)")
            }
        }
    }

    /// A recipe saved before `semantics` 2, with the objective defaults of its time: GRPO with
    /// β > 0 and no `use_bias_correction_kl` had the KL term without the importance ratio.
    static func withDefaultsOfItsTime(_ r: Recipe) -> Recipe {
        guard r.objective == "grpo", r.objectiveArgs["use_bias_correction_kl"] == nil,
              let beta = r.objectiveArgs["beta"].flatMap(Double.init), beta > 0 else { return r }
        var then = r
        then.objectiveArgs["use_bias_correction_kl"] = "false"
        return then
    }

    /// Why a checkpoint of `semantics` cannot go on under today's meaning of `recipe`, or nil.
    /// Before 3, a rollout run's log-probs were at temperature 1 whatever its rollout_temperature,
    /// and a dpo run's eval_loss was the NLL of the held-out chosen answers (`evaluatesPairs`: the
    /// run has held-out pairs), which would join today's DPO loss in one series.
    /// Before 4, rollouts stopped at the data's end token only (`moreRolloutStops`: this run's
    /// other eos ids, which now end them too).
    static func meaningChanged(since semantics: Int?, recipe r: Recipe, objective: Objective, evaluatesPairs: Bool = false,
                               moreRolloutStops: [Int32] = [], evaluatesRollouts: Bool = false) -> String? {
        if (semantics ?? 1) < 7, let share = shareReadInFloat32(r) {
            return "checkpoint was written when \(share) was read in float32 (0.7 as 0.69999999, so ⌊0.7·10⌋ kept 6 tokens of 10); it is now read as the decimal given, which changes what trains from the next step on: start a new run"
        }
        if (semantics ?? 1) < 6, let bound = clipBoundAtOne(r) {
            return "checkpoint was written when \(r.objective)'s PPO clip passed the whole gradient on a clip bound\(r.objective == "rloo" ? "" : " and took a generation's first-step ratio from the sampler's log-probs (1 up to rounding)"); with \(bound) = 0 every first-step token now sits on the bound and passes half, as torch's min and clamp do (TRL's): start a new run"
        }
        if (semantics ?? 1) < 5 && evaluatesRollouts {
            return "checkpoint was written when a grpo run's eval_loss was the held-out completions' NLL; it is now the GRPO loss on rollouts of the held-out prompts, as TRL's, and both would join one eval_loss series in metrics.jsonl and loss.svg: resume with --eval-rollouts 0 (the NLL, as the checkpoint's run evaluated) or start a new run"
        }
        if (semantics ?? 1) < 4 && !moreRolloutStops.isEmpty {
            return "checkpoint was written when rollouts stopped at the data's end token only; they now stop at the model's eos ids too (\(moreRolloutStops.map(String.init).joined(separator: ", ")) here: the tokenizer's and the generation config's, as TRL's), which changes the rollouts from the next generation on: start a new run"
        }
        guard (semantics ?? 1) < 3 else { return nil }
        if r.logitTemperature(for: objective) != 1 {
            return "checkpoint was written when a rollout run's log-probs were at temperature 1; they are now at rollout_temperature (\(r.rolloutTemperature)), as TRL's, which changes the loss from the next step on: start a new run"
        }
        if objective.requirements.pairs && evaluatesPairs {
            return "checkpoint was written when a \(objective.name) run's eval_loss was the held-out chosen answers' NLL; it is now the held-out pairs' DPO loss, as TRL's, and both would join one eval_loss series in metrics.jsonl and loss.svg: start a new run"
        }
        return nil
    }

    /// Before `semantics` 7 the shares that size a count were read in float32: token-clean's and
    /// forgetting's `ratio` and Q-Tuning's `token_budget` (whose counts run over every row's or
    /// step's length, so some count moves), and a selector's `budget` where budget × candidates
    /// rounds otherwise. The share, named, or nil when nothing moves.
    static func shareReadInFloat32(_ r: Recipe) -> String? {
        if ["token-clean", "forgetting"].contains(r.objective) { return "objective \(r.objective)'s ratio" }
        guard r.selection != "none" else { return nil }
        if r.selection == "q-tuning", (Double(decimal: r.selectionArgs["token_budget"] ?? "0.7") ?? 0.7) < 1 { return "selection q-tuning's token_budget" }
        let candidates = Double(r.batchSize * r.selectionPool)
        let budget = r.selectionArgs["budget"].flatMap { Double(decimal: $0) } ?? 1 / Double(r.selectionPool)
        let then = Int((Double(Float(budget)) * candidates).rounded()), now = Int((budget * candidates).rounded())
        return then == now ? nil : "selection \(r.selection)'s budget (\(then) of \(Int(candidates)) candidates then, \(now) now)"
    }

    /// The objective argument that puts a PPO clip bound at ratio 1 (ε = 0), where the semantics 6
    /// change acts; nil elsewhere (with ε > 0 it only moved the first-step ratio by the decode's rounding).
    static func clipBoundAtOne(_ r: Recipe) -> String? {
        let clipped: Set<String> = ["grpo", "chord", "uft", "prefix-rft", "relift", "rloo"]
        guard clipped.contains(r.objective), !["cispo", "sapo", "vespo"].contains(r.objectiveArgs["loss_type"] ?? "") else { return nil }
        let low = Double(r.objectiveArgs["epsilon"] ?? "0.2"), high = Double(r.objectiveArgs["epsilon_high"] ?? r.objectiveArgs["epsilon"] ?? "0.2")
        return low == 0 ? "epsilon" : high == 0 ? "epsilon_high" : nil
    }

    /// Why a resumed run may not evaluate as this recipe says: grpo's evaluation (`eval_rollouts`
    /// rollouts per held-out prompt, or the held-out NLL) changed from the checkpoint's run's,
    /// so two kinds of eval_loss, or rewards over another number of rollouts, would join one
    /// series. `eval_examples` may change as before (it moves eval_accuracy's prompts too),
    /// except to or from 0, which switches between the two.
    /// (Before `semantics` 5 grpo always evaluated the NLL: `meaningChanged` says so.)
    static func evaluationChanged(since semantics: Int?, saved: Recipe, current: Recipe, objective: Objective) -> String? {
        guard (semantics ?? 1) >= 5 else { return nil }
        let before = saved.rolloutsPerEvaluationPrompt(objective), now = current.rolloutsPerEvaluationPrompt(objective)
        guard before != now else { return nil }
        func kind(_ g: Int) -> String { g == 0 ? "the held-out NLL" : "\(g) rollout\(g == 1 ? "" : "s") of each held-out prompt" }
        return "the checkpoint's run evaluated \(kind(before)) and this one would evaluate \(kind(now)), which would join one eval_loss series in metrics.jsonl and loss.svg: resume with its eval_rollouts (\(saved.evalRollouts)) and eval_examples (\(saved.evalExamples)), or start a new run"
    }

    /// The first recipe key whose value differs and that a resumed run may not change
    /// (`ResumeRule`, declared with each key in `RecipeKeys`), with both values as written.
    /// Method arguments are compared as the methods read them: one spelled at its default is
    /// the default (`Recipe.withResolvedArguments`).
    static func recipeDifference(saved: Recipe, current: Recipe) -> (key: String, saved: String, current: String)? {
        let (a, b) = Recipe.withResolvedArguments(saved, current)
        guard let d = a.firstDifference(from: b, only: { $0.resume.binds(saved) }) else { return nil }
        if let key = Recipe.key(named: d.key), !key.same(saved, current) { return (d.key, key.text(of: saved), key.text(of: current)) }
        return (d.key, d.mine, d.other)
    }

    /// The first config key that differs between the checkpoint's config.json and the model
    /// being trained ("n_embd: 64 in the checkpoint, 128 here").
    /// Keys in `mayBeAbsent` that the checkpoint lacks are not compared (fields a later version
    /// started writing and that change no loss, such as `ModelDirectory.tokenIdFields`).
    static func configDifference(saved: Data, current: [String: Any], mayBeAbsent: Set<String> = []) -> String? {
        guard let a = (try? JSONSerialization.jsonObject(with: saved)) as? [String: Any] else { return "config.json is not a JSON object" }
        // Round-trip the live config through JSON so both sides have the same number types.
        guard let data = try? JSONSerialization.data(withJSONObject: current, options: [.sortedKeys]),
              let b = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return "the model's config is not JSON" }
        for key in Set(a.keys).union(b.keys).sorted() {
            // Dropout changes nothing sft-dist computes (it trains without); a checkpoint from
            // before 2026-12-08 wrote 0 where the model's config now keeps its own values.
            if GPT2Config.dropoutKeys.contains(key) || key == "attention_dropout" { continue }
            let x = a[key] as? NSObject, y = b[key] as? NSObject
            if x == nil && (y == nil || mayBeAbsent.contains(key)) { continue }
            if let x, let y, x.isEqual(y) || sameFloat32(x, y) { continue }
            // A pad_token_id outside the vocabulary is written as null since 2026-12-06
            // (`ModelDirectory.configJSON`); a checkpoint written before keeps the id.
            if key == "pad_token_id", y is NSNull, let id = (x as? NSNumber)?.intValue, let vocab = (b["vocab_size"] as? NSNumber)?.intValue,
               id < 0 || id >= vocab { continue }
            let named = JSONText.plain(key.count > 40 ? key.prefix(40) + "…" : key)
            return "\(named): \(x.map(shown) ?? "absent") in the checkpoint, \(y.map(shown) ?? "absent") here"
        }
        return nil
    }

    /// A config value for the message: a string quoted and cut, a list or an object as JSON,
    /// cut (a 5,000-character value made a 5,208-character line; an object came as Foundation's
    /// multi-line description).
    static func shown(_ v: NSObject) -> String {
        if let s = v as? String { return JSONText.brief(s) }
        return JSONText.brief(structure: v) ?? "\(v)"
    }

    /// Two non-integer numbers that are the same float32: the model holds its eps and rope θ as
    /// float32, and checkpoints written before configs gave their shortest decimal hold the
    /// float's exact double (9.999999747378752e-06 for 1e-05), the same model.
    static func sameFloat32(_ x: NSObject, _ y: NSObject) -> Bool {
        guard let a = x as? NSNumber, let b = y as? NSNumber else { return false }
        let (u, v) = (a.doubleValue, b.doubleValue)
        // Integers (and booleans, 0 and 1) compare exactly, through isEqual.
        guard u != u.rounded() || v != v.rounded() else { return false }
        return Float(u) == Float(v)
    }

    /// XXH64 over every training example's ids and loss mask, in order: a different data file,
    /// split, template, truncation or tokenizer all change it; and a labelled row's label
    /// (kto), which rows without one leave out, so their hash is what it was before labels; and a
    /// pair's margin and a triple's gold answer, likewise.
    static func dataHash(_ examples: [Example]) -> UInt64 {
        var h = XXHash64()
        for e in examples {
            withUnsafeBytes(of: Int64(e.ids.count).littleEndian) { h.update($0) }
            e.ids.withUnsafeBytes { h.update($0) }
            e.lossMask.withUnsafeBytes { h.update($0) }
            if let label = e.label { withUnsafeBytes(of: UInt8(label ? 2 : 1)) { h.update($0) } }
            // A pair's margin (reward), which pairs without one leave out as rows without labels do.
            if e.margin != 0 { withUnsafeBytes(of: e.margin.bitPattern.littleEndian) { h.update($0) } }
            // A triple's gold answer (tpo), likewise left out where there is none.
            if let g = e.gold {
                withUnsafeBytes(of: Int64(-g.ids.count).littleEndian) { h.update($0) }
                g.ids.withUnsafeBytes { h.update($0) }
                g.lossMask.withUnsafeBytes { h.update($0) }
            }
        }
        return h.finalize()
    }
}
