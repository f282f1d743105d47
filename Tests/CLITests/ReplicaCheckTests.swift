import Foundation
import XCTest

/// The periodic cross-rank parameter checksum: a replica that differs by one ulp in one
/// parameter (injected with the test-only SFT_DIST_FAULT=perturb:<step>) stops the job at
/// the next check, with one message naming the rank, and exit code 2 (a training failure).
final class ReplicaCheckTests: XCTestCase {
    func testDivergedReplicaIsCaughtByTheChecksum() throws {
        let out = CLI.tempDir("diverged")
        let job = try BackgroundJob.mpirun(2, ["train", "--model", "tiny", "--steps", "8", "--batch-size", "4",
                                               "--eval-examples", "0", "--checksum-every", "2", "--quiet", "--out", out],
                                           seconds: 60, environment: ["SFT_DIST_FAULT": "perturb:3"])
        let (r, _) = job.wait()
        XCTAssertEqual(r.status, 2, r.all)
        XCTAssertEqual(CLI.occurrences(of: "replicas diverged at step 4: the parameter checksum of rank 1 differs from rank 0's", in: r.all), 1, r.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model"), "no final model from a diverged run")
    }

    func testWithoutTheFaultTheSameRunPasses() {
        let out = CLI.tempDir("not-diverged")
        let r = CLI.mpirun(2, ["train", "--model", "tiny", "--steps", "8", "--batch-size", "4", "--eval-examples", "0",
                               "--checksum-every", "2", "--quiet", "--out", out])
        XCTAssertEqual(r.status, 0, r.all)
    }
}
