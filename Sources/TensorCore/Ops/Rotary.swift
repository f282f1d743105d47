import Foundation

/// Rotary position embeddings (Su et al. 2021, RoFormer) in Hugging Face's `rotate_half`
/// convention (`modeling_llama.apply_rotary_pos_emb`): each head vector of size d is split into
/// halves a = x[..<d/2], b = x[d/2...], and pair (a_i, b_i) is rotated by angle pos·θ^(−2i/d):
///
///     a'_i = a_i·cos − b_i·sin,   b'_i = b_i·cos + a_i·sin
///
/// which is `x·cos(emb) + rotate_half(x)·sin(emb)` with emb = cat(freqs, freqs). (Meta's original
/// checkpoints rotate interleaved pairs instead; HF's conversion script permutes q/k so that this
/// split-halves form applies to every HF checkpoint.)
///
/// Positions come per row, so packed documents each restart at 0. The inverse frequencies and
/// angles are float32 as in HF (`inv_freq` and `freqs` are float32 tensors there), cos/sin are
/// rounded from double, so tables agree with PyTorch's to within an ulp.
public enum RotaryKernels {
    /// cos and sin tables [maxPosition + 1, d/2].
    public static func tables(maxPosition: Int, headDim d: Int, theta: Float) -> (cos: [Float], sin: [Float]) {
        let half = d / 2
        var invFreq = [Float](repeating: 0, count: half)
        for i in 0..<half {
            // HF: 1.0 / (base ** (arange(0, d, 2).float() / d)), in float32.
            let exponent = Float(2 * i) / Float(d)
            invFreq[i] = 1 / Float(pow(Double(theta), Double(exponent)))
        }
        var c = [Float](repeating: 0, count: (maxPosition + 1) * half)
        var s = c
        for p in 0...maxPosition {
            for i in 0..<half {
                let angle = Float(p) * invFreq[i]
                c[p * half + i] = Float(cos(Double(angle)))
                s[p * half + i] = Float(sin(Double(angle)))
            }
        }
        return (c, s)
    }

    /// out[n, h·d + …] = rotation of x's head h at row n by `positions[n]`; `direction` −1 is the
    /// inverse rotation (the backward pass: the Jacobian of a rotation is its transpose).
    /// Rows are `ld` floats apart (default heads·d; wider when the heads are the first
    /// columns of a packed q|k|v row). `out` may be `x` (each pair is read before it is written).
    /// 8 pairs at a time (the same products and sums per element as one at a time: no fused
    /// multiply-add), rows split over the `Parallel` threads: the same bits at any thread count.
    public static func rotate(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, positions: [Int32],
                              heads: Int, headDim d: Int, cos: [Float], sin: [Float],
                              direction: Float, accumulate: Bool, ld: Int? = nil) {
        let half = d / 2, width = ld ?? heads * d
        cos.withUnsafeBufferPointer { cosT in
            sin.withUnsafeBufferPointer { sinT in
                positions.withUnsafeBufferPointer { pos in
                    Parallel.forRows(pos.count, width: heads * d) { rows in
                        for n in rows {
                            let cp = cosT.baseAddress! + Int(pos[n]) * half, sp = sinT.baseAddress! + Int(pos[n]) * half
                            for h in 0..<heads {
                                rotatePairs(out: out + n * width + h * d, x: x + n * width + h * d, cos: cp, sin: sp,
                                            half: half, direction: direction, accumulate: accumulate)
                            }
                        }
                    }
                }
            }
        }
    }

    /// One head vector: a'_i = a_i·c − b_i·s, b'_i = b_i·c + a_i·s with s = sin·direction.
    @inline(__always)
    static func rotatePairs(out oa: UnsafeMutablePointer<Float>, x xa: UnsafePointer<Float>, cos: UnsafePointer<Float>,
                            sin: UnsafePointer<Float>, half: Int, direction: Float, accumulate: Bool) {
        var i = 0
        let dir = F8(repeating: direction)
        while i + 8 <= half {
            let c = Vec.load(cos + i), s = Vec.load(sin + i) * dir
            let a = Vec.load(xa + i), b = Vec.load(xa + i + half)
            let na: F8 = a * c - b * s, nb: F8 = b * c + a * s
            if accumulate {
                Vec.store(Vec.load(oa + i) + na, oa + i); Vec.store(Vec.load(oa + i + half) + nb, oa + i + half)
            } else {
                Vec.store(na, oa + i); Vec.store(nb, oa + i + half)
            }
            i += 8
        }
        while i < half {
            let c = cos[i], s = sin[i] * direction
            let a = xa[i], b = xa[i + half]
            let na = a * c - b * s, nb = b * c + a * s
            if accumulate { oa[i] += na; oa[i + half] += nb } else { oa[i] = na; oa[i + half] = nb }
            i += 1
        }
    }
}

extension Tape {
    /// x: [N, heads·headDim] (q or k after projection), positions: [N]. Returns the rotated copy.
    public func rotary(_ x: Tensor, positions: [Int32], heads: Int, headDim: Int, theta: Float) -> Tensor {
        precondition(headDim % 2 == 0, "rotary: head dimension \(headDim) must be even")
        precondition(x.columns == heads * headDim, "rotary: \(x.columns) columns for \(heads) heads of \(headDim)")
        precondition(positions.count == x.rows, "rotary: \(positions.count) positions for \(x.rows) rows")
        let maxPos = Int(positions.max() ?? 0)
        precondition((positions.min() ?? 0) >= 0, "rotary: negative position")
        let (c, s) = RotaryTables.shared.tables(maxPosition: maxPos, headDim: headDim, theta: theta)
        let out = output(x.shape)
        RotaryKernels.rotate(out: out.data, x: x.data, positions: positions, heads: heads, headDim: headDim,
                             cos: c, sin: s, direction: 1, accumulate: false)
        out.requiresGrad = record([x], output: out) {
            RotaryKernels.rotate(out: x.grad, x: out.grad, positions: positions, heads: heads, headDim: headDim,
                                 cos: c, sin: s, direction: -1, accumulate: true)
        }
        return out
    }
}
