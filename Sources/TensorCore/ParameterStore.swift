/// All of a model's parameters in one flat float32 buffer, and all gradients in a second
/// buffer with the same layout (the llm.c habit). Each parameter is a `Tensor` view at an
/// offset, addressed by the checkpoint's own key (e.g. `transformer.h.0.attn.c_attn.weight`).
/// The gradient buffer is mapped, not written (`ZeroedPages`): only the ranges a step trains
/// are ever touched, so a frozen parameter (LoRA's base, `--freeze`; `TrainableSet.apply`)
/// costs no gradient memory, and neither does a model that never runs backward (a reference
/// model, an old-policy snapshot).
///
/// One allreduce over `grads`, one optimizer loop over `values`, one checksum over `values`:
/// nothing iterates over parameters one by one on the hot path.
public final class ParameterStore {
    public struct Entry: Sendable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public let entries: [Entry]
    public let count: Int
    public let values: UnsafeMutablePointer<Float>
    public let grads: UnsafeMutablePointer<Float>
    private var byName: [String: Int] = [:]
    private var views: [Tensor] = []

    /// Lays out parameters in declaration order. Offsets are rounded up to 16 floats so every
    /// tensor starts 64-byte aligned.
    /// A size that overflows `Int` fails through `CheckedAllocation.failureHandler` (a message,
    /// not a trap); model loading refuses such configs earlier (`ParameterLayoutPlan`).
    public init(layout: [(name: String, shape: [Int])]) {
        var entries: [Entry] = []
        var offset = 0
        var seen = Set<String>()
        for (name, shape) in layout {
            precondition(seen.insert(name).inserted, "duplicate parameter \(name)")
            entries.append(Entry(name: name, shape: shape, offset: offset))
            guard let size = Self.alignedCount(shape), case (let next, false) = offset.addingReportingOverflow(size) else {
                CheckedAllocation.failureHandler("out of memory: the parameters' size overflows at \(name) \(shape)")
            }
            offset = next
        }
        self.entries = entries
        count = offset
        values = CheckedAllocation.floats(count, for: "\(count) parameters")
        grads = ZeroedPages.floats(count, for: "the gradients of \(count) parameters")
        for (i, e) in entries.enumerated() {
            byName[e.name] = i
            views.append(Tensor(view: values + e.offset, grad: grads + e.offset, shape: e.shape))
        }
    }

    /// Floats a tensor of `shape` takes in the flat buffer (rounded up to 16 for alignment),
    /// nil if that overflows `Int`.
    public static func alignedCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0, case (let m, false) = n.multipliedReportingOverflow(by: d) else { return nil }
            n = m
        }
        guard case (let padded, false) = n.addingReportingOverflow(15) else { return nil }
        return padded / 16 * 16
    }

    deinit {
        CheckedAllocation.free(values)
        ZeroedPages.free(grads, count: count)
    }

    public subscript(name: String) -> Tensor {
        guard let i = byName[name] else { preconditionFailure("no parameter named \(name)") }
        return views[i]
    }

    public func entry(_ name: String) -> Entry? { byName[name].map { entries[$0] } }

    /// The flat range spanned by every parameter whose name starts with `prefix` (a block:
    /// "transformer.h.3."), including alignment padding between them.
    public func range(prefix: String) -> Range<Int> {
        let matching = entries.filter { $0.name.hasPrefix(prefix) }
        guard let lo = matching.map(\.offset).min(), let hi = matching.map({ $0.offset + $0.count }).max() else { return 0..<0 }
        return lo..<hi
    }
    public var tensors: [Tensor] { views }
    /// Number of real parameters (without alignment padding).
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.count } }

    public var valueBuffer: UnsafeMutableBufferPointer<Float> { .init(start: values, count: count) }
    public var gradBuffer: UnsafeMutableBufferPointer<Float> { .init(start: grads, count: count) }

    public func zeroGrads() { grads.update(repeating: 0, count: count) }

    /// FNV-1a over the bit patterns of every value. Replicas apply identical updates to
    /// identical allreduced gradients, so they must agree bit for bit; any difference is a
    /// diverged replica.
    public func checksum() -> UInt64 { checksum(ranges: [0..<count]) }

    /// The same hash over `ranges` in order (a `TrainableSet`'s).
    public func checksum(ranges: [Range<Int>]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for r in ranges {
            for i in r { h = (h ^ UInt64(values[i].bitPattern)) &* 0x0000_0100_0000_01b3 }
        }
        return h
    }
}
