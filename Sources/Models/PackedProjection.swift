import TensorCore

extension LoRAAdaptable {
    /// The projections `modules` (full paths without `.weight`) of one input as one GEMM:
    /// x·[W_1; …; W_g]ᵀ → [N, Σ OC], the column blocks in `modules`' order, plus the adapters'
    /// terms of those that have one (`addLoRATerms`: their A's as one GEMM too). Backward is
    /// one weight-gradient GEMM and one input-gradient GEMM for the whole group.
    ///
    /// nil — project one by one — unless the weights are [out, in] and sit back to back in the
    /// store with no biases (`Tensor.adjacentRows`): true of SmolLM2 / Llama without
    /// `attention_bias`/`mlp_bias`; Qwen2's q/k/v biases sit between its weights.
    func projectPacked(_ tape: Tape, _ modules: [String], _ x: Tensor) -> Tensor? {
        guard Self.loraArchitecture.weightLayout == .outIn,
              modules.allSatisfy({ parameters.entry($0 + ".bias") == nil }),
              let weight = Tensor.adjacentRows(modules.map { parameters[$0 + ".weight"] }) else { return nil }
        var members: [(module: String, member: LoRAGroupMember)] = [], column = 0
        for m in modules {
            if let a = adapter(m) { members.append((m, LoRAGroupMember(adapter: a, column: column))) }
            column += parameters[m + ".weight"].shape[0]
        }
        if let dropout = loraDropout, dropout.probability > 0 {
            let out = tape.linear(x, weight: weight, layout: .outIn)
            // Each adapter drops its own mask of x (peft, per module): no shared input to fuse.
            for (module, member) in members {
                tape.addLoRATerms(into: out, input: tape.dropout(x, mask: dropout.mask(module: module)), members: [member])
            }
            return out
        }
        // The adapters' u = x·[A_1; …]ᵀ before the base GEMM, while x is in cache (`LoRAProjection`).
        let projection = tape.loraProjection(input: x, members: members.map(\.member))
        let out = tape.linear(x, weight: weight, layout: .outIn)
        if let projection { tape.addLoRATerms(into: out, projection: projection) }
        return out
    }
}
