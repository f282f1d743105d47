import Foundation

/// The flat-buffer loops of the optimizer step, 8-wide and split over the `Parallel`
/// threads: AdamW (with clipping folded in) and the global gradient norm. Each element's update depends only
/// on that element, so the split never changes a result.
public enum OptimizerKernels {
    /// AdamW over `count` consecutive floats (decoupled weight decay `wd`, already 0 for
    /// spans that take none), with gradient clipping folded in as `gradScale`:
    /// g ← gradScale·g, m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
    /// p ← p − lr·(m/c1 / (√(v/c2) + eps) + wd·p). `p`, `g`, `m`, `v` point at the span's
    /// first element (moments are stored only for trainable spans, so their offset differs).
    /// `clearing` true also writes 0 into each gradient element once it has been read (the
    /// caller owns `g` as mutable memory): the next step's accumulation then needs no separate
    /// zeroing pass over the gradient buffer.
    public static func adamw(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>,
                             m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                             count: Int, gradScale: Float, lr: Float, beta1 b1: Float, beta2 b2: Float,
                             c1: Float, c2: Float, eps: Float, wd: Float, clearing: Bool = false) {
        let gw = UnsafeMutablePointer(mutating: g)
        Parallel.forRanges(count, minChunk: 16384, align: 8) { sub in
            let lo = sub.lowerBound, hi = sub.upperBound
            let vb1 = F8(repeating: b1), vb1c = F8(repeating: 1 - b1)
            let vb2 = F8(repeating: b2), vb2c = F8(repeating: 1 - b2)
            let ic1 = F8(repeating: 1 / c1), ic2 = F8(repeating: 1 / c2)
            let veps = F8(repeating: eps), vwd = F8(repeating: wd), vlr = F8(repeating: lr)
            let vscale = F8(repeating: gradScale)
            var i = lo
            while i + 8 <= hi {
                let gi = Vec.load(g + i) * vscale
                if clearing { Vec.store(F8(repeating: 0), gw + i) }
                let mi: F8 = vb1 * Vec.load(m + i) + vb1c * gi
                let vi: F8 = vb2 * Vec.load(v + i) + vb2c * (gi * gi)
                Vec.store(mi, m + i); Vec.store(vi, v + i)
                let pi = Vec.load(p + i)
                let denom: F8 = (vi * ic2).squareRoot() + veps
                let update: F8 = (mi * ic1) / denom + vwd * pi
                Vec.store(pi - vlr * update, p + i)
                i += 8
            }
            while i < hi {
                let gi = g[i] * gradScale
                if clearing { gw[i] = 0 }
                m[i] = b1 * m[i] + (1 - b1) * gi
                v[i] = b2 * v[i] + (1 - b2) * gi * gi
                let update = (m[i] / c1) / ((v[i] / c2).squareRoot() + eps) + wd * p[i]
                p[i] -= lr * update
                i += 1
            }
        }
    }

    /// √Σ g², the same for any thread count: blocks of 4096 summed in Float lanes, block sums
    /// added in order in Double.
    public static func norm(_ g: UnsafePointer<Float>, count: Int) -> Double {
        let block = 4096
        let blocks = (count + block - 1) / block
        guard blocks > 0 else { return 0 }
        let sums = Scratch.shared.floats(slot: 5, count: blocks * 2)
        let dsums = UnsafeMutableRawPointer(sums).bindMemory(to: Double.self, capacity: blocks)
        Parallel.forRanges(blocks, minChunk: 16) { r in
            for b in r {
                let lo = b * block
                dsums[b] = Vec.sumOfSquares(g + lo, count: min(block, count - lo))
            }
        }
        var s = 0.0
        for b in 0..<blocks { s += dsums[b] }
        return s.squareRoot()
    }
}
