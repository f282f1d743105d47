#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import TensorCore

/// The pass after the one that grew the arena must not fault its pages in one by one: at
/// SmolLM2-135M's shape that was ~1.4 GB of activations, 7 % of the first timed step.
final class ArenaPageFaultTests: XCTestCase {
    #if os(Linux)
    private func minorFaults() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)   // the whole process: its other threads are idle here
        return usage.ru_minflt
    }

    /// One pass: `pieces` activations of `floats` each, every float written.
    private func pass(_ arena: Arena, pieces: Int, floats: Int) -> Int {
        let before = minorFaults()
        for _ in 0..<pieces { arena.floats(floats).update(repeating: 1, count: floats) }
        return minorFaults() - before
    }

    func testPassAfterSettleTakesNoPageFaults() {
        let pieces = 8, floats = 1 << 20          // 32 MiB: 8192 pages of 4 KiB
        let arena = Arena()
        arena.reset()
        let first = pass(arena, pieces: pieces, floats: floats)   // grows: overflow blocks
        arena.settle()
        let held = arena.bytes
        // settle() rebuilt the block now, its pages resident before anything writes them.
        let block = arena.floats(pieces * floats)
        let pages = pieces * floats * 4 / ZeroedPages.pageSize
        if let resident = ZeroedPages.residentPages(block, 0..<(pieces * floats)) {
            XCTAssertGreaterThanOrEqual(resident, pages - 2, "settle() must map the new block's pages")
        }
        arena.reset()                                              // already settled: keeps the block
        let second = pass(arena, pieces: pieces, floats: floats)
        arena.settle()
        XCTAssertEqual(arena.bytes, held, "a settled arena must not be rebuilt by the next reset")
        // With transparent huge pages on for every mapping, `first` is small too and this
        // checks little; under `madvise` (the default) it is one fault per page.
        XCTAssertLessThanOrEqual(second, max(16, first / 16),
                                 "second pass took \(second) page faults (first: \(first))")
    }
    #endif
}
