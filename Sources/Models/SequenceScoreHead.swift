import Foundation
import TensorCore

/// A reward model: transformers' `*ForSequenceClassification` with one label, as TRL's
/// `RewardTrainer` trains it (Ouyang et al., arXiv 2203.02155 §3.5). The decoder is the causal
/// LM's; in place of the LM head, `score.weight` [1, hidden] (no bias) projects every position's
/// last hidden state to one score — logits [B·T, 1] — and a sequence's reward is the score at its
/// last token that is not `pad_token_id` (transformers' `*ForSequenceClassification.forward`).
/// There is no `lm_head.weight`: a causal LM loaded as a reward model drops it and starts
/// `score.weight` from N(0, 0.02), as transformers initialises the new head.
public enum SequenceScoreHead {
    /// The head's tensor, as transformers names it.
    public static let weightName = "score.weight"

    /// The class transformers builds for `causal` (`GPT2LMHeadModel`, `LlamaForCausalLM`, …).
    public static func architecture(for causal: String) -> String {
        for suffix in ["LMHeadModel", "ForCausalLM"] where causal.hasSuffix(suffix) {
            return String(causal.dropLast(suffix.count)) + "ForSequenceClassification"
        }
        return causal + "ForSequenceClassification"
    }

    /// The one label transformers writes for `num_labels=1` (without it, it assumes two).
    public static let labelFields: [String: Any] = ["id2label": ["0": "LABEL_0"], "label2id": ["LABEL_0": 0]]

    /// Whether config.json describes a reward model; refuses more than one label (a classifier,
    /// whose scores sft-dist would read as one reward).
    public static func isScoreModel(_ f: HFConfigFields) throws -> Bool {
        let architectures = f.object["architectures"] as? [Any] ?? []
        let named = architectures.contains { ($0 as? String)?.hasSuffix("ForSequenceClassification") == true }
        guard named else { return false }
        let labels: Int
        if let map = f.object["id2label"] as? [String: Any] { labels = map.count }
        else if f.has("num_labels") { labels = try f.int("num_labels") }
        else { labels = 2 }   // transformers' PretrainedConfig default
        if labels != 1 {
            throw f.error(f.object["id2label"] != nil ? "id2label" : "num_labels",
                          "gives \(labels) labels: a sequence classifier, not a reward model, which has one (num_labels=1)")
        }
        return true
    }

    /// The reward's position in one sequence of `count` ids: its last token that is not
    /// `pad`, or its first when every token is (transformers' argmax over a zero mask).
    public static func rewardPosition(_ ids: ArraySlice<Int32>, pad: Int32?) -> Int {
        guard let pad else { return ids.count - 1 }
        return (ids.lastIndex { $0 != pad } ?? ids.startIndex) - ids.startIndex
    }

    /// `score.weight` ~ N(0, 0.02), transformers' `initializer_range` for both families.
    public static func initialise(_ params: ParameterStore, seed: UInt64) {
        let t = params[weightName]
        var rng = RNG(seed: seed, stream: 7)
        for i in 0..<t.count { t.data[i] = rng.normal() * 0.02 }
    }
}

extension ModelDirectory {
    /// Whether `dir` holds a reward model (config.json names a `*ForSequenceClassification`);
    /// false for anything else, a preset or an unreadable directory (its loading says why).
    public static func holdsRewardModel(_ dir: String) -> Bool {
        guard let json = try? JSONObjectFile.read(dir + "/config.json") else { return false }
        return (try? SequenceScoreHead.isScoreModel(HFConfigFields(path: dir + "/config.json", object: json))) ?? true
    }

    /// What `dir` holds, for the commands that take a model as it is (export, merge).
    public static func savedKind(_ dir: String) -> ModelKind { holdsRewardModel(dir) ? .rewardModel : .causalLM }

    /// The id a reward model's rewards are not read at: config.json's `pad_token_id`, as
    /// transformers reads it (nil: none, the last token).
    /// One outside the vocabulary is none (as `configJSON(_:tokenizer:)` saves it: null).
    public static func rewardPadId(_ model: LanguageModel) -> Int32? {
        guard let pad = model.configJSON["pad_token_id"] as? Int, (0..<model.vocabSize).contains(pad) else { return nil }
        return Int32(pad)
    }
}

/// What a caller computes with a model directory (`ModelDirectory.load`).
public enum ModelKind: Sendable { case causalLM, rewardModel }

extension LanguageModel {
    /// A reward model: one score per position (`SequenceScoreHead`) in place of the LM head's logits.
    public var scoresSequences: Bool {
        (self as? GPT2)?.config.scoreHead ?? (self as? Llama)?.config.scoreHead ?? false
    }
}
