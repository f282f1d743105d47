import Foundation

/// A Hugging Face byte-level BPE tokenizer (`tokenizer.json`, as GPT-2, Llama-3 and Qwen2 ship
/// it), encoding exactly as huggingface/tokenizers does with `add_special_tokens=False`:
///
/// 1. added tokens are split out of the raw text first (leftmost-longest, as tokenizers'
///    `AddedVocabulary` does with Aho-Corasick): those with `normalized: false` on the raw text,
///    the others on the normalized text;
/// 2. the normalizer (NFC for Qwen2) runs on what is left;
/// 3. the pre-tokenizer splits it (`PreTokenizerRegex`), each piece becomes UTF-8 bytes;
/// 4. BPE merges each piece (`BPEModel`).
///
/// `encodePlain` skips step 1 for special tokens (tokenizers' `split_special_tokens=True`), so
/// user text can never produce a control token. BOS is never added here: chat templates and the
/// data pipeline add `bosId` explicitly, where the model family expects it.
///
/// `tokenizer_config.json` (next to tokenizer.json) supplies eos/bos/pad tokens and the chat
/// template (or `chat_template.jinja`, where newer transformers put it); `special_tokens_map.json`
/// overrides its token names when the config is of the older kind, without `added_tokens_decoder`,
/// as transformers (5.24, `_from_pretrained`) reads them.
public final class BPETokenizer: Tokenizer, @unchecked Sendable {
    public let vocabSize: Int
    public let eosId: Int32
    public let padId: Int32
    public let bosId: Int32?
    /// Set when no file named the eos token and `<|endoftext|>` was taken, as GPT-2's and
    /// Qwen2's tokenizer classes default to: a run says so.
    public let eosNote: String?
    /// Set when tokenizer_config.json's `add_bos_token` asks for a BOS that tokenizer.json's
    /// post-processor does not add: a run says which it follows.
    public let bosNote: String?
    public let templateBOS: String?
    public let specialTokens: [String: Int32]
    /// The `chat_template` text from tokenizer_config.json / chat_template.jinja, if any.
    public private(set) var chatTemplateText: String?
    /// Raw bytes of the files this tokenizer was read from (file name → contents), so an export
    /// writes them back unchanged — but for a chat template recorded by `recordChatTemplate`.
    public private(set) var sourceFiles: [String: Data]

    private let json: TokenizerJSON
    var bpeModel: BPEModel { json.model }
    private let idToToken: [Int32: String]
    /// Added tokens matched on the raw text / on normalized text: all of them (`encode`), and
    /// only the non-special ones (`encodePlain`).
    private let rawAdded: (all: AddedTokenMatcher, plain: AddedTokenMatcher)
    private let normalizedAdded: (all: AddedTokenMatcher, plain: AddedTokenMatcher)

    /// Files copied on export when present.
    public static let companionFiles = ["tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"]

    /// Reads `tokenizer.json` at `path`, with tokenizer_config.json & co. from its directory.
    public convenience init(path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        var files: [String: Data] = [:]
        do {
            files["tokenizer.json"] = try InputFile.read(path, limit: TokenizerJSON.maxFileBytes, what: "a tokenizer.json")
            for name in Self.companionFiles {
                let companion = (dir.isEmpty ? "." : dir) + "/" + name
                if let d = try InputFile.readIfPresent(companion, limit: JSONObjectFile.defaultLimit, what: "a tokenizer companion file") {
                    files[name] = d
                }
            }
        } catch let p as InputFile.Problem {
            throw ModelError(p.description)
        }
        try self.init(path: path, files: files)
    }

    init(path: String, files: [String: Data]) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let parsed = try TokenizerJSON(path: path, data: files["tokenizer.json"] ?? Data())
        json = parsed
        sourceFiles = files
        var inverse: [Int32: String] = [:]
        for (t, id) in parsed.model.vocab { inverse[id] = t }
        var specials: [String: Int32] = [:]
        for a in parsed.added {
            inverse[a.id] = a.content
            if a.special { specials[a.content] = a.id }
        }
        idToToken = inverse
        specialTokens = specials
        vocabSize = Int(inverse.keys.max() ?? -1) + 1

        let normalizers = parsed.normalizers
        func matchers(_ tokens: [TokenizerJSON.AddedToken], _ text: (String) -> String) -> (AddedTokenMatcher, AddedTokenMatcher) {
            (AddedTokenMatcher(tokens.map { (Array(text($0.content).utf8), $0.id) }),
             AddedTokenMatcher(tokens.filter { !$0.special }.map { (Array(text($0.content).utf8), $0.id) }))
        }
        rawAdded = matchers(parsed.added.filter { !$0.normalized }, { $0 })
        normalizedAdded = matchers(parsed.added.filter { $0.normalized }, { Self.normalize($0, normalizers) })

