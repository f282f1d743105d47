/// One component's state: small values (written into `state.json`, readable by people) and
/// tensors (written into a safetensors file). Floating-point state belongs in tensors: they
/// round-trip bit for bit, NaN included.
public struct ComponentState: Equatable {
    public var values: [String: StateValue]
    public var tensors: [String: StateTensor]
    public init(values: [String: StateValue] = [:], tensors: [String: StateTensor] = [:]) {
        self.values = values; self.tensors = tensors
    }

    // Readers for `restoreState`: each names the field when it is missing or unusable.

    public func value(_ key: String) throws -> StateValue {
        guard let v = values[key] else { throw StateError(.value, key, "is missing") }
        return v
    }

    public func int(_ key: String, in range: ClosedRange<Int>) throws -> Int {
        guard case .int(let v) = try value(key) else { throw StateError(.value, key, "is not an integer") }
        guard range.contains(v) else { throw StateError(.value, key, "is \(v), outside \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    public func bool(_ key: String) throws -> Bool {
        guard case .bool(let v) = try value(key) else { throw StateError(.value, key, "is not true or false") }
        return v
    }

    public func string(_ key: String) throws -> String {
        guard case .string(let v) = try value(key) else { throw StateError(.value, key, "is not a string") }
        return v
    }

    public func ints(_ key: String) throws -> [Int] {
        guard case .ints(let v) = try value(key) else { throw StateError(.value, key, "is not a list of integers") }
        return v
    }

    /// 64-bit words (random-stream states, seeds), stored as 16-digit hex strings.
    public func words(_ key: String) throws -> [UInt64] {
        switch try value(key) {
        case .words(let w): return w
        case .ints(let v) where v.isEmpty: return []
        default: throw StateError(.value, key, "is not a list of 64-bit hex words")
        }
    }

    /// The tensor's values, which must number `count`.
    public func tensor(_ key: String, count: Int) throws -> [Float] {
        guard let t = tensors[key] else { throw StateError(.tensor, key, "is missing") }
        guard t.values.count == count else { throw StateError(.tensor, key, "has \(t.values.count) values, this run needs \(count)") }
        return t.values
    }

    /// Refuses tensors other than `names`, and missing ones, in one message.
    public func expectTensors(_ names: Set<String>) throws {
        let have = Set(tensors.keys)
        guard have == names else {
            let field = have.subtracting(names).sorted().first ?? names.subtracting(have).sorted().first ?? ""
            throw StateError(.tensor, field, "is \(have.contains(field) ? "not kept by this run" : "missing"): the file holds \(have.sorted()), this run keeps \(names.sorted())")
        }
    }
}

/// A small value in `state.json`. Encoded as plain JSON (a number, a boolean, a string, a
/// list of integers) and `words` as a list of 16-digit hex strings, so a person can read it.
public enum StateValue: Codable, Equatable, Sendable {
    case int(Int)
    case bool(Bool)
    case string(String)
    case ints([Int])
    case words([UInt64])

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let v): try c.encode(v)
        case .bool(let v): try c.encode(v)
        case .string(let v): try c.encode(v)
        case .ints(let v): try c.encode(v)
        case .words(let v): try c.encode(v.map(StateValue.hex))
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Int.self) { self = .int(v) }
        else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else if let v = try? c.decode([Int].self) { self = .ints(v) }
        else if let v = try? c.decode([String].self) {
            let words = v.compactMap { $0.utf8.count == 16 ? UInt64($0, radix: 16) : nil }
            guard words.count == v.count else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a list of 16-digit hex words")
            }
            self = .words(words)
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an integer, boolean, string or list of them")
        }
    }

    public static func hex(_ w: UInt64) -> String {
        let s = String(w, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}

/// A tensor of a component's state, row-major float32.
public struct StateTensor: Equatable {
    public var shape: [Int]
    public var values: [Float]
    public init(shape: [Int], values: [Float]) { self.shape = shape; self.values = values }
    /// A one-dimensional tensor.
    public init(_ values: [Float]) { self.init(shape: [values.count], values: values) }
}
