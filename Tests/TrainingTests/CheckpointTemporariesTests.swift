import Foundation
import XCTest
@testable import Training

/// A checkpoint save removes the temporaries that killed saves left (`.tmp-step-…-<pid>`,
/// `.tmp-delete-<pid>-…`) only once their process is gone: another run writing to the same
/// directory keeps its save in progress (it lost it, and failed with a rename error).
final class CheckpointTemporariesTests: XCTestCase {
    func testOnlyTheTemporariesOfFinishedProcessesAreRemoved() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-tmp-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertEqual(kill(1, 0), 0, "pid 1 must exist for this test")
        let live = [".tmp-step-000001-1", ".tmp-delete-1-step-000003"]
        let dead = [".tmp-step-000002-999999", ".tmp-delete-999998-step-000004", ".tmp-step-000005-\(getpid())"]
        for name in live + dead { try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: true) }
        CheckpointStore(directory: dir).removeTemporaries()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), live.sorted())
    }

    /// The checkpoint directory replaced by a file during a run: the message says so (it read
    /// "File exists", Foundation's reason, which sent the user looking for a directory).
    func testACheckpointDirectoryThatIsAFileIsNamedSo() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-file-\(getpid())").path
        FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try CheckpointStore.createDirectory(path)) { error in
            XCTAssertEqual("\(error)", "\(path): cannot create the checkpoint directory (it exists and is not a directory)")
        }
    }
}
