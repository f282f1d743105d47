/// A linear layer with a low-rank adapter (LoRA, Hu et al. 2021, arXiv 2106.09685, §4.1):
///
///     out = x·op(W) + b (+ residual) + s · (x_d·Aᵀ)·Bᵀ,   A: [r, IC], B: [OC, r], s = α/r
///
/// with x_d the adapter's input (x, or x after dropout — peft applies dropout to the adapter's
/// input only). A and B are stored as peft stores `lora_A.weight` / `lora_B.weight` (nn.Linear,
/// [out, in]) whatever the base weight's layout, so only W's GEMM depends on the layout.
///
/// The low-rank product is added in place to the base projection's output (no second
/// [N, OC] buffer) by `addLoRATerms` with one member; backward computes the adapter's
/// gradients and the input's share, and the base projection's own backward skips dW when W
/// is frozen (`requiresGrad == false`). `LoRAKernels.addDelta` is decoding's form (no tape).
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
        // The one-member case of `addLoRATerms` (Ops/LoRAGroup.swift): the same products, and
        // in backward du and dB from one pass over out's gradient (`LoRAOutputGradients`);
        // u = x_d·Aᵀ before the base GEMM, while x_d is in cache (`LoRAProjection`).
        let projection = loraProjection(input: xd, members: [LoRAGroupMember(adapter: adapter, column: 0)])!
        let out = linear(x, weight: weight, bias: bias, layout: layout, residual: residual)
        precondition(adapter.b.shape == [out.columns, r], "loraLinear: lora_B \(adapter.b.shape) for \(out.columns) outputs, rank \(r)")
        addLoRATerms(into: out, projection: projection)
        return out
    }
}
