import Foundation

/// Learning rate at a step: linear warmup from 0, then cosine or linear decay to
/// `minRatio·peak` at the last step, or constant.
public struct LRSchedule: Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable { case cosine, linear, constant }
    public var kind: Kind
    public var peak: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var minRatio: Float

    public init(kind: Kind, peak: Float, warmupSteps: Int, totalSteps: Int, minRatio: Float) {
        self.kind = kind; self.peak = peak; self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps; self.minRatio = minRatio
    }

    /// `step` is 0-based; warmup reaches the peak at step warmupSteps − 1.
    public func lr(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let floor = peak * minRatio
        let span = max(totalSteps - warmupSteps - 1, 1)
        let progress = min(Float(step - warmupSteps) / Float(span), 1)
        switch kind {
        case .constant: return peak
        case .linear: return floor + (peak - floor) * (1 - progress)
        case .cosine: return floor + (peak - floor) * 0.5 * (1 + cos(Float.pi * progress))
        }
    }
}
