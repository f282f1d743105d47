/// A linear layer with a low-rank adapter (LoRA, Hu et al. 2021, arXiv 2106.09685, §4.1):
///
///     out = x·op(W) + b (+ residual) + s · (x_d·Aᵀ)·Bᵀ,   A: [r, IC], B: [OC, r], s = α/r
///
/// with x_d the adapter's input (x, or x after dropout — peft applies dropout to the adapter's
/// input only). A and B are stored as peft stores `lora_A.weight` / `lora_B.weight` (nn.Linear,
/// [out, in]) whatever the base weight's layout, so only W's GEMM depends on the layout.
///
/// The low-rank product is added in place to the base projection's output (no second
/// [N, OC] buffer); backward computes the adapter's gradients and the input's share, and the
/// base projection's own backward skips dW when W is frozen (`requiresGrad == false`).
public struct LoRAAdapter {
    public let a: Tensor
    public let b: Tensor
    public let scaling: Float
    public init(a: Tensor, b: Tensor, scaling: Float) { self.a = a; self.b = b; self.scaling = scaling }
    public var rank: Int { a.shape[0] }
}

public enum LoRAKernels {
    /// out[N, OC] += s · (x[N, IC]·Aᵀ)·Bᵀ, with u[N, r] = x·Aᵀ left in `u` for backward.
    public static func addDelta(out: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                                a: UnsafePointer<Float>, b: UnsafePointer<Float>, scaling: Float,
                                n: Int, inFeatures ic: Int, outFeatures oc: Int, rank r: Int) {
        BLAS.gemm(transA: false, transB: true, m: n, n: r, k: ic, a: x, lda: ic, b: a, ldb: ic, beta: 0, c: u, ldc: r)
        BLAS.gemm(transA: false, transB: true, m: n, n: oc, k: r, alpha: scaling, a: u, lda: r, b: b, ldb: r,
                  beta: 1, c: out, ldc: oc)
    }

    /// du = s·dout·B;  dB += s·doutᵀ·u;  dA += duᵀ·x;  dx += du·A  (each only when asked for).
    public static func backward(dx: UnsafeMutablePointer<Float>?, da: UnsafeMutablePointer<Float>?,
                                db: UnsafeMutablePointer<Float>?, du: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, x: UnsafePointer<Float>, u: UnsafePointer<Float>,
                                a: UnsafePointer<Float>, b: UnsafePointer<Float>, scaling s: Float,
                                n: Int, inFeatures ic: Int, outFeatures oc: Int, rank r: Int) {
        if let db {  // dB[OC, r] += s · doutᵀ[OC, N] · u[N, r]
            BLAS.gemm(transA: true, transB: false, m: oc, n: r, k: n, alpha: s, a: dout, lda: oc, b: u, ldb: r,
                      beta: 1, c: db, ldc: r)
        }
        guard dx != nil || da != nil else { return }
        // du[N, r] = s · dout[N, OC] · B[OC, r]
        BLAS.gemm(transA: false, transB: false, m: n, n: r, k: oc, alpha: s, a: dout, lda: oc, b: b, ldb: r,
                  beta: 0, c: du, ldc: r)
        if let da {  // dA[r, IC] += duᵀ[r, N] · x[N, IC]
            BLAS.gemm(transA: true, transB: false, m: r, n: ic, k: n, a: du, lda: r, b: x, ldb: ic, beta: 1, c: da, ldc: ic)
        }
        if let dx {  // dx[N, IC] += du[N, r] · A[r, IC]
            BLAS.gemm(transA: false, transB: false, m: n, n: ic, k: r, a: du, lda: r, b: a, ldb: ic, beta: 1, c: dx, ldc: ic)
        }
    }
}

extension Tape {
    /// `linear(x, weight:, bias:, layout:, residual:)` plus the adapter's low-rank term on
    /// `adapterInput` (default `x`; a dropout of `x` in training).
    public func loraLinear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, layout: WeightLayout,
                           residual: Tensor? = nil, adapter: LoRAAdapter, adapterInput: Tensor? = nil) -> Tensor {
        let xd = adapterInput ?? x
        let n = x.rows, ic = x.columns, r = adapter.rank
        precondition(xd.rows == n && xd.columns == ic, "loraLinear: adapter input \(xd.shape) for input \(x.shape)")
        precondition(adapter.a.shape == [r, ic], "loraLinear: lora_A \(adapter.a.shape) for \(ic) input features")
        let out = linear(x, weight: weight, bias: bias, layout: layout, residual: residual)
        let oc = out.columns
        precondition(adapter.b.shape == [oc, r], "loraLinear: lora_B \(adapter.b.shape) for \(oc) outputs, rank \(r)")
        let u = output([n, r])
        LoRAKernels.addDelta(out: out.data, u: u.data, x: xd.data, a: adapter.a.data, b: adapter.b.data,
                             scaling: adapter.scaling, n: n, inFeatures: ic, outFeatures: oc, rank: r)
        let inputs = [xd, adapter.a, adapter.b]
        guard recording, inputs.contains(where: { $0.requiresGrad }) else { return out }
        let du = output([n, r])
        let backward = {
            LoRAKernels.backward(dx: xd.requiresGrad ? xd.grad : nil, da: adapter.a.requiresGrad ? adapter.a.grad : nil,
                                 db: adapter.b.requiresGrad ? adapter.b.grad : nil, du: du.data,
                                 dout: out.grad, x: xd.data, u: u.data, a: adapter.a.data, b: adapter.b.data,
                                 scaling: adapter.scaling, n: n, inFeatures: ic, outFeatures: oc, rank: r)
        }
        // When the base projection recorded its backward, that one (run after this) releases
        // out's gradient; otherwise this one does.
        if out.requiresGrad {
            _ = record(inputs, backward)
        } else {
            out.requiresGrad = record(inputs, output: out, backward)
        }
        return out
    }
}
