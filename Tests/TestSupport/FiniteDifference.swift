/// ∂f/∂x at the float `x` points to: central differences at h and h/2, Richardson-extrapolated,
/// (4·D(h/2) − D(h))/3, so the truncation error is O(h⁴) and float32 round-off in f, not
/// curvature, is what limits the estimate. `*x` is restored.
public func richardsonDerivative(_ x: UnsafeMutablePointer<Float>, h: Float, _ f: () -> Double) -> Double {
    let x0 = x.pointee
    func central(_ step: Float) -> Double {
        x.pointee = x0 + step; let up = f()
        x.pointee = x0 - step; let down = f()
        x.pointee = x0
        return (up - down) / Double(2 * step)
    }
    return (4 * central(h / 2) - central(h)) / 3
}

/// Per-entry agreement of a numeric and an analytic derivative: relative to the larger of the
/// two, with an absolute floor for entries that are zero up to round-off.
public func derivativesAgree(_ numeric: Double, _ analytic: Double, relative: Double, floor: Double) -> Bool {
    abs(numeric - analytic) <= relative * max(abs(numeric), abs(analytic)) + floor
}
