/// The LoRA terms (arXiv 2106.09685, §4.1; `LoRALinear.swift`) of several adapters that read
/// the same input, added to column blocks of one packed projection output: Llama's q/k/v
/// adapters on the packed q|k|v GEMM, gate/up on gate|up.
///
///     u = x·[A_1; …; A_g]ᵀ                      one GEMM [N, IC]×[IC, g·r]
///     out[:, col_j ..< col_j + OC_j] += s · u_j·B_jᵀ
///
/// and in backward one GEMM for all dA (duᵀ·x) and one for the input's share (du·[A_1; …]),
/// where per-adapter GEMMs would read x, and read and write dx, g times each. The A matrices
/// are separate tensors in the store (peft's names, checkpoints by key), so they are gathered
/// into one [g·r, IC] block per pass (g·r·IC floats, small beside x) and dA is scattered back;
/// one member (`loraLinear`) reads its A and adds to its dA in place. x·Aᵀ and duᵀ·x go
/// through `LoRAInputProducts` (small-kernel pieces), du and dB through `LoRAOutputGradients`.
public struct LoRAGroupMember {
    public let adapter: LoRAAdapter
    /// First column of this adapter's output block in the packed output.
    public let column: Int
    public init(adapter: LoRAAdapter, column: Int) { self.adapter = adapter; self.column = column }
}

/// A group's u = x·[A_1; …; A_g]ᵀ, made before the base projection's GEMM: x was just written
/// by the op before (RMSNorm, attention, SwiGLU) and is still in cache, where after the base
/// GEMM — which streams the weights and packs x — it is read back from memory. Standalone
/// loop of the calls after x is written (1 thread, N = 1024, median of 21): u 0.238 → 0.124 ms
/// at IC = 576, r = 8; 0.476 → 0.338 ms for q|k|v (r = 24); 0.395 → 0.239 ms for gate|up;
/// 0.534 → 0.467 ms at IC = 1536; the base GEMM's time unchanged. Same products, same bits.
public struct LoRAProjection {
    let input: Tensor
    let members: [LoRAGroupMember]
    /// The members' A's as one [g·r, IC] block (one member: its own A).
    let a: Tensor
    /// u [N, g·r].
    let u: Tensor
}

extension Tape {
    /// Adds each member's low-rank term to its columns of `out` [N, ≥ column + OC] for input
    /// `x` [N, IC]. All members share one rank and scaling (one `LoRAConfig`).
    public func addLoRATerms(into out: Tensor, input x: Tensor, members: [LoRAGroupMember]) {
        guard let projection = loraProjection(input: x, members: members) else { return }
        addLoRATerms(into: out, projection: projection)
    }

    /// The first half of `addLoRATerms`: u for `members` on input `x` (nil for no members).
    public func loraProjection(input x: Tensor, members: [LoRAGroupMember]) -> LoRAProjection? {
        guard let first = members.first?.adapter else { return nil }
        let n = x.rows, ic = x.columns, r = first.rank, g = members.count, gr = g * r
        for m in members {
            precondition(m.adapter.a.shape == [r, ic] && m.adapter.scaling == first.scaling,
                         "addLoRATerms: lora_A \(m.adapter.a.shape) for rank \(r), \(ic) input features")
        }
        // One member (`loraLinear`, o_proj, down_proj, GPT-2's modules) reads its A in place.
        let a: Tensor
        if g == 1 {
            a = first.a
        } else {
            a = output([gr, ic])
            for (j, m) in members.enumerated() { (a.data + j * r * ic).update(from: m.adapter.a.data, count: r * ic) }
        }
        let u = output([n, gr])
        LoRAInputProducts.project(x: x.data, ldx: ic, a: a.data, u: u.data, ldu: gr, n: n, inFeatures: ic, width: gr)
        return LoRAProjection(input: x, members: members, a: a, u: u)
    }