        // tokenizer_config.json: special token names and the chat template.
        let configPath = (dir.isEmpty ? "." : dir) + "/tokenizer_config.json"
        var config: [String: Any] = [:]
        if let d = files["tokenizer_config.json"] {
            config = try JSONObjectFile.parse(d, path: configPath)
        }
        // The older kind of config (no added_tokens_decoder): special_tokens_map.json's names win.
        let mapPath = (dir.isEmpty ? "." : dir) + "/special_tokens_map.json"
        var map: [String: Any] = [:]
        if config["added_tokens_decoder"] == nil, let d = files["special_tokens_map.json"] {
            map = try JSONObjectFile.parse(d, path: mapPath)
        }
        func name(_ v: Any?) -> String? { v as? String ?? (v as? [String: Any])?["content"] as? String }
        /// The token a field names and the file that names it. A field of another type (a
        /// number, a list) is refused: read as absent, eos_token 5 was reported missing and a
        /// pad_token 5 silently became the end-of-text token.
        func tokenName(_ field: String) throws -> (name: String, file: String)? {
            for (fields, file) in [(map, mapPath), (config, configPath)] {
                guard let v = fields[field], !(v is NSNull) else { continue }
                guard let n = name(v) else {
                    throw ModelError("\(file): field \"\(field)\" must be a token (a string, or an object with a string \"content\"), got \(v is NSNumber ? "a number" : v is [Any] ? "a list" : "an object without a string content")")
                }
                return (n, file)
            }
            return nil
        }
        func idOf(_ named: (name: String, file: String), field: String) throws -> Int32 {
            let n = named.name
            if let id = specials[n] ?? parsed.added.first(where: { $0.content == n })?.id ?? parsed.model.vocab[n] { return id }
            throw ModelError("\(named.file): field \"\(field)\" is \(JSONText.brief(n)), which is not a token of \(path)")
        }
        if let eos = try tokenName("eos_token") {
            eosId = try idOf(eos, field: "eos_token")
            eosNote = nil
        } else if let id = specials["<|endoftext|>"] ?? parsed.model.vocab["<|endoftext|>"] {
            eosId = id
            eosNote = "note: no eos_token in \(files["tokenizer_config.json"] == nil ? "\(dir.isEmpty ? "." : dir) (no tokenizer_config.json)" : configPath); <|endoftext|> (id \(id)) ends each example, as transformers' GPT-2 and Qwen2 tokenizers default to"
        } else {
            let named = files["tokenizer_config.json"] == nil ? "\(dir.isEmpty ? "." : dir) has no tokenizer_config.json" : "\(configPath): field \"eos_token\" is missing"
            throw ModelError("\(named) and \(path) has no <|endoftext|> token: no end-of-text token to end examples with (add tokenizer_config.json with \"eos_token\")")
        }
        padId = try tokenName("pad_token").map { try idOf($0, field: "pad_token") } ?? eosId
        // Only a BOS the tokenizer itself adds (tokenizer.json's post-processor) is added by us.
        // transformers 5 drops tokenizer_config.json's add_bos_token when tokenizer.json is there
        // (`_from_pretrained`), so it adds none; 4.x's Llama tokenizer rebuilt its post-processor
        // from it. A model trained that way expects one: the log says which is followed.
        let asksForBOS = (config["add_bos_token"] as? NSNumber)?.boolValue == true
        let bos = try tokenName("bos_token")
        templateBOS = bos?.name
        if let b = bos {
            bosId = parsed.bosFromTemplate == b.name ? try idOf(b, field: "bos_token") : nil
        } else {
            bosId = try parsed.bosFromTemplate.map { try idOf(($0, path), field: "post_processor") }
        }
        bosNote = asksForBOS && bosId == nil
            ? "note: \(configPath) sets add_bos_token, which \(path)'s post-processor does not do; no \(bos.map { JSONText.brief($0.name) } ?? "BOS") is added before each example, as transformers 5 encodes (transformers 4's Llama tokenizers added it: a model trained that way expects it; add it to the post-processor to keep it)"
            : nil
        // chat_template.jinja first: transformers (5.24) reads it over tokenizer_config.json's.
        if let d = files["chat_template.jinja"] {
            chatTemplateText = String(decoding: d, as: UTF8.self)
        } else if let t = config["chat_template"] as? String {
            chatTemplateText = t
        } else if let list = config["chat_template"] as? [[String: Any]] {
            chatTemplateText = list.first { $0["name"] as? String == "default" }?["template"] as? String
        } else {
            chatTemplateText = nil
        }
    }

    /// Makes `jinja` the chat template the tokenizer's files are saved with: tokenizer_config.json's
    /// `chat_template` (the file made if there was none), and no chat_template.jinja, which newer
    /// transformers would read instead. Encoding is unchanged.
    public func recordChatTemplate(_ jinja: String) throws {
        var config: [String: Any] = [:]
        if let d = sourceFiles["tokenizer_config.json"] { config = try JSONObjectFile.parse(d, path: "tokenizer_config.json") }
        config["chat_template"] = jinja
        sourceFiles["tokenizer_config.json"] = try JSONSerialization.data(withJSONObject: config,
                                                                          options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        sourceFiles["chat_template.jinja"] = nil
        chatTemplateText = jinja
    }

    // MARK: encoding

    static func normalize(_ s: String, _ normalizers: [TokenizerJSON.Normalizer]) -> String {
        var s = s
        for n in normalizers {
            switch n {
            case .nfc: s = CanonicalComposition.nfc(s)  // not Foundation's: see there
            case .nfd: s = s.decomposedStringWithCanonicalMapping
            case .nfkc: s = s.precomposedStringWithCompatibilityMapping
            case .nfkd: s = s.decomposedStringWithCompatibilityMapping
            }
        }
        return s
    }

    private enum Segment { case token(Int32), text(String) }

    /// Leftmost-longest split of `text` on the given added tokens (`specials`: all of them,
    /// else the non-special ones).
    private func splitAdded(_ text: String, _ matchers: (all: AddedTokenMatcher, plain: AddedTokenMatcher), specials: Bool) -> [Segment] {
        let matcher = specials ? matchers.all : matchers.plain
        if matcher.isEmpty { return [.text(text)] }
        let bytes = Array(text.utf8)
        var out: [Segment] = []
        var i = 0, start = 0
        while i < bytes.count {
            if let best = matcher.longestMatch(bytes, at: i) {
                if start < i { out.append(.text(String(decoding: bytes[start..<i], as: UTF8.self))) }
                out.append(.token(best.id))
                i += best.length
                start = i
            } else {
                i += 1
            }
        }
        if start < bytes.count { out.append(.text(String(decoding: bytes[start...], as: UTF8.self))) }
        return out
    }

    private func encodeText(_ text: String, specials: Bool, into ids: inout [Int32]) {
        let normalized = Self.normalize(text, json.normalizers)
        for seg in splitAdded(normalized, normalizedAdded, specials: specials) {
            switch seg {
            case .token(let id): ids.append(id)
            case .text(var t):
                let pieces: [String]
                switch json.preTokenization {
                case .byteLevel(let prefix):
                    if prefix && !t.hasPrefix(" ") { t = " " + t }
                    pieces = Self.gpt2Regex.split(t)
                case .split(let regex, let prefix):
                    pieces = regex.split(t).map { prefix && !$0.hasPrefix(" ") ? " " + $0 : $0 }
                }
                for p in pieces { ids += json.model.tokenize(Array(p.utf8)) }
            }
        }
    }

    private static let gpt2Regex = try! PreTokenizerRegex(pattern: PreTokenizerRegex.gpt2)

    private func encode(_ text: String, specials: Bool) -> [Int32] {
        var ids: [Int32] = []
        for seg in splitAdded(text, rawAdded, specials: specials) {
            switch seg {
            case .token(let id): ids.append(id)
            case .text(let t): encodeText(t, specials: specials, into: &ids)
            }
        }
        return ids
    }

    public func encode(_ text: String) -> [Int32] { encode(text, specials: true) }
    public func encodePlain(_ text: String) -> [Int32] { encode(text, specials: false) }

    // MARK: decoding

    /// tokenizers' ByteLevel decoder over all tokens (specials included, as with
    /// `skip_special_tokens=False`); invalid UTF-8 becomes U+FFFD, an unknown id U+FFFD.
    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        for id in ids {
            if let t = idToToken[id] { bytes += ByteLevel.decode(token: t) } else { bytes += Array("\u{FFFD}".utf8) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func specialTokenId(_ text: String) -> Int32? { specialTokens[text] }

    /// The token string of an id (vocabulary or added token).
    public func token(_ id: Int32) -> String? { idToToken[id] }
}
