import TensorCore

/// Refuses, before anything is allocated, a model whose parameters cannot fit: a config whose
/// size overflows (`n_embd` = 2⁴⁰) or that needs more memory than the machine can give
/// (`n_layer` = 10⁹). The size comes from `ParameterLayoutPlan` (one block × the block count,
/// overflow-checked), so not even the list of tensor names is built for such a config.
public enum ModelMemoryCheck {
    /// Bytes per parameter that loading allocates and touches: the value and its gradient.
    public static let bytesPerParameter = 8

    /// Throws a `ModelError` naming `path` (the config.json) when `plan` cannot be allocated.
    public static func check(_ plan: ParameterLayoutPlan, path: String,
                             available: Int? = MemoryBudget.availableBytes()) throws {
        guard let floats = plan.storeFloats, case (let bytes, false) = floats.multipliedReportingOverflow(by: bytesPerParameter) else {
            throw ModelError("\(path): the model's size overflows (its parameters would need more than \(CheckedAllocation.describe(bytes: Int.max)))")
        }
        if let available, bytes > available {
            throw ModelError("\(path): the model has \(floats) parameters, which need \(CheckedAllocation.describe(bytes: bytes)) (values and gradients), but only \(CheckedAllocation.describe(bytes: available)) of memory is available", outOfMemory: true)
        }
    }
}
