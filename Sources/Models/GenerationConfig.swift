import Foundation

/// A Hugging Face model's `generation_config.json`: the defaults transformers' `generate`
/// takes over config.json's. sft-dist reads its `eos_token_id` — one id or a list: Qwen2.5's
/// instruct models list `<|im_end|>` and `<|endoftext|>`, Llama 3's `<|eot_id|>` beside
/// `<|end_of_text|>`, where config.json may name only one — and stops generation at each
/// (`Evaluator.stopIds`). A save writes the file back as it was read (transformers'
/// `save_pretrained` writes it too), so a fine-tuned model generates as its base did.
public struct GenerationConfig {
    public static let fileName = "generation_config.json"
    /// The file's object, written back by `ModelDirectory.save`.
    public let json: [String: Any]
    /// `eos_token_id`: none when absent or null.
    public let eosTokenIds: [Int]

    /// Reads `dir/generation_config.json`; nil when there is none. A file that is not a JSON
    /// object, or an `eos_token_id` that is not an id or a list of ids, is refused naming the
    /// file and the field (transformers logs and ignores an unreadable one: its model would
    /// then stop elsewhere than the file says).
    public static func read(directory dir: String) throws -> GenerationConfig? {
        let path = dir + "/" + fileName
        guard let json = try JSONObjectFile.readIfPresent(path) else { return nil }
        return GenerationConfig(json: json, eosTokenIds: try tokenIds("eos_token_id", in: json, path: path))
    }

    /// A token-id field (`eos_token_id`, `bos_token_id`) of `json`, read from `path`: an id or a
    /// list of ids ≥ 0; none when absent or null. Anything else is refused naming the field.
    public static func tokenIds(_ key: String, in json: [String: Any], path: String) throws -> [Int] {
        let fields = HFConfigFields(path: path, object: json)
        var ids: [Int] = []
        if fields.has(key) {
            if let list = json[key] as? [Any] {
                for (i, _) in list.enumerated() {
                    let item = HFConfigFields(path: path, object: ["\(key)[\(i)]": list[i]])
                    ids.append(try item.int("\(key)[\(i)]"))
                }
            } else {
                ids = [try fields.int(key)]
            }
        }
        if let bad = ids.first(where: { $0 < 0 }) {
            throw fields.error(key, "must hold token ids ≥ 0, got \(bad)")
        }
        return ids
    }

    /// The sampling settings the file asks for that sft-dist does not apply (its flags decide):
    /// "do_sample true, temperature 0.7, top_p 0.8, …", or nil when it asks for none. Said on
    /// stderr by `generate` and `eval`, where transformers would sample with them. `do_sample`
    /// asks as Python reads it (transformers tests `if do_sample:`): a "yes" or a 1 asks too, and
    /// every value is shown as the file writes it ("yes" and a temperature of -1 were not said).
    public var unappliedSampling: String? {
        guard let asked = json["do_sample"], Self.pythonTruth(asked) else { return nil }
        let keys = ["do_sample", "temperature", "top_p", "top_k", "repetition_penalty"].filter { json[$0] != nil && !(json[$0] is NSNull) }
        return keys.map { "\($0) \(HFConfigFields.describe(json[$0]!))" }.joined(separator: ", ")
    }

    /// Python's truth of a JSON value: false, 0, "", [], {} and null are false.
    static func pythonTruth(_ v: Any) -> Bool {
        if v is NSNull { return false }
        if let s = v as? String { return !s.isEmpty }
        if let a = v as? [Any] { return !a.isEmpty }
        if let o = v as? [String: Any] { return !o.isEmpty }
        if let n = v as? NSNumber { return n.doubleValue != 0 }
        return true
    }

    /// The file's bytes as a save writes them (keys sorted, so two saves of one model match).
    public func data() throws -> Data {
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
    }
}
