import XCTest
@testable import Training

/// ⌈epochs × ⌈rows ÷ batch_size⌉⌉ steps, computed by hand here (transformers' count: every
/// epoch ends with a short batch), at least one, rounded up from the double product as
/// transformers' `math.ceil` does. The epochs' batches: each epoch every row once.
final class TrainEpochsTests: XCTestCase {
    func testStepsForEpochs() {
        for (epochs, rows, batch, steps) in [(2.0, 30, 8, 8), (1.0, 30, 10, 3), (3.0, 950, 48, 60), (0.5, 7, 2, 2),
                                             (1.1, 100, 10, 11), (0.7, 10, 1, 7), (2.3, 100, 1, 230), (0.001, 10, 4, 1),
                                             // ⌈10 ÷ 4⌉ = 3 steps an epoch, 9 in 3 epochs (streaming would take ⌈30 ÷ 4⌉ = 8)
                                             (3.0, 10, 4, 9), (3.0, 5, 4, 6), (1.5, 10, 4, 5)] {
            XCTAssertEqual(TrainEpochs.steps(epochs: epochs, rows: rows, batchSize: batch), steps, "\(epochs) × \(rows) ÷ \(batch)")
        }
        // 1.1 × ⌈101 ÷ 10⌉ = 12.1 is 13 steps; Python's math.ceil(1.1 * 50) is 56 (the product is
        // 55.00000000000001 in doubles), and so is TRL's count: 100 rows at batch 2.
        XCTAssertEqual(TrainEpochs.steps(epochs: 1.1, rows: 101, batchSize: 10), 13)
        XCTAssertEqual(TrainEpochs.steps(epochs: 1.1, rows: 100, batchSize: 2), 56)
        XCTAssertEqual(TrainEpochs.steps(epochs: 333333.3335, rows: 30, batchSize: 1), 10_000_001)
        XCTAssertEqual(TrainEpochs.text(333333.3335), "333333.3335")
        XCTAssertEqual(TrainEpochs.text(2), "2")
        XCTAssertEqual(TrainEpochs.text(0.5), "0.5")
        XCTAssertEqual(TrainEpochs.epoch(afterStep: 3, rows: 10, batchSize: 4, shortLastBatch: true), 1)
        XCTAssertEqual(TrainEpochs.epoch(afterStep: 3, rows: 10, batchSize: 4, shortLastBatch: false), 1.2)
    }

    /// 10 rows at batch 4: batches of 4, 4, 2 each epoch, together every row once, a new
    /// order each epoch; with a batch size that divides the rows, the streaming sampler's batches.
    func testEachEpochEndsWithAShortBatchAndHoldsEveryRowOnce() throws {
        let s = EpochSampler(datasetSize: 10, batchSize: 4, seed: 7)
        XCTAssertEqual(s.batchesPerEpoch, 3)
        var epochs: [[Int]] = []
        for e in 0..<3 {
            let batches = (0..<3).map { s.batch(step: e * 3 + $0) }
            XCTAssertEqual(batches.map(\.count), [4, 4, 2])
            XCTAssertEqual(batches.joined().sorted(), Array(0..<10), "epoch \(e) trains every row once")
            epochs.append(Array(batches.joined()))
        }
        XCTAssertEqual(Set(epochs).count, 3, "each epoch its own order")
        XCTAssertEqual(EpochSampler(datasetSize: 10, batchSize: 4, seed: 7).batch(step: 7), s.batch(step: 7), "a function of (seed, step)")

        let aligned = EpochSampler(datasetSize: 12, batchSize: 4, seed: 3), streamed = UniformSampler(datasetSize: 12, batchSize: 4, seed: 3)
        for step in 0..<9 { XCTAssertEqual(aligned.batch(step: step), streamed.batch(step: step)) }
    }

    /// A checkpoint of the streaming order resumes here only where the batches are the same.
    func testStreamingCheckpointsResumeOnlyWhereTheBatchesAgree() throws {
        let s = EpochSampler(datasetSize: 10, batchSize: 4, seed: 7)
        XCTAssertNoThrow(try s.restore(s.state))
        XCTAssertThrowsError(try s.restore([7])) { XCTAssertTrue("\($0)".contains("streamed its epochs"), "\($0)") }
        XCTAssertThrowsError(try s.restore([8, 3]))
        XCTAssertNoThrow(try EpochSampler(datasetSize: 12, batchSize: 4, seed: 7).restore([7]))
    }
}
