import TensorCore

/// Refuses, before anything is allocated, a model whose parameters cannot fit: a config whose
/// size overflows (`n_embd` = 2⁴⁰) or that needs more memory than the machine can give
/// (`n_layer` = 10⁹). The size comes from `ParameterLayoutPlan` (one block × the block count,
/// overflow-checked), so not even the list of tensor names is built for such a config.
public enum ModelMemoryCheck {
    /// Bytes per parameter that a model touches: its value, and for a model that trains its
    /// gradient. The gradient buffer is mapped lazily (`ParameterStore`): eval, score, select,
    /// generate, merge and a reference model never touch it (they were refused at twice their
    /// need), though it takes address space (`ulimit -v`) all the same.
    public static func bytesPerParameter(_ use: ModelUse) -> Int { use == .training ? 8 : 4 }
    static let mappedBytesPerParameter = 8

    /// Throws a `ModelError` naming `path` (the config.json) when `plan` cannot be allocated:
    /// its touched bytes against the memory available, its mapped bytes against an address-space limit.
    public static func check(_ plan: ParameterLayoutPlan, path: String, use: ModelUse = .training,
                             available: Int? = MemoryBudget.physicalBytes(),
                             addressSpace: Int? = MemoryBudget.addressSpaceBytes()) throws {
        guard let floats = plan.storeFloats, case (let mapped, false) = floats.multipliedReportingOverflow(by: mappedBytesPerParameter) else {
            throw ModelError("\(path): the model's size overflows (its parameters would need more than \(CheckedAllocation.describe(bytes: Int.max)))")
        }
        let touched = floats * bytesPerParameter(use)
        let what = use == .training ? "values and gradients" : "values"
        if let available, touched > available {
            throw ModelError("\(path): the model has \(floats) parameters, which need \(CheckedAllocation.describe(bytes: touched)) (\(what)), but only \(CheckedAllocation.describe(bytes: available)) of memory is available", outOfMemory: true)
        }
        if let addressSpace, mapped > addressSpace {
            throw ModelError("\(path): the model has \(floats) parameters, which map \(CheckedAllocation.describe(bytes: mapped)) (values and gradients), but only \(CheckedAllocation.describe(bytes: addressSpace)) of address space is left under ulimit -v", outOfMemory: true)
        }
    }
}

/// What a loaded model is for: training touches gradients as well as values.
public enum ModelUse: Sendable { case training, inference }
