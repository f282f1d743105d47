extension Vec {
    /// The first i < n with x[i] == value, or nil: 8 elements compared at a time (the loss's
    /// argmax after `maximum`, over a 49,152-wide logit row, was a scalar walk to the maximum).
    @inline(__always) public static func firstIndex(of value: Float, in x: UnsafePointer<Float>, count n: Int) -> Int? {
        let v = F8(repeating: value), one = F8(repeating: 1)
        var i = 0
        while i + 8 <= n {
            var hit = F8(repeating: 0)
            hit.replace(with: one, where: load(x + i) .== v)
            if max(hit) > 0 { break }   // the block holding the first match: found lane by lane below
            i += 8
        }
        while i < n {
            if x[i] == value { return i }
            i += 1
        }
        return nil
    }
}
