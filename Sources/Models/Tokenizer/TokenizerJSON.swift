import Foundation

/// Reads the parts of a Hugging Face `tokenizer.json` (huggingface/tokenizers serialisation) that
/// byte-level BPE uses, refusing every setting that would make our ids differ from the library's.
/// Each refusal is one line naming the file and the JSON path of the field.
struct TokenizerJSON {
    struct AddedToken {
        var id: Int32
        var content: String
        var special: Bool
        var normalized: Bool
    }

    enum Normalizer: Equatable { case nfc, nfd, nfkc, nfkd }

    enum PreTokenization {
        /// `ByteLevel(use_regex: true)`: GPT-2 regex, optional prefix space per segment.
        case byteLevel(addPrefixSpace: Bool)
        /// `Sequence[Split(Regex, Isolated), ByteLevel(use_regex: false)]`.
        case split(PreTokenizerRegex, addPrefixSpace: Bool)
    }

    /// Limits far above real tokenizers (Llama-3 has 256 added tokens, the longest ~30 bytes;
    /// Gemma-3's whole tokenizer.json is 33 MB) that bound loading and added-token matching.
    static let maxFileBytes = 1 << 26
    static let maxAddedTokens = 1 << 17
    static let maxAddedTokenBytes = 1024

    var model: BPEModel
    var added: [AddedToken]
    var normalizers: [Normalizer]
    var preTokenization: PreTokenization
    /// Leading special token of the post-processor's `single` template (Llama-3's BOS).
    var bosFromTemplate: String?

    init(path: String, data: Data) throws {
        // Every added token is a JSON object, and Foundation's parse of many small objects
        // takes ≈ 100× the text's size: count them first (the rest of a tokenizer.json holds a
        // handful), so 10^6 added tokens are refused without parsing.
        let objectLimit = Self.maxAddedTokens + 4096
        guard JSONNesting.objectCount(data, limit: objectLimit) <= objectLimit else {
            throw ModelError("\(path): more than \(objectLimit) JSON objects; at most \(Self.maxAddedTokens) added tokens (one object each) are supported")
        }
        let root = try JSONObjectFile.parse(data, path: path)
        func bad(_ field: String, _ problem: String) -> ModelError { ModelError("\(path): field \"\(field)\" \(problem)") }

        // model
        guard let m = root["model"] as? [String: Any] else { throw bad("model", "is missing or not an object") }
        let type = m["type"] as? String ?? "BPE"
        guard type == "BPE" else { throw bad("model.type", "is \(JSONText.brief(type)); only BPE (byte-level) tokenizers are supported") }
        if let d = m["dropout"], !(d is NSNull), (d as? NSNumber)?.doubleValue ?? 1 > 0 {
            throw bad("model.dropout", "must be null (BPE dropout makes encoding random)")
        }
        for f in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = m[f], !(v is NSNull), (v as? String) != "" { throw bad("model.\(f)", "must be null for byte-level BPE") }
        }
        guard let vocabObj = m["vocab"] as? [String: Any] else { throw bad("model.vocab", "is missing or not an object") }
        var vocab: [String: Int32] = [:]
        vocab.reserveCapacity(vocabObj.count)
        for (tok, v) in vocabObj {
            guard let n = v as? NSNumber, n.int64Value >= 0, n.int64Value < Int64(Int32.max) else {
                throw bad("model.vocab", "entry \(JSONText.brief(tok)) must map to a non-negative integer id")
            }
            vocab[tok] = Int32(n.int64Value)
        }
        guard let mergesArr = m["merges"] as? [Any] else { throw bad("model.merges", "is missing or not an array") }
        var merges: [(String, String)] = []
        merges.reserveCapacity(mergesArr.count)
        for (i, e) in mergesArr.enumerated() {
            if let s = e as? String {  // legacy "a b"
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw bad("model.merges", "entry \(i) \(JSONText.brief(s)) is not two tokens separated by one space") }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let p = e as? [Any], p.count == 2, let a = p[0] as? String, let b = p[1] as? String {
                merges.append((a, b))
            } else {
                throw bad("model.merges", "entry \(i) must be \"a b\" or [\"a\", \"b\"]")
            }
        }
        func flag(_ f: String) -> Bool { (m[f] as? NSNumber)?.boolValue ?? false }
        model = try BPEModel(vocab: vocab, merges: merges, ignoreMerges: flag("ignore_merges"),
                             unkToken: m["unk_token"] as? String, fuseUnk: flag("fuse_unk"),
                             byteFallback: flag("byte_fallback"), source: path)

        // added_tokens
        added = []
        let addedList = (root["added_tokens"] as? [Any]) ?? []
        if addedList.count > Self.maxAddedTokens {
            throw bad("added_tokens", "has \(addedList.count) entries; at most \(Self.maxAddedTokens) are supported")
        }
        for (i, e) in addedList.enumerated() {
            guard let t = e as? [String: Any], let n = t["id"] as? NSNumber, n.int64Value >= 0, n.int64Value < Int64(Int32.max),
                  let content = t["content"] as? String, !content.isEmpty else {
                throw bad("added_tokens[\(i)]", "must have a non-negative integer \"id\" and a non-empty \"content\"")
            }
            let id = Int32(n.int64Value)
            if content.utf8.count > Self.maxAddedTokenBytes {
                throw bad("added_tokens[\(i)].content", "is \(content.utf8.count) bytes long; at most \(Self.maxAddedTokenBytes) are supported")
            }
            for f in ["single_word", "lstrip", "rstrip"] where (t[f] as? NSNumber)?.boolValue == true {
                throw bad("added_tokens[\(i)].\(f)", "is true for \(JSONText.brief(content)); only false is supported")
            }
            let special = (t["special"] as? NSNumber)?.boolValue ?? false
            added.append(AddedToken(id: id, content: content, special: special,
                                    normalized: (t["normalized"] as? NSNumber)?.boolValue ?? !special))
        }

