import Foundation

/// The values a setting accepts, with the words that say so in an error ("an integer in 1…1024").
/// Count-like settings are bounded above as well as below: a value is range-checked before
/// anything is sized from it, so an absurd batch size is a message, not a failed allocation.
public struct Limits<Value>: Sendable {
    let accepts: @Sendable (Value) -> Bool
    public let text: String
    /// For a selection flag given more than once (`--freeze a --freeze b`): the one flag text
    /// that selects what any of them does; nil: the last value given counts.
    let union: (@Sendable ([String]) -> String)?

    public init(_ text: String, union: (@Sendable ([String]) -> String)? = nil, accepts: @escaping @Sendable (Value) -> Bool) {
        self.text = text
        self.union = union
        self.accepts = accepts
    }
}

extension Limits where Value == Int {
    public static func within(_ r: ClosedRange<Int>) -> Limits {
        Limits("an integer in \(r.lowerBound)…\(r.upperBound)") { r.contains($0) }
    }
}

extension Limits where Value: BinaryFloatingPoint {
    /// A finite number between `low` and `high`; `open` bounds exclude their end.
    public static func within(_ low: Value, _ high: Value, openLow: Bool = false, openHigh: Bool = false) -> Limits {
        let text = "a number in \(openLow ? "(" : "[")\(low.shortText), \(high.shortText)\(openHigh ? ")" : "]")"
        return Limits(text) { v in
            v.isFinite && (openLow ? v > low : v >= low) && (openHigh ? v < high : v <= high)
        }
    }
}

extension Limits where Value: BinaryFloatingPoint {
    /// A finite number above 0, with no upper limit (nothing is sized from it).
    public static var positive: Limits { Limits("a finite number > 0") { $0.isFinite && $0 > 0 } }
}

extension Limits where Value == UInt64 {
    public static var any: Limits { Limits("an integer in 0…\(UInt64.max)") { _ in true } }
}

extension Limits where Value == String {
    public static func oneOf(_ names: [String]) -> Limits {
        Limits("one of \(names.joined(separator: ", "))") { names.contains($0) }
    }
    public static var nonEmpty: Limits { Limits("a non-empty string") { !$0.isEmpty } }
}

extension Limits where Value: RawRepresentable & CaseIterable, Value.RawValue == String {
    /// Every case of a recipe enum (optimizer, schedule, …).
    public static var cases: Limits { Limits("one of \(Value.allCases.map(\.rawValue).joined(separator: ", "))") { _ in true } }
}

extension BinaryFloatingPoint {
    /// 1e-08 → "1e-08", 0.5 → "0.5", 86400 → "86400": short enough for a message.
    var shortText: String { String(format: "%g", Double(self)) }
}

/// One command-line or recipe setting: its name (snake_case, as recipes spell it; the flag is
/// the kebab-case form), what it accepts and what it means. Declared once in `Settings` (shared
/// between subcommands) or in a `RecipeKey`, and read by the CLI for the flag's name and help.
public struct Setting<Value>: Sendable {
    public let name: String
    public let limits: Limits<Value>
    public let help: String

    public init(_ name: String, _ limits: Limits<Value>, _ help: String) {
        self.name = name
        self.limits = limits
        self.help = help
    }

    /// `--max-new-tokens` for `max_new_tokens`.
    public var flag: String { name.replacingOccurrences(of: "_", with: "-") }

    /// The same limits under another name (eval's `--examples` is the recipe's `eval_examples`).
    public func named(_ other: String, help: String? = nil) -> Setting {
        Setting(other, limits, help ?? self.help)
    }

    /// Throws unless `value` is within the limits; the message names the flag.
    public func check(_ value: Value) throws {
        if !limits.accepts(value) {
            throw RecipeError("--\(flag) must be \(limits.text) (got \(RecipeError.quote("\(value)")))")
        }
    }
}

/// A setting out of its limits, a value of the wrong type, a malformed recipe: one line that
/// names the flag or key (exit code 1, "bad input").
public struct RecipeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }

    /// A value as it may appear in a message: at most `limit` characters, control characters
    /// escaped, so a 50 MB value pasted into a recipe cannot make a 50 MB or multi-line error.
    public static func quote(_ s: String, limit: Int = 40) -> String {
        let scalars = s.unicodeScalars
        let cut = scalars.prefix(limit + 1).count > limit
        let head = cut ? String(String.UnicodeScalarView(scalars.prefix(limit))) : s
        let plain = head.unicodeScalars.allSatisfy { $0 == " " || ($0.value > 0x20 && $0.value != 0x7F && !$0.properties.isWhitespace) }
        var text = plain ? head : String(head.debugDescription.dropFirst().dropLast())
        if cut { text += "… (\(s.utf8.count) bytes)" }
        return text
    }
}
