/// The one binary form of everything sft-dist broadcasts or gathers between ranks (step
/// batches, generations, statistics, index lists): little-endian fixed-width values and
/// length-prefixed arrays and strings. All ranks run the same binary, so the format needs no
/// versioning; a payload that does not decode is a bug in this process, not input.
public struct WireWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    public mutating func put<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    public mutating func put(_ v: Float) { put(v.bitPattern) }
    public mutating func put(_ v: Double) { put(v.bitPattern) }
    public mutating func put(_ v: Bool) { put(UInt8(v ? 1 : 0)) }
    public mutating func put<T: FixedWidthInteger>(_ a: [T]) {
        put(Int64(a.count))
        for v in a { put(v) }
    }
    public mutating func put(_ a: [Float]) {
        put(Int64(a.count))
        for v in a { put(v.bitPattern) }
    }
    /// nil and "" differ: nil is written as length −1.
    public mutating func put(_ s: String?) {
        guard let s else { put(Int64(-1)); return }
        let utf8 = Array(s.utf8)
        put(Int64(utf8.count)); bytes += utf8
    }
    public mutating func put<T: WireCodable>(_ v: T) { v.write(to: &self) }
    public mutating func put<T: WireCodable>(_ a: [T]) {
        put(Int64(a.count))
        for v in a { v.write(to: &self) }
    }
}

public struct WireReader {
    let bytes: [UInt8]
    var at = 0
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var isAtEnd: Bool { at == bytes.count }

    public mutating func get<T: FixedWidthInteger>(_: T.Type = T.self) -> T {
        let n = MemoryLayout<T>.size
        precondition(at + n <= bytes.count, "WireReader: payload ends early (a codec mismatch between write and read)")
        let v = bytes[at..<(at + n)].withUnsafeBytes { $0.loadUnaligned(as: T.self) }
        at += n
        return T(littleEndian: v)
    }
    public mutating func get(_: Float.Type = Float.self) -> Float { Float(bitPattern: get(UInt32.self)) }
    public mutating func get(_: Double.Type = Double.self) -> Double { Double(bitPattern: get(UInt64.self)) }
    public mutating func get(_: Bool.Type = Bool.self) -> Bool { get(UInt8.self) != 0 }
    public mutating func getArray<T: FixedWidthInteger>(_: T.Type = T.self) -> [T] {
        (0..<count()).map { _ in get(T.self) }
    }
    public mutating func getFloats() -> [Float] { (0..<count()).map { _ in get(Float.self) } }
    public mutating func getString() -> String? {
        let n = Int(get(Int64.self))
        guard n >= 0 else { return nil }
        precondition(at + n <= bytes.count, "WireReader: string runs past the payload")
        defer { at += n }
        return String(decoding: bytes[at..<(at + n)], as: UTF8.self)
    }
    public mutating func get<T: WireCodable>(_: T.Type = T.self) -> T { T(from: &self) }
    public mutating func getArray<T: WireCodable>(_: T.Type = T.self) -> [T] {
        (0..<count()).map { _ in T(from: &self) }
    }
    private mutating func count() -> Int {
        let n = Int(get(Int64.self))
        precondition(n >= 0, "WireReader: negative array length")
        return n
    }
}

/// A value that crosses ranks.
public protocol WireCodable {
    func write(to w: inout WireWriter)
    init(from r: inout WireReader)
}

extension WireCodable {
    public var wireBytes: [UInt8] { var w = WireWriter(); write(to: &w); return w.bytes }
    public init(wireBytes: [UInt8]) {
        var r = WireReader(wireBytes)
        self.init(from: &r)
        precondition(r.isAtEnd, "WireReader: \(wireBytes.count - r.at) bytes left over after \(Self.self)")
    }
}

/// A list of codable values crossing ranks.
public struct WireList<Element: WireCodable>: WireCodable {
    public var items: [Element]
    public init(_ items: [Element]) { self.items = items }
    public func write(to w: inout WireWriter) { w.put(items) }
    public init(from r: inout WireReader) { items = r.getArray(Element.self) }
}

extension String: WireCodable {
    public func write(to w: inout WireWriter) { w.put(Optional(self)) }
    public init(from r: inout WireReader) { self = r.getString() ?? "" }
}

extension Communicator {
    /// `decide` runs on `root` only; every rank returns its value.
    public func broadcast<T: WireCodable>(root: Int = 0, _ decide: () -> T) -> T {
        var bytes = rank == root ? decide().wireBytes : []
        broadcast(&bytes, root: root)
        return T(wireBytes: bytes)
    }

    /// Every rank's value, indexed by rank, on every rank.
    public func allgather<T: WireCodable>(_ value: T) -> [T] {
        allgather(value.wireBytes).map { T(wireBytes: $0) }
    }
}