        normalizers = try Self.normalizers(root["normalizer"], field: "normalizer", bad: bad)
        preTokenization = try Self.preTokenization(root["pre_tokenizer"], bad: bad)
        if let d = root["decoder"] as? [String: Any] {
            let t = d["type"] as? String ?? "?"
            if t != "ByteLevel" { throw bad("decoder.type", "is \(JSONText.brief(t)); only ByteLevel is supported") }
        } else {
            throw bad("decoder", "must be ByteLevel for a byte-level BPE tokenizer")
        }
        bosFromTemplate = Self.leadingSpecial(root["post_processor"])
    }

    private static func normalizers(_ v: Any?, field: String, bad: (String, String) -> ModelError) throws -> [Normalizer] {
        guard let v, !(v is NSNull) else { return [] }
        guard let o = v as? [String: Any], let t = o["type"] as? String else { throw bad(field, "must be an object with a \"type\"") }
        switch t {
        case "NFC": return [.nfc]
        case "NFD": return [.nfd]
        case "NFKC": return [.nfkc]
        case "NFKD": return [.nfkd]
        case "Sequence":
            var out: [Normalizer] = []
            for (i, n) in ((o["normalizers"] as? [Any]) ?? []).enumerated() {
                out += try normalizers(n, field: "\(field).normalizers[\(i)]", bad: bad)
            }
            return out
        default: throw bad("\(field).type", "is \(JSONText.brief(t)); supported: NFC, NFD, NFKC, NFKD, Sequence")
        }
    }

    private static func preTokenization(_ v: Any?, bad: (String, String) -> ModelError) throws -> PreTokenization {
        guard let o = v as? [String: Any], let t = o["type"] as? String else {
            throw bad("pre_tokenizer", "must be ByteLevel or Sequence[Split, ByteLevel] for byte-level BPE")
        }
        func byteLevel(_ b: [String: Any], _ field: String) throws -> (prefix: Bool, regex: Bool) {
            guard b["type"] as? String == "ByteLevel" else { throw bad(field, "must be ByteLevel") }
            return ((b["add_prefix_space"] as? NSNumber)?.boolValue ?? true, (b["use_regex"] as? NSNumber)?.boolValue ?? true)
        }
        if t == "ByteLevel" {
            let b = try byteLevel(o, "pre_tokenizer")
            guard b.regex else { throw bad("pre_tokenizer.use_regex", "must be true when ByteLevel is the only pre-tokenizer") }
            return .byteLevel(addPrefixSpace: b.prefix)
        }
        guard t == "Sequence", let seq = o["pretokenizers"] as? [[String: Any]], seq.count == 2 else {
            throw bad("pre_tokenizer.type", "is \(JSONText.brief(t)); supported: ByteLevel, or Sequence of Split(Regex) then ByteLevel")
        }
        let s = seq[0]
        guard s["type"] as? String == "Split" else { throw bad("pre_tokenizer.pretokenizers[0].type", "must be Split") }
        guard let pat = (s["pattern"] as? [String: Any])?["Regex"] as? String else {
            throw bad("pre_tokenizer.pretokenizers[0].pattern", "must be {\"Regex\": …}")
        }
        guard (s["behavior"] as? String) == "Isolated", (s["invert"] as? NSNumber)?.boolValue != true else {
            throw bad("pre_tokenizer.pretokenizers[0].behavior", "must be Isolated with invert false")
        }
        let regex: PreTokenizerRegex
        do { regex = try PreTokenizerRegex(pattern: pat) } catch let e as PreTokenizerRegex.Unsupported {
            throw bad("pre_tokenizer.pretokenizers[0].pattern.Regex", "has an unsupported alternative \(JSONText.brief(e.part))")
        }
        let b = try byteLevel(seq[1], "pre_tokenizer.pretokenizers[1]")
        guard !b.regex else { throw bad("pre_tokenizer.pretokenizers[1].use_regex", "must be false after a Split") }
        return .split(regex, addPrefixSpace: b.prefix)
    }

    /// `TemplateProcessing.single` = [SpecialToken X, Sequence A, …] → X.
    private static func leadingSpecial(_ v: Any?) -> String? {
        guard let o = v as? [String: Any] else { return nil }
        if o["type"] as? String == "Sequence" {
            for p in (o["processors"] as? [Any]) ?? [] { if let s = leadingSpecial(p) { return s } }
            return nil
        }
        guard o["type"] as? String == "TemplateProcessing", let single = o["single"] as? [[String: Any]],
              let first = single.first, let sp = first["SpecialToken"] as? [String: Any] else { return nil }
        return sp["id"] as? String
    }
}
