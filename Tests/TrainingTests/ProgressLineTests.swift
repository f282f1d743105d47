import XCTest
@testable import Training

/// The progress line's ETA: time per step run in this process × steps left. A resumed run
/// divided its time since resume by the absolute step number (step 130 of 200 after resuming
/// at 120, 2 s elapsed: "ETA 00:01" where 14 s were left).
final class ProgressLineTests: XCTestCase {
    func testETAAfterResumeCountsOnlyTheStepsRunSince() {
        XCTAssertEqual(ProgressLine.eta(done: 130, total: 200, firstStep: 120, elapsed: 2), 14, accuracy: 1e-9)
        XCTAssertEqual(ProgressLine.eta(done: 10, total: 200, firstStep: 0, elapsed: 3), 57, accuracy: 1e-9)
        XCTAssertEqual(ProgressLine.eta(done: 200, total: 200, firstStep: 120, elapsed: 9), 0)
    }
}
