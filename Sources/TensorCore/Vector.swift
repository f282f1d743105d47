import Foundation

/// 8-wide float vectors for the elementwise kernels (AVX2 + FMA when TensorCore is built
/// with them, see Package.swift), with scalar tails so every length works.
public typealias F8 = SIMD8<Float>

public enum Vec {
    @inline(__always) public static func load(_ p: UnsafePointer<Float>) -> F8 {
        UnsafeRawPointer(p).loadUnaligned(as: F8.self)
    }
    @inline(__always) public static func load(_ p: UnsafeMutablePointer<Float>) -> F8 {
        UnsafeRawPointer(p).loadUnaligned(as: F8.self)
    }
    @inline(__always) public static func store(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
    }

    /// e^x, |relative error| < 2e-7 on [−87, 88]; below −87 it flushes to 0.
    /// Cody–Waite reduction x = k·ln2 + r, degree-6 polynomial for e^r, 2^k built in the
    /// exponent bits (the Cephes expf scheme). Written with `replace(with:where:)` and bit
    /// casts only: the generic SIMD helpers (pointwiseMin, rounding conversions) are not
    /// inlined and would cost a call per vector. `@_transparent`, not `@inline(__always)`:
    /// with the latter the optimiser still left a call per vector in the loss's `expSum` and
    /// attention's softmax (the vector then passes through two xmm halves and `vzeroupper`).
    /// Its body is copied into other modules that call it, which an incremental build may not
    /// recompile: test it through a TensorCore loop (`VectorExpSweepTests`).
    @_transparent public static func exp(_ x: F8) -> F8 {
        let lo = F8(repeating: -87.3), hi = F8(repeating: 88.3)
        var xc = x
        xc.replace(with: lo, where: x .< lo)
        xc.replace(with: hi, where: x .> hi)
        let k = (xc * 1.442695041 + 0.5).rounded(.down)
        var r = xc - k * 0.693359375
        r = r - k * -2.12194440e-4
        var p = F8(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * (r * r) + r + 1
        // k + 1.5·2²³ holds the integer k in its low mantissa bits.
        let t = unsafeBitCast(k + 12582912.0, to: SIMD8<Int32>.self)
        let bits = (t &- 0x4B40_0000 &+ 127) &<< 23
        var scaled = p * unsafeBitCast(bits, to: F8.self)
        scaled.replace(with: 0, where: x .< lo)
        return scaled
    }

    /// `exp` with its reduction and polynomial as fused multiply-adds: fewer instructions and
    /// one rounding per step (|relative error| < 1.5e-7 against double over [−87, 88], 1.16e-7
    /// seen, where `exp` is < 2e-7), other bits than `exp`. Only for kernels of this module,
    /// which is built with FMA: inlined into a module without it, each `addingProduct` would
    /// be a libm call per lane (so `exp`, which other modules may inline, keeps its mul-adds).
    @inline(__always) static func expFused(_ x: F8) -> F8 {
        let lo = F8(repeating: -87.3), hi = F8(repeating: 88.3)
        var xc = x
        xc.replace(with: lo, where: x .< lo)
        xc.replace(with: hi, where: x .> hi)
        let k = F8(repeating: 0.5).addingProduct(xc, F8(repeating: 1.442695041)).rounded(.down)
        let r = xc.addingProduct(k, F8(repeating: -0.693359375)).addingProduct(k, F8(repeating: 2.12194440e-4))
        var p = F8(repeating: 1.3981999507e-3).addingProduct(F8(repeating: 1.9875691500e-4), r)
        p = F8(repeating: 8.3334519073e-3).addingProduct(p, r)
        p = F8(repeating: 4.1665795894e-2).addingProduct(p, r)
        p = F8(repeating: 1.6666665459e-1).addingProduct(p, r)
        p = F8(repeating: 5.0000001201e-1).addingProduct(p, r)
        p = (r + 1).addingProduct(p, r * r)
        let t = unsafeBitCast(k + 12582912.0, to: SIMD8<Int32>.self)
        var scaled = p * unsafeBitCast((t &- 0x4B40_0000 &+ 127) &<< 23, to: F8.self)
        scaled.replace(with: 0, where: x .< lo)
        return scaled
    }

    @inline(__always) public static func sum(_ v: F8) -> Float {
        let a = v.lowHalf + v.highHalf
        let b = a.lowHalf + a.highHalf
        return b[0] + b[1]
    }
    @inline(__always) public static func max(_ v: F8) -> Float {
        var a = v.lowHalf
        a.replace(with: v.highHalf, where: v.highHalf .> a)
        var b = a.lowHalf
        b.replace(with: a.highHalf, where: a.highHalf .> b)
        return Swift.max(b[0], b[1])
    }
    @inline(__always) public static func max(_ a: F8, _ b: F8) -> F8 {
        var m = a
        m.replace(with: b, where: b .> a)
        return m
    }

    /// y[i] += x[i]
    public static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n { store(load(y + i) + load(x + i), y + i); i += 8 }
        while i < n { y[i] += x[i]; i += 1 }
    }

    /// out[i] = a[i] + b[i]
    public static func sum(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n { store(load(a + i) + load(b + i), out + i); i += 8 }
        while i < n { out[i] = a[i] + b[i]; i += 1 }
    }

    /// y[i] *= s
    public static func scale(_ y: UnsafeMutablePointer<Float>, _ s: Float, count n: Int) {
        var i = 0
        let sv = F8(repeating: s)
        while i + 8 <= n { store(load(y + i) * sv, y + i); i += 8 }
        while i < n { y[i] *= s; i += 1 }
    }

    /// Σ x[i]² in Double (accumulated per 8-lane block in Float, blocks summed in Double).
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count n: Int) -> Double {
        var total = 0.0
        var i = 0
        while i < n {
            let end = Swift.min(n, i + 4096)
            var acc = F8(repeating: 0)
            while i + 8 <= end { let v = load(x + i); acc += v * v; i += 8 }
            var s = Double(sum(acc))
            while i < end { s += Double(x[i]) * Double(x[i]); i += 1 }
            total += s
        }
        return total
    }

    /// max_i x[i]
    @inline(__always) public static func maximum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
        var i = 0
        var m = F8(repeating: -.infinity)
        while i + 8 <= n { m = max(m, load(x + i)); i += 8 }
        var s = max(m)
        while i < n { s = Swift.max(s, x[i]); i += 1 }
        return s
    }

    /// x[i] ← e^{x[i] − shift}; returns Σ of the results.
    @inline(__always) public static func expShifted(_ x: UnsafeMutablePointer<Float>, shift: Float, count n: Int) -> Float {
        var i = 0
        let sv = F8(repeating: shift)
        var acc = F8(repeating: 0)
        while i + 8 <= n { let e = exp(load(x + i) - sv); store(e, x + i); acc += e; i += 8 }
        var s = sum(acc)
        while i < n { let e = expf(x[i] - shift); x[i] = e; s += e; i += 1 }
        return s
    }

    /// Σ a[i]·b[i]
    @inline(__always) public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        var i = 0
        var acc = F8(repeating: 0)
        while i + 8 <= n { acc += load(a + i) * load(b + i); i += 8 }
        var s = sum(acc)
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// Σ x[i]
    @inline(__always) public static func total(_ x: UnsafePointer<Float>, count n: Int) -> Float {
        var i = 0
        var acc = F8(repeating: 0)
        while i + 8 <= n { acc += load(x + i); i += 8 }
        var s = sum(acc)
        while i < n { s += x[i]; i += 1 }
        return s
    }
}
