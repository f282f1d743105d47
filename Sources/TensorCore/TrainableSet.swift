/// The part of a `ParameterStore` that training updates: sorted, disjoint, non-empty flat
/// ranges. The trainer zeroes, sums over ranks (GradientBuckets), clips, updates and
/// checksums exactly these ranges; everything else is frozen. Frozen parameter tensors have
/// `requiresGrad == false`, so backward kernels skip their weight-gradient GEMMs (Linear,
/// FusedHead, norms, embeddings) — LoRA and `--freeze` (issue 15) plug in here, ZeRO
/// (issue 16) shards these ranges.
///
/// A parameter's range includes its alignment padding, so adjacent parameters merge into one
/// range and `all` is exactly the whole buffer (the layout and loops of a full fine-tune).
public struct TrainableSet: Sendable, Equatable {
    public let ranges: [Range<Int>]
    /// Floats covered (optimizer moments are this long).
    public let count: Int
    /// Names of the trainable parameters, in layout order.
    public let names: [String]

    /// Every parameter of `store`.
    public static func all(_ store: ParameterStore) -> TrainableSet {
        TrainableSet(store, where: { _ in true })
    }

    /// The parameters of `store` for which `trainable` holds.
    public init(_ store: ParameterStore, where trainable: (ParameterStore.Entry) -> Bool) {
        var ranges: [Range<Int>] = [], names: [String] = []
        for (i, e) in store.entries.enumerated() where trainable(e) {
            let end = i + 1 < store.entries.count ? store.entries[i + 1].offset : store.count
            names.append(e.name)
            if let last = ranges.last, last.upperBound == e.offset {
                ranges[ranges.count - 1] = last.lowerBound..<end
            } else {
                ranges.append(e.offset..<end)
            }
        }
        self.ranges = ranges
        self.names = names
        count = ranges.reduce(0) { $0 + $1.count }
    }

    public var isEmpty: Bool { count == 0 }

    public func contains(_ index: Int) -> Bool { ranges.contains { $0.contains(index) } }

    /// Marks each parameter tensor of `store` trainable or frozen (`requiresGrad`). A frozen
    /// tensor has no gradient (its view points nowhere) and its range of the store's gradient
    /// buffer is released once (`ZeroedPages`: it reads as zero and holds no memory), so the
    /// buffer's resident part is the trainable ranges only; nothing writes the rest afterwards.
    public func apply(to store: ParameterStore) {
        let trainable = Set(names)
        for e in store.entries {
            let t = store[e.name]
            t.requiresGrad = trainable.contains(e.name)
            t.viewGradient(t.requiresGrad ? store.grads + e.offset : nil)
        }
        for r in frozenRanges(store) { ZeroedPages.release(store.grads, r) }
    }

    /// The flat ranges of `store` outside this set (frozen parameters with their padding).
    public func frozenRanges(_ store: ParameterStore) -> [Range<Int>] {
        var gaps: [Range<Int>] = [], at = 0
        for r in ranges {
            if r.lowerBound > at { gaps.append(at..<r.lowerBound) }
            at = r.upperBound
        }
        if at < store.count { gaps.append(at..<store.count) }
        return gaps
    }

    /// Zeroes the gradients of the trainable ranges (before a step's first micro-batch).
    public func zeroGradients(_ store: ParameterStore) {
        for r in ranges { (store.grads + r.lowerBound).update(repeating: 0, count: r.count) }
    }

    /// Global L2 norm of the trainable gradients (identical on every rank after the sum): the
    /// same 4096-float blocks as `OptimizerKernels.norm`, ranges in order.
    public func gradientNorm(_ store: ParameterStore) -> Double {
        if ranges.count == 1 { return OptimizerKernels.norm(store.grads + ranges[0].lowerBound, count: ranges[0].count) }
        var s = 0.0
        for r in ranges {
            let n = OptimizerKernels.norm(store.grads + r.lowerBound, count: r.count)
            s += n * n
        }
        return s.squareRoot()
    }

    /// Whether every trainable value is usable in float32: finite, and below √(Float.max) ≈
    /// 1.8e19 in magnitude, beyond which a single product overflows (a learning rate of 1e30
    /// leaves finite weights of 1e30 whose every forward is NaN). One pass, element by
    /// element; run only when a step was skipped.
    public func valuesAreUsable(_ store: ParameterStore) -> Bool {
        ranges.allSatisfy { r in r.allSatisfy { abs(store.values[$0]) < Self.usableMagnitude } }
    }

    /// √(Float.max) ≈ 1.8e19: a weight at or beyond it (or not finite) makes products overflow.
    /// Merges refuse to write one, as training refuses to go on with one.
    public static let usableMagnitude = Float.greatestFiniteMagnitude.squareRoot()

    /// FNV-1a over the trainable values: replicas must agree bit for bit on what they update
    /// (frozen values are never written).
    public func checksum(_ store: ParameterStore) -> UInt64 { store.checksum(ranges: ranges) }
}
