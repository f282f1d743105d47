import XCTest
@testable import Training

/// ⌈epochs × rows ÷ batch_size⌉ steps, computed by hand here, at least one; a quotient that
/// is whole in decimals but not in doubles does not gain a step.
final class TrainEpochsTests: XCTestCase {
    func testStepsForEpochs() {
        for (epochs, rows, batch, steps) in [(2.0, 30, 8, 8), (1.0, 30, 10, 3), (3.0, 950, 48, 60), (0.5, 7, 2, 2),
                                             (1.1, 100, 10, 11), (0.7, 10, 1, 7), (2.3, 100, 1, 230), (0.001, 10, 4, 1)] {
            XCTAssertEqual(TrainEpochs.steps(epochs: epochs, rows: rows, batchSize: batch), steps, "\(epochs) × \(rows) ÷ \(batch)")
        }
        // Not just whole quotients: 1.1 × 101 ÷ 10 = 11.11 is 12 steps.
        XCTAssertEqual(TrainEpochs.steps(epochs: 1.1, rows: 101, batchSize: 10), 12)
    }
}
