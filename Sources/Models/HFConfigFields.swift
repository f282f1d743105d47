import Foundation

/// Typed reads of a Hugging Face `config.json` (or `tokenizer_config.json`) object, where every
/// failure is one line naming the file and the field: `config.json: field "rope_theta" must be
/// a number, got "abc"`. JSONSerialization gives NSNumber for both numbers and booleans, so the
/// getters tell them apart explicitly (a `true` must not read as 1).
public struct HFConfigFields {
    public let path: String
    public let object: [String: Any]
    /// Prepended to field names in messages, for a nested object (`rope_parameters.`).
    public let fieldPrefix: String

    public init(path: String, object: [String: Any], fieldPrefix: String = "") {
        self.path = path
        self.object = object
        self.fieldPrefix = fieldPrefix
    }

    /// Parses `path` as a JSON object.
    public init(path: String) throws {
        self.init(path: path, object: try JSONObjectFile.read(path))
    }

    public func error(_ field: String, _ problem: String) -> ModelError {
        ModelError("\(path): field \"\(fieldPrefix)\(field)\" \(problem)")
    }

    public func has(_ field: String) -> Bool { object[field] != nil && !(object[field] is NSNull) }

    public static func isBool(_ v: Any) -> Bool {
        // JSONSerialization's booleans are NSNumbers of Objective-C type "c" (char), on Linux too.
        guard let n = v as? NSNumber else { return false }
        return String(cString: n.objCType) == "c"
    }

    /// A number written with a fraction or an exponent: JSONSerialization gives it Objective-C
    /// type "d" (an integer literal "q" or "Q").
    static func isFloat(_ n: NSNumber) -> Bool {
        let type = String(cString: n.objCType)
        return type == "d" || type == "f"
    }

    private func describe(_ v: Any) -> String { Self.describe(v) }

    /// A field's value as the file writes it, for a message: a string JSON-quoted and cut, a
    /// list or an object as cut JSON.
    public static func describe(_ v: Any) -> String {
        if let s = v as? String { return JSONText.brief(s) }
        if v is NSNull { return "null" }
        if Self.isBool(v) { return (v as! NSNumber).boolValue ? "true" : "false" }
        // A whole config as one field's value made a line of hundreds of characters.
        if let json = JSONText.brief(structure: v) { return (v is [Any] ? "a list " : "an object ") + json }
        return "\(v)"
    }

    public func int(_ field: String, default def: Int? = nil) throws -> Int {
        guard has(field) else {
            if let def { return def }
            throw error(field, "is missing")
        }
        let v = object[field]!
        // 32.0 or 4e0 is a float to Python's json, which transformers then refuses as a size.
        guard !Self.isBool(v), let n = v as? NSNumber, !Self.isFloat(n), n.doubleValue == n.doubleValue.rounded() else {
            throw error(field, "must be an integer, got \(describe(v))")
        }
        guard abs(n.doubleValue) < 1e15 else { throw error(field, "is \(describe(v)), out of range") }
        return n.intValue
    }

    public func positiveInt(_ field: String, default def: Int? = nil) throws -> Int {
        let v = try int(field, default: def)
        if v < 1 { throw error(field, "must be ≥ 1, got \(v)") }
        return v
    }

    public func double(_ field: String, default def: Double? = nil) throws -> Double {
        guard has(field) else {
            if let def { return def }
            throw error(field, "is missing")
        }
        let v = object[field]!
        guard !Self.isBool(v), let n = v as? NSNumber, n.doubleValue.isFinite else {
            throw error(field, "must be a number, got \(describe(v))")
        }
        return n.doubleValue
    }

    public func bool(_ field: String, default def: Bool) throws -> Bool {
        guard has(field) else { return def }
        let v = object[field]!
        guard Self.isBool(v) else { throw error(field, "must be true or false, got \(describe(v))") }
        return (v as! NSNumber).boolValue
    }

    /// An explicit null is refused even where the field has a default: transformers reads
    /// `"hidden_act": null` as None (`ACT2FN[None]` fails), where null number fields such as
    /// `num_key_value_heads` or `head_dim` mean the default there as here.
    public func string(_ field: String, default def: String? = nil) throws -> String {
        guard has(field) else {
            if object[field] is NSNull { throw error(field, "must be a string, got null") }
            if let def { return def }
            throw error(field, "is missing")
        }
        guard let s = object[field] as? String else { throw error(field, "must be a string, got \(describe(object[field]!))") }
        return s
    }

    /// A nested object (e.g. `rope_scaling`), or nil when absent or null.
    public func objectField(_ field: String) throws -> [String: Any]? {
        guard has(field) else { return nil }
        guard let o = object[field] as? [String: Any] else { throw error(field, "must be an object, got \(describe(object[field]!))") }
        return o
    }
}

extension Float {
    /// The double whose shortest decimal is this float's (1e-05, not 9.999999747378752e-06):
    /// what config.json had before it was read into a float, so a written config reads as
    /// transformers wrote it and compares equal to it.
    public var shortestDecimal: Double { Double(description) ?? Double(self) }
}
