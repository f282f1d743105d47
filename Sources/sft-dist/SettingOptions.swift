import ArgumentParser
import Foundation
import Training

/// Flags whose name, help and limits come from a declaration (`Settings`, `RecipeKeys`), so a
/// setting is declared once and every subcommand that takes it says and checks the same thing.
/// Values are parsed `.unconditional`ly: `--steps -1` is the value -1 (refused with the limit),
/// not a missing value followed by an unknown flag.
extension Option where Value: ExpressibleByArgument {
    init(wrappedValue: Value, _ setting: Setting<Value>) {
        self.init(wrappedValue: wrappedValue, name: .customLong(setting.flag), parsing: .unconditional,
                  help: ArgumentHelp("\(setting.help) [\(setting.limits.text)]"))
    }
}

/// A flag read by a parser of its own (decimal numbers; integers that say their limits): one
/// set of initialisers for every such type.
protocol ReadFlag: ExpressibleByArgument {
    static func reader(_ setting: Setting<Self>) -> (String) throws -> Self
}

extension Option where Value: ReadFlag {
    /// A transform hides the default from ArgumentParser's help, so the help says it.
    init(wrappedValue: Value, _ setting: Setting<Value>) {
        self.init(wrappedValue: wrappedValue, name: .customLong(setting.flag), parsing: .unconditional,
                  help: ArgumentHelp("\(setting.help) [\(setting.limits.text)] (default: \(wrappedValue))"),
                  transform: Value.reader(setting))
    }
}

extension Option {
    init<T: ReadFlag>(_ setting: Setting<T>) where Value == T? {
        self.init(name: .customLong(setting.flag), parsing: .unconditional,
                  help: ArgumentHelp("\(setting.help) [\(setting.limits.text)]"), transform: T.reader(setting))
    }

    init<T: ReadFlag>(_ setting: Setting<T>, default text: String) where Value == T? {
        self.init(name: .customLong(setting.flag), parsing: .unconditional,
                  help: ArgumentHelp("\(setting.help) [\(setting.limits.text)] (default: \(text))"), transform: T.reader(setting))
    }
}

/// Float and Double flags read decimal numbers only. ArgumentParser reads them with Swift's
/// `Float(_:)`, which takes hexadecimal (`eval --temperature 0x1` sampled at 1, `--watchdog 0x10`
/// waited 16 s), where train's recipe keys and the README refuse it (`Double(decimal:)`).
protocol DecimalFlag: ReadFlag {
    init?(decimal text: String)
}

extension Float: DecimalFlag {
    init?(decimal text: String) {
        guard let d = Double(decimal: text) else { return nil }
        self = Float(d)
    }
}

extension Double: DecimalFlag {}

struct NotDecimal: Error, CustomStringConvertible {
    let description = "not a decimal number"
}

func decimalFlag<T: DecimalFlag>(_ text: String) throws -> T {
    guard let value = T(decimal: text) else { throw NotDecimal() }
    return value
}

extension DecimalFlag {
    static func reader(_ setting: Setting<Self>) -> (String) throws -> Self { decimalFlag }
}

/// Integer flags say their limits when the text is not an integer of the type: `make-data
/// --seed -1` was "The value '-1' is invalid for '--seed <seed>'", where train's `--seed -1`
/// says the range (`SFTDist.flagValueLine` words both alike).
protocol IntegerFlag: ReadFlag, LosslessStringConvertible {}
extension Int: IntegerFlag {}
extension UInt64: IntegerFlag {}

struct NotAnIntegerInLimits: Error, CustomStringConvertible {
    let description: String
}

extension IntegerFlag {
    static func reader(_ setting: Setting<Self>) -> (String) throws -> Self {
        { text in
            guard let value = Self(text) else { throw NotAnIntegerInLimits(description: "must be \(setting.limits.text)") }
            return value
        }
    }
}

extension Option {
    init<T: ExpressibleByArgument>(_ setting: Setting<T>) where Value == T? {
        self.init(name: .customLong(setting.flag), parsing: .unconditional,
                  help: ArgumentHelp("\(setting.help) [\(setting.limits.text)]"))
    }

    /// The same, for a flag with a default that a check must tell from the flag given at that
    /// value (a setting that would do nothing is refused when given): the help names the default.
    init<T: ExpressibleByArgument>(_ setting: Setting<T>, default text: String) where Value == T? {
        self.init(name: .customLong(setting.flag), parsing: .unconditional,
                  help: ArgumentHelp("\(setting.help) [\(setting.limits.text)] (default: \(text))"))
    }

    /// A `train` flag for a recipe key. It is read as text and converted by the key, as the
    /// recipe's YAML value is; `Train.makeRecipe` applies it by the property's name.
    init<T>(recipe path: KeyPath<RecipeKeys, RecipeKey<T>>) where Value == String? {
        let key = Recipe.declared[keyPath: path]
        self.init(name: .customLong(key.flag), parsing: .unconditional, help: ArgumentHelp(key.help))
    }

    /// A `train` selection flag that may be given more than once (`--freeze a --freeze b`):
    /// the key joins the values (`Limits.union`), where another flag's last value counts.
    init<T>(selection path: KeyPath<RecipeKeys, RecipeKey<T>>) where Value == [String] {
        let key = Recipe.declared[keyPath: path]
        self.init(wrappedValue: [], name: .customLong(key.flag), parsing: .unconditionalSingleValue,
                  help: ArgumentHelp(key.help + " Given more than once: what any of them selects."))
    }

    /// A repeatable `train` flag for a map key (`--objective-arg k=v`).
    init(recipe path: KeyPath<RecipeKeys, RecipeKey<[String: String]>>) where Value == [String] {
        let key = Recipe.declared[keyPath: path]
        self.init(wrappedValue: [], name: .customLong(key.flag), parsing: .unconditionalSingleValue, help: ArgumentHelp(key.help))
    }

    /// A repeatable `train` flag for named files (`--eval-data NAME=FILE`).
    init(recipe path: KeyPath<RecipeKeys, RecipeKey<NamedFiles>>) where Value == [String] {
        let key = Recipe.declared[keyPath: path]
        self.init(wrappedValue: [], name: .customLong(key.flag), parsing: .unconditionalSingleValue, help: ArgumentHelp(key.help))
    }
}

extension Flag where Value == Bool? {
    /// `--packing` / `--no-packing` for a true-or-false recipe key.
    init(recipe path: KeyPath<RecipeKeys, RecipeKey<Bool>>) {
        let key = Recipe.declared[keyPath: path]
        self.init(name: .customLong(key.flag), inversion: .prefixedNo, help: ArgumentHelp(key.help))
    }
}

extension Setting {
    /// For `validate()` of the subcommands: nil (flag not given) passes.
    func check(_ value: Value?) throws {
        if let value { try check(value) }
    }
}

extension Option where Value == [String] {
    /// A repeatable `train` flag for a list key (`--reward exact --reward regex=0.2`).
    init(recipe path: KeyPath<RecipeKeys, RecipeKey<[String]>>) {
        let key = Recipe.declared[keyPath: path]
        self.init(wrappedValue: [], name: .customLong(key.flag), parsing: .unconditionalSingleValue, help: ArgumentHelp(key.help))
    }
}
