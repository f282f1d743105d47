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
    /// Parameters and anything computed from them; inputs like token ids never are.
    public var requiresGrad: Bool

    /// A new zero-filled tensor that owns its storage.
    public init(zeros shape: [Int], requiresGrad: Bool = false) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        data = .allocate(capacity: max(count, 1))
        data.initialize(repeating: 0, count: max(count, 1))
        ownsData = true
        ownsGrad = false
        self.requiresGrad = requiresGrad
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
    }

    deinit {
        if ownsData { data.deallocate() }
        if ownsGrad, let g = gradPointer { g.deallocate() }
    }

    /// The gradient buffer, allocated zeroed on first use.
    public var grad: UnsafeMutablePointer<Float> {
        if let g = gradPointer { return g }
        let g = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        g.initialize(repeating: 0, count: max(count, 1))
        gradPointer = g
        ownsGrad = true
        return g
    }

    public var hasGrad: Bool { gradPointer != nil }

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
