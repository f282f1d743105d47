extension Tensor {
    /// One [Σ rows, columns] view over 2-D parameter tensors that sit back to back in their
    /// store, values and gradients alike (`ParameterStore` packs a tensor whose size is a
    /// multiple of 16 floats with no padding after it): Llama's q|k|v or gate|up weights
    /// ([out, in] each) read as a single weight, so their projections are one GEMM and their
    /// weight gradients one GEMM into the same flat gradient buffer.
    ///
    /// nil when they are not adjacent, differ in width, or only some of them are trainable
    /// (`--freeze` can split a group): the caller then projects them one by one.
    public static func adjacentRows(_ parts: [Tensor]) -> Tensor? {
        guard let first = parts.first, parts.allSatisfy({ $0.shape.count == 2 && $0.shape[1] == first.shape[1] }) else { return nil }
        let trainable = first.requiresGrad
        guard parts.allSatisfy({ $0.requiresGrad == trainable && (!trainable || $0.hasGrad) }) else { return nil }
        for (a, b) in zip(parts, parts.dropFirst()) {
            guard a.data + a.count == b.data else { return nil }
            if trainable, a.grad + a.count != b.grad { return nil }
        }
        let rows = parts.reduce(0) { $0 + $1.shape[0] }
        return Tensor(view: first.data, grad: trainable ? first.grad : nil, shape: [rows, first.shape[1]],
                      requiresGrad: trainable)
    }
}
