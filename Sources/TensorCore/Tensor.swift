/// A float32 tensor: contiguous row-major storage plus a shape, and (when it takes part in
/// a backward pass) a gradient buffer of the same size.
///
/// Storage is either owned (activations, allocated zeroed) or a view into a flat buffer
/// (parameters and their gradients live in one `ParameterStore` allocation each, so one
/// allreduce or one optimizer loop covers a contiguous range).
public final class Tensor {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>
    private var gradPointer: UnsafeMutablePointer<Float>?
    private let ownsData: Bool
    private var ownsGrad: Bool
    /// Set for activations of a pass with an `Arena`: the gradient then comes from (and goes
    /// back to) the arena's pool.
    private let arena: Arena?
    private let arenaGeneration: Int
    /// Parameters and anything computed from them; inputs like token ids never are.
    public var requiresGrad: Bool

    /// A new zero-filled tensor that owns its storage.
    public init(zeros shape: [Int], requiresGrad: Bool = false) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        data = CheckedAllocation.floats(count, for: "a tensor of shape \(shape)")
        ownsData = true
        ownsGrad = false
        self.requiresGrad = requiresGrad
        arena = nil; arenaGeneration = 0
    }

    /// An activation in `arena`, uninitialised: the op that makes it writes every element.
    public init(arena: Arena, shape: [Int]) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        data = arena.floats(count)
        ownsData = false
        ownsGrad = false
        requiresGrad = false
        self.arena = arena
        arenaGeneration = arena.generation
    }

    public convenience init(shape: [Int], values: [Float], requiresGrad: Bool = false) {
        self.init(zeros: shape, requiresGrad: requiresGrad)
        precondition(values.count == count, "Tensor(shape:values:): \(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    /// A view over memory owned by someone else (a parameter store); `grad` likewise.
    public init(view data: UnsafeMutablePointer<Float>, grad: UnsafeMutablePointer<Float>?,
                shape: [Int], requiresGrad: Bool = true) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.data = data
        self.gradPointer = grad
        ownsData = false
        ownsGrad = false
        self.requiresGrad = requiresGrad
        arena = nil; arenaGeneration = 0
    }

    deinit {
        if ownsData { CheckedAllocation.free(data) }
        if ownsGrad, let g = gradPointer { CheckedAllocation.free(g) }
    }

    /// The gradient buffer, allocated zeroed on first use.
    public var grad: UnsafeMutablePointer<Float> {
        if let g = gradPointer { return g }
        if let arena {
            precondition(arena.generation == arenaGeneration, "Tensor.grad: activation of an earlier pass (arena was reset)")
            let g = arena.gradient(count)
            gradPointer = g
            return g
        }
        let g = CheckedAllocation.floats(count, for: "the gradient of a tensor of shape \(shape)")
        gradPointer = g
        ownsGrad = true
        return g
    }

    public var hasGrad: Bool { gradPointer != nil }

    /// The gradient buffer for a backward kernel that covers every element of it. While no
    /// other op has touched the gradient, an activation's buffer comes from the arena's pool
    /// without being zeroed and `accumulate` is false: the kernel must write (=) every
    /// element. Otherwise (a buffer exists, or the tensor has no arena) it is `grad` and the
    /// kernel adds (+=), as every backward does. Writing x where 0 + x was stored gives the
    /// same bits (but the sign of a zero), and saves a pass that clears the buffer.
    public func gradForWriting() -> (pointer: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if gradPointer == nil, let arena {
            precondition(arena.generation == arenaGeneration, "Tensor.grad: activation of an earlier pass (arena was reset)")
            let g = arena.gradient(count, zeroed: false)
            gradPointer = g
            return (g, false)
        }
        return (grad, true)
    }

    /// Takes over `other`'s arena gradient buffer as this tensor's gradient when this one has
    /// none yet (same arena and pass, same size): a residual link, whose gradient is exactly
    /// its output's, then costs neither a cleared buffer nor a pass over it. `other` must not
    /// read its gradient again (the tape releases an op's output gradient right after the op).
    public func takeGradient(of other: Tensor) -> Bool {
        guard gradPointer == nil, let arena, other.arena === arena, other.count == count,
              arenaGeneration == arena.generation, other.arenaGeneration == arena.generation,
              let g = other.gradPointer else { return false }
        gradPointer = g
        other.gradPointer = nil
        return true
    }

    /// Points a parameter view's gradient into its store's buffer, or nowhere for a frozen
    /// parameter (`TrainableSet.apply`), whose ops then never ask for one.
    func viewGradient(_ g: UnsafeMutablePointer<Float>?) {
        if ownsGrad, let old = gradPointer { CheckedAllocation.free(old) }
        ownsGrad = false
        gradPointer = g
    }

    /// Hands an arena-backed gradient back to the pool (the tape does this once the op that
    /// produced this tensor has run its backward). No effect on other tensors.
    public func releaseGrad() {
        guard let arena, let g = gradPointer, arena.generation == arenaGeneration else { return }
        arena.recycle(g, count: count)
        gradPointer = nil
    }

    /// The single value of a scalar. Prefer this to `data[0]` on a temporary: the pointer
    /// does not keep the tensor alive, a method call does.
    public var item: Float { data[0] }

    public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }
    public var gradValues: [Float] { Array(UnsafeBufferPointer(start: grad, count: count)) }

    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }

    /// Rows × last dimension, the view every fused op works in.
    public var rows: Int { count / max(shape.last ?? 1, 1) }
    public var columns: Int { shape.last ?? 1 }
}
