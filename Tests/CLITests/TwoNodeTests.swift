import Foundation
import XCTest

/// README "Cluster use", two hosts: the hostfile command with `btl_tcp_if_include` and
/// `oob_tcp_if_include`, mpirun starting its daemon on the second host over ssh, the ranks
/// talking TCP between the hosts; checkpoints on rank 0's host only, a run killed after one and
/// resumed there equal bit for bit to an uninterrupted run, and rank 0 on the host without them
/// starting at step 0 as the README says. Runs where these are set, skipped elsewhere (CI):
///   SFT_DIST_TEST_HOSTFILE    two hosts, this machine first, `slots=1` each
///   SFT_DIST_TEST_NET         the network between them (CIDR or interface)
///   SFT_DIST_TEST_NODE_LOCAL  a directory on this machine that the second host does not share
/// `scripts/second-node up DIR` makes all three on one machine (a network namespace with its
/// own hostname, sshd and a private tmpfs over DIR); the second host is then no other machine,
/// but Open MPI counts two nodes and uses TCP between them.
final class TwoNodeTests: XCTestCase {
    struct Hosts { var hostfile: String, net: String, local: String, second: String }

    func hosts() throws -> Hosts {
        let env = ProcessInfo.processInfo.environment
        guard let hostfile = env["SFT_DIST_TEST_HOSTFILE"], let net = env["SFT_DIST_TEST_NET"], let local = env["SFT_DIST_TEST_NODE_LOCAL"] else {
            throw XCTSkip("SFT_DIST_TEST_HOSTFILE, SFT_DIST_TEST_NET and SFT_DIST_TEST_NODE_LOCAL are not set (scripts/second-node)")
        }
        let lines = try String(contentsOfFile: hostfile, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }
        guard lines.count == 2, let host = lines[1].split(separator: " ").first else {
            XCTFail("SFT_DIST_TEST_HOSTFILE: a hostfile of two hosts, one per line: \(hostfile)")
            throw XCTSkip("no second host")
        }
        let second = String(host)
        return Hosts(hostfile: hostfile, net: net, local: local + "/two-node-\(getpid())", second: second)
    }

    let base = ["train", "--model", "tiny", "--data", "builtin:tasks", "--steps", "12", "--batch-size", "8", "--micro-batch-size", "2",
                "--lr", "3e-3", "--warmup-steps", "2", "--eval-every", "0", "--eval-examples", "2", "--max-new-tokens", "2",
                "--save-every", "4", "--quiet"]

    /// The README's command: `mpirun --hostfile H -n 2 --bind-to none --mca btl_tcp_if_include NET
    /// --mca oob_tcp_if_include NET -x OPENBLAS_NUM_THREADS=1 sft-dist …` (remote ranks get only
    /// what `-x` passes).
    func twoHosts(_ h: Hosts, rankfile: String? = nil, _ args: [String], fault: String? = nil) throws -> CLI.Result {
        var argv = ["mpirun", "--allow-run-as-root"] + (rankfile.map { ["--rankfile", $0] } ?? ["--hostfile", h.hostfile]) + ["-n", "2", "--bind-to", "none",
                    "--mca", "btl_tcp_if_include", h.net, "--mca", "oob_tcp_if_include", h.net, "--mca", "btl_base_verbose", "30",
                    "-x", "OPENBLAS_NUM_THREADS=1"]
        if let fault { argv += ["-x", "SFT_DIST_FAULT=" + fault] }
        let r = try BackgroundJob(argv + [CLI.binary] + args, seconds: 180).wait().result
        XCTAssertNotEqual(r.status, 124, "timed out: the job hung\n\(r.all)")
        return r
    }

    func testTrainKilledAndResumedAcrossTwoHostsEqualsAnUninterruptedRun() throws {
        let h = try hosts()
        try FileManager.default.createDirectory(atPath: h.local, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: h.local)
            _ = CLI.run(["ssh", h.second, "rm -rf \(h.local)"], seconds: 30)
        }
        let reference = CLI.mpirun(2, base + ["--out", h.local + "/reference"])
        XCTAssertEqual(reference.status, 0, reference.all)

        let run = base + ["--out", h.local + "/run", "--resume", "latest"]
        let killed = try twoHosts(h, run, fault: "after-step:6")
        XCTAssertNotEqual(killed.status, 0, "the fault point did not stop the run\n\(killed.all)")
        // Rank 1 ran on the other host and reached rank 0 over TCP on the named network.
        XCTAssertTrue(killed.all.contains("Using tcp btl for send to [[") && killed.all.contains("now connected to"), killed.all)
        let resumed = try twoHosts(h, run.filter { $0 != "--quiet" })
        XCTAssertEqual(resumed.status, 0, resumed.all)
        XCTAssertTrue(resumed.all.contains("resume: continuing after step 4 of 12"), resumed.all)
        XCTAssertEqual(CLI.losses(h.local + "/run"), CLI.losses(h.local + "/reference"))
        XCTAssertEqual(CLI.losses(h.local + "/reference").count, 12)
        // The second host's view of the output directory: nothing (rank 0 alone writes).
        let seen = CLI.run(["ssh", h.second, "ls -A \(h.local) 2>/dev/null | wc -l"], seconds: 30)
        XCTAssertEqual(seen.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "0", "the second host sees files in \(h.local): \(seen.all)")

        // Rank 0 on the host without the checkpoints: `latest` finds none and starts at step 0,
        // saying so; a named checkpoint is refused. A rankfile places it there: Open MPI 4.1
        // gives rank 0 to mpirun's own host whenever the hostfile lists it, in any order.
        let lines = try String(contentsOfFile: h.hostfile, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }
        let first = String(lines[0].split(separator: " ")[0]), rankfile = h.local + "/second-first.rankfile"
        try "rank 0=\(h.second) slot=0\nrank 1=\(first) slot=0\n".write(toFile: rankfile, atomically: true, encoding: .utf8)
        let named = try twoHosts(h, rankfile: rankfile, base + ["--out", h.local + "/run", "--resume", h.local + "/run/checkpoints/step-000008"])
        XCTAssertEqual(named.status, 1, named.all)
        XCTAssertTrue(named.all.contains("no such checkpoint directory"), named.all)
        let elsewhere = try twoHosts(h, rankfile: rankfile, run.filter { $0 != "--quiet" })
        XCTAssertEqual(elsewhere.status, 0, elsewhere.all)
        XCTAssertTrue(elsewhere.all.contains("resume: no checkpoint in \(h.local)/run/checkpoints/ yet; starting at step 0"), elsewhere.all)
    }
}
