import Foundation
import Models
import TensorCore

/// `sft-dist merge A B [C…] --weights w1,w2,…`: the weighted sum Σ wᵢ·θᵢ of models of one
/// config, tensor by tensor — linear interpolation and WiSE-FT (two models, weights 1−α, α;
/// Wortsman et al. 2022, arXiv 2109.01903), a uniform model soup (the default weights 1/k;
/// Wortsman et al. 2022, arXiv 2203.05482), or the merge step of Disperse-Then-Merge (sub-models
/// trained on disjoint shards of the data, then averaged; Fu et al. 2024, arXiv 2405.13432).
/// Weights need not sum to 1 (extrapolation, task arithmetic). Sums run in double precision,
/// each tensor element rounded to float32 once.
public enum ModelMerge {
    /// Config fields that name where a model came from or how it was stored, not what it is.
    static let provenanceFields: Set<String> = ["_name_or_path", "transformers_version", "architectures", "torch_dtype", "dtype"]
    /// A BPE tokenizer's files, compared as JSON values (byte for byte where not JSON).
    static let tokenizerFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]

    /// Merges `dirs` into `out` (written atomically); returns a one-line summary.
    public static func merge(_ dirs: [String], weights given: [Double]?, to out: String) throws -> String {
        guard dirs.count >= 2 else { throw ModelError("merge needs at least two model directories (got \(dirs.count))") }
        let weights = given ?? Array(repeating: 1 / Double(dirs.count), count: dirs.count)
        guard weights.count == dirs.count else {
            throw ModelError("--weights has \(weights.count) value\(weights.count == 1 ? "" : "s") for \(dirs.count) models")
        }
        if let bad = weights.first(where: { !$0.isFinite }) { throw ModelError("--weights: \(bad) is not a finite number") }
        if weights.allSatisfy({ $0 == 0 }) { throw ModelError("--weights: every weight is 0, which would write a model of zeros") }
        for d in dirs {
            // merge reads saved models only: no preset (a fresh random init), no adapter.
            try ModelDirectory.checkIsModel(d, for: .merge)
        }
        // One model under several names (`merge A A/`, a symlink) averages it with itself: a copy.
        let real = Set(dirs.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().standardizedFileURL.path })
        if real.count == 1 {
            throw ModelError("merge: \(dirs.map { MessageText.quoted($0, max: 1024) }.joined(separator: " and ")) are one model directory, which merged with itself gives a copy of it; give the models to average")
        }
        // Whether each has the byte tokenizer (a BPE tokenizer.json is parsed once per model).
        let byte = try dirs.map { try ModelDirectory.loadTokenizer($0) is ByteTokenizer }
        for (d, isByte) in zip(dirs, byte).dropFirst() { try checkSameTokenizer(dirs[0], byte[0], d, isByte) }

        let (first, tokenizer) = try ModelDirectory.load(dirs[0], use: .inference, kind: ModelDirectory.savedKind(dirs[0]))
        // Only what is not weights is kept from the other models: one model in memory at a time.
        var templates = [tokenizer.chatTemplateText], generationConfigs = [first.generationConfig]
        let firstConfig = ModelDirectory.configJSON(first, tokenizer: tokenizer)
        let p = first.parameters
        var sum = [Double](repeating: 0, count: p.count)
        func add(_ values: UnsafeMutablePointer<Float>, _ w: Double) {
            for i in 0..<p.count { sum[i] += w * Double(values[i]) }
        }
        add(p.values, weights[0])
        for (d, w) in zip(dirs.dropFirst(), weights.dropFirst()) {
            let (m, t) = try ModelDirectory.load(d, use: .inference, kind: ModelDirectory.savedKind(d))
            templates.append(t.chatTemplateText)
            generationConfigs.append(m.generationConfig)
            try checkSameConfig(firstConfig, dirs[0], ModelDirectory.configJSON(m, tokenizer: t), d)
            guard m.parameters.count == p.count else { throw ModelError("\(d): parameter layout differs from \(dirs[0])'s") }
            add(m.parameters.values, w)
        }
        for i in 0..<p.count { p.values[i] = Float(sum[i]) }
        // Beyond float32, or past √(Float.max) where every product overflows (and every reader
        // of the model gives NaN): refused, as training refuses such weights.
        if let bad = (0..<p.count).first(where: { !(abs(p.values[$0]) < TrainableSet.usableMagnitude) }) {
            let name = p.entries.first { $0.offset <= bad && bad < $0.offset + $0.count }?.name ?? "?"
            let why = p.values[bad].isFinite ? "past 1.8e19 (√ of float32's largest) where products overflow" : "beyond float32"
            throw ModelError("--weights: the weighted sum of \"\(name)\" is \(sum[bad]), \(why); nothing written")
        }
        // As for weights that are all 0: weights that cancel (1,-1 over one model) make nothing.
        if (0..<p.count).allSatisfy({ p.values[$0] == 0 }) {
            throw ModelError("--weights: the weighted sum is 0 in every tensor (the weights cancel, or are too small for float32), which would write a model of zeros; nothing written")
        }
        var notes = try keepFirstGiven(dirs, templates: templates, generationConfigs: generationConfigs, into: first, tokenizer: tokenizer)
        // Meant (task arithmetic, extrapolation), but 0.7,0.7 typed for an average scaled every
        // tensor, norms' gains too, without a word.
        let total = weights.reduce(0, +)
        if abs(total - 1) > 1e-9 {
            notes.append("the weights sum to \(total), not 1: every tensor, norms' gains and biases too, is scaled as a sum, not averaged")
        }
        // Hugging Face files when any model has them (an export of an sft-dist model beside the
        // run's own: the merge loaded in transformers whichever came first).
        let hf = dirs.contains { FileManager.default.fileExists(atPath: $0 + "/tokenizer.json") }
        let recipe = zip(dirs, weights).map { "\($1)×\($0)" }.joined(separator: " + ")
        try ModelDirectory.save(first, tokenizer: tokenizer, to: out, metadata: ["sft_dist_merge": recipe],
                                format: hf ? .hf : .native)
        return "merged \(dirs.count) models (\(recipe)) into \(out)/" + notes.map { "\nnote: \($0)" }.joined()
    }

    /// The chat template and generation_config.json are not weights: where the models differ
    /// (a base and its fine-tune, which records the template it trained with), the merged
    /// model takes the first model's that has one, and the summary says whose.
    static func keepFirstGiven(_ dirs: [String], templates: [String?], generationConfigs configs: [GenerationConfig?],
                               into first: LanguageModel, tokenizer: Tokenizer) throws -> [String] {
        var notes: [String] = []
        if Set(templates.map { $0 ?? "" }).count > 1, let i = templates.firstIndex(where: { $0 != nil }) {
            if i > 0 { try tokenizer.recordChatTemplate(templates[i]!) }
            notes.append("the models' chat templates differ; the merged tokenizer has \(dirs[i])'s")
        }
        let texts = configs.map { $0.map { canonical($0.json) } ?? "" }
        if Set(texts).count > 1, let i = configs.firstIndex(where: { $0 != nil }) {
            first.generationConfig = configs[i]
            notes.append("the models' \(GenerationConfig.fileName) differ; the merged model has \(dirs[i])'s")
        }
        return notes
    }

    /// The two models, as loaded, have one config — as `ModelDirectory.save` would write it,
    /// token ids filled in — every field but provenance agrees, else the first differing field
    /// is named. Compared after loading, not as files, so a Hugging Face base and an sft-dist
    /// fine-tune of it (which writes the same config with its own spelling: no `dtype`,
    /// `rope_theta` for `rope_parameters`, `0` for `0.0`, bos/eos ids it filled in) merge.
    static func checkSameConfig(_ ca: [String: Any], _ aDir: String, _ cb: [String: Any], _ bDir: String) throws {
        for key in Set(ca.keys).union(cb.keys).subtracting(provenanceFields).sorted() {
            let va = ca[key].map(canonical), vb = cb[key].map(canonical)
            if va != vb {
                throw ModelError("\(bDir)/config.json: field \"\(key)\" is \(vb ?? "missing") but \(aDir)/config.json has \(va ?? "none"): merge needs models of the same config")
            }
        }
    }

    /// The same tokenizer as loaded: both sft-dist's byte tokenizer (whatever Hugging Face
    /// files an export added beside it), or both BPE with the same files.
    static func checkSameTokenizer(_ a: String, _ byteA: Bool, _ b: String, _ byteB: Bool) throws {
        if byteA && byteB { return }
        guard byteA == byteB else {
            let (byteDir, bpeDir) = byteA ? (a, b) : (b, a)
            throw ModelError("\(b): tokenizer differs from \(a)'s (\(byteDir) has sft-dist's byte tokenizer, \(bpeDir) a BPE tokenizer.json): merge needs models with the same tokenizer")
        }
        if let difference = tokenizerDifference(a, b) {
            throw ModelError("\(b): tokenizer differs from \(a)'s in \(difference): merge needs models with the same tokenizer (compared file by file as JSON: if it is the same tokenizer saved another way, copy one's tokenizer files to the other)")
        }
    }

    /// The first of a BPE tokenizer's files that differs between directories `a` and `b`, and
    /// how (nil: the same tokenizer). The chat template is not the tokenizer: a fine-tune
    /// records the one it trained with (`ChatTemplateRecord`), so it is left out.
    static func tokenizerDifference(_ a: String, _ b: String) -> String? {
        let fm = FileManager.default
        for file in tokenizerFiles {
            let da = fm.contents(atPath: a + "/" + file), db = fm.contents(atPath: b + "/" + file)
            let without = file == "tokenizer_config.json" ? ["chat_template"] : []
            if da != db && canonicalJSON(da, without: without) != canonicalJSON(db, without: without) {
                return "\(file) (\(da == nil ? "only \(b) has it" : db == nil ? "only \(a) has it" : "the files differ"))"
            }
        }
        return nil
    }

    /// A tokenizer file as sorted-key JSON text, so the same tokenizer saved with another
    /// indentation or key order is the same (nil: absent or not JSON, compared as bytes).
    static func canonicalJSON(_ data: Data?, without keys: [String] = []) -> String? {
        guard let data, var v = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return nil }
        if var object = v as? [String: Any] {
            for k in keys { object[k] = nil }
            v = object
        }
        return canonical(v)
    }

    /// A JSON value as sorted-key text, so equal values compare equal whatever their order.
    static func canonical(_ v: Any) -> String {
        guard let d = try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]) else { return "\(v)" }
        return String(decoding: d, as: UTF8.self)
    }
}