    /// The second half: s · u_j·B_jᵀ added to each member's columns of `out`, and the backward.
    public func addLoRATerms(into out: Tensor, projection p: LoRAProjection) {
        let (x, members, a, u) = (p.input, p.members, p.a, p.u)
        let first = members[0].adapter
        let n = x.rows, ic = x.columns, r = first.rank, g = members.count, gr = g * r, ldo = out.columns
        let s = first.scaling
        precondition(out.rows == n, "addLoRATerms: output \(out.shape) for input \(x.shape)")
        for m in members {
            precondition(m.adapter.b.shape[1] == r && m.column + m.adapter.b.shape[0] <= ldo,
                         "addLoRATerms: lora_B \(m.adapter.b.shape) at column \(m.column) of \(ldo)")
        }
        for (j, m) in members.enumerated() {
            let b = m.adapter.b
            BLAS.gemm(transA: false, transB: true, m: n, n: b.shape[0], k: r, alpha: s, a: u.data + j * r, lda: gr,
                      b: b.data, ldb: r, beta: 1, c: out.data + m.column, ldc: ldo)
        }
        let inputs = [x] + members.flatMap { [$0.adapter.a, $0.adapter.b] }
        guard recording, inputs.contains(where: { $0.requiresGrad }) else { return }
        let du = output([n, gr])
        let wantsA = members.contains { $0.adapter.a.requiresGrad }, wantsDU = wantsA || x.requiresGrad
        let da = wantsA && g > 1 ? output([gr, ic]) : nil
        let backward = {
            let dout = out.grad
            for (j, m) in members.enumerated() {
                let b = m.adapter.b, oc = b.shape[0]
                if wantsDU && LoRAOutputGradients.supports(rank: r) {  // du_j and dB_j in one pass over dout_j
                    LoRAOutputGradients.run(du: du.data + j * r, lddu: gr, db: b.requiresGrad ? b.grad : nil,
                                            dout: dout + m.column, ldo: ldo, u: u.data + j * r, ldu: gr, b: b.data,
                                            scaling: s, n: n, outFeatures: oc, rank: r)
                    continue
                }
                if b.requiresGrad {  // dB_j[OC, r] += s · dout_jᵀ · u_j
                    BLAS.gemm(transA: true, transB: false, m: oc, n: r, k: n, alpha: s, a: dout + m.column, lda: ldo,
                              b: u.data + j * r, ldb: gr, beta: 1, c: b.grad, ldc: r)
                }
                guard wantsDU else { continue }  // du_j[N, r] = s · dout_j · B_j
                BLAS.gemm(transA: false, transB: false, m: n, n: r, k: oc, alpha: s, a: dout + m.column, lda: ldo,
                          b: b.data, ldb: r, beta: 0, c: du.data + j * r, ldc: gr)
            }
            if let da {  // dA[g·r, IC] = duᵀ · x, then each A_j's rows into its own gradient
                LoRAInputProducts.inputSideGradient(du: du.data, lddu: gr, x: x.data, ldx: ic, da: da.data, beta: 0,
                                                    n: n, inFeatures: ic, width: gr)
                for (j, m) in members.enumerated() where m.adapter.a.requiresGrad {
                    Vec.add(m.adapter.a.grad, da.data + j * r * ic, count: r * ic)
                }
            } else if wantsA {  // one member: dA += duᵀ · x straight into its gradient
                LoRAInputProducts.inputSideGradient(du: du.data, lddu: r, x: x.data, ldx: ic, da: first.a.grad, beta: 1,
                                                    n: n, inFeatures: ic, width: r)
            }
            if x.requiresGrad {  // dx[N, IC] += du · [A_1; …; A_g]
                BLAS.gemm(transA: false, transB: false, m: n, n: ic, k: gr, a: du.data, lda: gr, b: a.data, ldb: ic,
                          beta: 1, c: x.grad, ldc: ic)
            }
        }
        // As in `loraLinear`: when the base projection recorded its backward, that one (run
        // after this) releases out's gradient; otherwise this one does.
        if out.requiresGrad {
            _ = record(inputs, backward)
        } else {
            out.requiresGrad = record(inputs, output: out, backward)
        }
    }
}
