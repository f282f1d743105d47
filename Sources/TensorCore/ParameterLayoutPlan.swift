/// A model's parameter layout as the parts it is made of: the tensors before the repeated
/// blocks, one block (given its index), the number of blocks, and the tensors after. Its size
/// can then be computed with overflow-checked arithmetic from one block, before anything is
/// built: a config with 10⁹ layers or a width of 2⁴⁰ is refused without listing a billion names
/// or trapping on a shape product. Every block must have the same shapes (true of GPT-2 and the
/// Llama family).
public struct ParameterLayoutPlan {
    public typealias Layout = [(name: String, shape: [Int])]

    public var before: Layout
    public var block: (Int) -> Layout
    public var blocks: Int
    public var after: Layout

    public init(before: Layout, block: @escaping (Int) -> Layout, blocks: Int, after: Layout) {
        self.before = before
        self.block = block
        self.blocks = blocks
        self.after = after
    }

    /// `a·b` for a dimension, or -1 (a size `storeFloats` refuses) when it overflows.
    public static func dimension(_ a: Int, _ b: Int) -> Int {
        let (p, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? -1 : p
    }

    /// Every tensor, in order (what `ParameterStore(layout:)` takes).
    public var layout: Layout { before + (0..<blocks).flatMap(block) + after }

    /// Floats the `ParameterStore` allocates for values (the same again for gradients),
    /// alignment included; nil if that overflows `Int`.
    public var storeFloats: Int? {
        func sum(_ l: Layout) -> Int? {
            var total = 0
            for (_, shape) in l {
                guard let n = ParameterStore.alignedCount(shape), case (let t, false) = total.addingReportingOverflow(n) else { return nil }
                total = t
            }
            return total
        }
        guard blocks >= 0, let head = sum(before), let tail = sum(after) else { return nil }
        let perBlock = blocks == 0 ? 0 : sum(block(0))
        guard let perBlock, case (let body, false) = perBlock.multipliedReportingOverflow(by: blocks),
              case (let a, false) = head.addingReportingOverflow(body), case (let total, false) = a.addingReportingOverflow(tail) else { return nil }
        return total
    }
}
