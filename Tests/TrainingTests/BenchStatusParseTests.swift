import XCTest
@testable import Training

/// The benchmark's peak RSS comes from /proc/self/status, whose numbers are padded to 8
/// columns after a tab: a 0.5B-parameter run's 10.3 GiB peak has no space before it.
final class BenchStatusParseTests: XCTestCase {
    func testKilobytesWithAndWithoutPaddingSpaces() {
        XCTAssertEqual(Benchmark.statusKilobytes("VmHWM:\t    2076 kB"), 2076)
        XCTAssertEqual(Benchmark.statusKilobytes("VmHWM:\t 3790640 kB"), 3_790_640)
        XCTAssertEqual(Benchmark.statusKilobytes("VmHWM:\t10798988 kB"), 10_798_988)
        XCTAssertEqual(Benchmark.statusKilobytes("VmHWM:\t123456789 kB"), 123_456_789)
    }
}
