import Foundation

extension ModelDirectory {
    /// `config.json` as `save` writes it: the model's config with `bos_token_id` and
    /// `eos_token_id` that exist in its vocabulary. transformers' `GPT2Config` defaults both to
    /// GPT-2's 50256, so a config without them (sft-dist's GPT-2) or with ids past `vocab_size`
    /// loads with a warning and generation that never stops on end-of-text; such ids are
    /// replaced by the tokenizer's (end-of-text for both when it adds no BOS, as GPT-2's
    /// tokenizer does). Valid ids of a loaded config are kept, and so is an explicit null; a
    /// `pad_token_id` that is no id of the vocabulary is written as null.
    public static func configJSON(_ model: LanguageModel, tokenizer: Tokenizer) -> [String: Any] {
        var json = model.configJSON
        let ids: [(String, Int32)] = [("bos_token_id", tokenizer.bosId ?? tokenizer.eosId), ("eos_token_id", tokenizer.eosId)]
        assert(Set(ids.map(\.0)) == tokenIdFields)
        for (key, id) in ids where !isTokenId(json[key], vocabSize: model.vocabSize) { json[key] = Int(id) }
        // A pad_token_id past the vocabulary stops transformers loading the model ("Padding_idx
        // must be within num_embeddings"); sft-dist never pads into the loss, so it becomes null.
        if let pad = json["pad_token_id"], !isTokenId(pad, vocabSize: model.vocabSize) || pad is [Any] { json["pad_token_id"] = NSNull() }
        // A reward model's rewards are read at each sequence's last token that is not this id
        // (transformers' *ForSequenceClassification): its own, kept as it is (export, merge: another
        // id would move every reward), or without one the tokenizer's pad, as TRL's RewardTrainer sets it.
        if model.scoresSequences, !isTokenId(json["pad_token_id"], vocabSize: model.vocabSize) || json["pad_token_id"] is NSNull {
            json["pad_token_id"] = Int(tokenizer.padId)
        }
        return json
    }

    /// The fields `configJSON` fills in; checkpoints saved before it did lack them.
    public static let tokenIdFields: Set<String> = ["bos_token_id", "eos_token_id"]

    /// Null, an integer in 0..<vocabSize, or a non-empty list of such integers (Llama-3's
    /// several end-of-turn ids).
    static func isTokenId(_ value: Any?, vocabSize: Int) -> Bool {
        guard let value else { return false }
        switch value {
        case is NSNull: return true
        case let list as [Any]: return !list.isEmpty && list.allSatisfy { isTokenId($0, vocabSize: vocabSize) && !($0 is NSNull) }
        case _ where type(of: value) == Bool.self: return false   // not `is Bool`: an NSNumber 0 or 1 bridges to Bool
        case let b as NSNumber where HFConfigFields.isBool(b): return false
        case let n as Int: return n >= 0 && n < vocabSize
        case let n as NSNumber:
            let d = n.doubleValue
            return d == d.rounded() && d >= 0 && d < Double(vocabSize)
        default: return false
        }
    }
}
