import Foundation
import XCTest
@testable import Distributed

/// The watchdog's deadline on a fake clock: a collective waiting past it fires once; time in
/// which the process was frozen (its watchdog thread did not run) does not count against the
/// other ranks.
final class WatchdogTests: XCTestCase {
    final class FakeClock: @unchecked Sendable {
        var now = 0.0
    }

    func testFiresOncePastTheDeadlineAndNotForAFrozenProcess() {
        let clock = FakeClock()
        var messages: [String] = []
        let dog = Watchdog(seconds: 3, rank: 0, clock: { clock.now }, abort: { messages.append($0) }, monitored: false)
        dog.enter("allreduce (3 doubles)")
        clock.now = 2.5
        XCTAssertFalse(dog.expired(after: 3))
        // Stopped for 10 s, then continued: that time is excused, so no blame yet.
        clock.now = 12.5
        dog.excuse(frozen: 10)
        XCTAssertFalse(dog.expired(after: 3))
        XCTAssertTrue(messages.isEmpty)
        // A gap under a second is scheduling, not a freeze: it counts.
        dog.excuse(frozen: 0.5)
        clock.now = 13.1
        XCTAssertTrue(dog.expired(after: 3))
        XCTAssertEqual(messages.count, 1)
        XCTAssertTrue(messages[0].hasPrefix("no progress in collective allreduce (3 doubles)"), messages[0])
        clock.now = 100
        XCTAssertFalse(dog.expired(after: 3), "fires once")
        XCTAssertEqual(messages.count, 1)
        dog.leave()
    }
}
