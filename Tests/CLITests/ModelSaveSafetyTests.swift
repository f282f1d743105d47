import Foundation
import XCTest

/// A run's model directory: what would make its final save fail is found before the first
/// step (exit 6, one line, nothing trained for nothing), and the save replaces the old model
/// in one step, so a kill at any moment leaves a whole model (the old or the new).
final class ModelSaveSafetyTests: XCTestCase {
    static let train = ["train", "--model", "tiny", "--steps", "2", "--batch-size", "2", "--eval-examples", "0", "--quiet"]

    private func assertRefusedAtStart(_ r: CLI.Result, _ needle: String, out: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 6, r.all, file: file, line: line)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: error: ", in: r.stderr), 1, r.all, file: file, line: line)
        XCTAssertTrue(r.stderr.contains(needle), r.all, file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/metrics.jsonl"), "no step ran: \(r.all)", file: file, line: line)
    }

    func testDanglingOrLinkedModelDirectoryIsRefusedBeforeTraining() throws {
        let out = CLI.tempDir("save-link")
        try FileManager.default.createSymbolicLink(atPath: out + "/model", withDestinationPath: "/nonexistent/x")
        assertRefusedAtStart(CLI.sftDist(Self.train + ["--out", out]), out + "/model: is a symbolic link, which the save would replace with a directory", out: out)
        let other = CLI.tempDir("save-link-target")
        let linked = CLI.tempDir("save-link-2")
        try FileManager.default.createSymbolicLink(atPath: linked + "/model", withDestinationPath: other)
        assertRefusedAtStart(CLI.sftDist(Self.train + ["--out", linked]), linked + "/model: is a symbolic link", out: linked)
        // A link to a directory that holds a directory was named by the target's contents.
        try FileManager.default.createDirectory(atPath: other + "/sub", withIntermediateDirectories: true)
        let r = CLI.sftDist(Self.train + ["--out", linked])
        assertRefusedAtStart(r, linked + "/model: is a symbolic link, which the save would replace with a directory", out: linked)
        XCTAssertFalse(r.stderr.contains("sub/"), r.all)
    }

    /// As an unprivileged user (root writes anywhere): a previous run's model, or checkpoints
    /// directory, that this user cannot replace was found after the last step, or at the first save.
    func testUnwritableModelOrCheckpointsAreRefusedBeforeTraining() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            throw XCTSkip("needs root and setpriv to run as another user")
        }
        let out = CLI.tempDir("save-perm")
        XCTAssertEqual(CLI.sftDist(Self.train + ["--out", out]).status, 0)   // a model and checkpoints owned by root
        try FileManager.default.createDirectory(atPath: out + "/checkpoints", withIntermediateDirectories: true)
        // Everything on the way readable, the output directory writable by anyone; its model not.
        var dir = URL(fileURLWithPath: out)
        while dir.path != "/" { chmod(dir.path, 0o755); dir.deleteLastPathComponent() }
        chmod(out, 0o777)
        chmod(out + "/data", 0o777)   // the built-in data is written again there
        try? FileManager.default.removeItem(atPath: out + "/metrics.jsonl")
        try? FileManager.default.removeItem(atPath: out + "/.sft-dist.lock")
        let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CLI.binary]
        let model = CLI.run(asNobody + Self.train + ["--out", out], seconds: 60)
        assertRefusedAtStart(model, out + "/model: is not writable (Permission denied), so the save could not replace it", out: out)
        chmod(out + "/model", 0o777)
        let checkpoints = CLI.run(asNobody + Self.train + ["--save-every", "1", "--out", out], seconds: 60)
        assertRefusedAtStart(checkpoints, out + "/checkpoints: is not writable (Permission denied), where this run saves its checkpoints", out: out)
    }

    /// The old model was deleted file by file before the new one was renamed in: killed in
    /// between, `model/` held config.json and weights without the tokenizer. strace kills the
    /// run at its first unlink after the swap (the old model's files, now at the temporary name).
    func testAKillDuringTheFinalSaveLeavesAWholeModel() throws {
        guard let strace = InterNodeTests.workingStrace() else { throw XCTSkip("no strace here") }
        let out = CLI.tempDir("save-kill")
        XCTAssertEqual(CLI.sftDist(Self.train + ["--seed", "1", "--out", out]).status, 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: out + "/model/model.safetensors"))
        for when in 1...2 {
            let r = CLI.run([strace, "-f", "-qq", "-o", "/dev/null", "-P", out + "/model/model.safetensors", "-P", out + "/model/sft_dist_tokenizer.json",
                             "-e", "trace=unlink,unlinkat", "-e", "inject=unlink,unlinkat:signal=SIGKILL:when=\(when)", CLI.binary]
                            + Self.train + ["--seed", "\(1 + when)", "--out", out], seconds: 60)
            _ = r
            let files = Set((try? FileManager.default.contentsOfDirectory(atPath: out + "/model")) ?? [])
            XCTAssertEqual(files, ["config.json", "model.safetensors", "sft_dist_tokenizer.json"], "kill at unlink #\(when)")
            let eval = CLI.sftDist(["eval", "--model", out + "/model", "--data", out + "/data/heldout.jsonl", "--examples", "1"])
            XCTAssertEqual(eval.status, 0, "kill at unlink #\(when): \(eval.all)")
        }
        // A run that completes replaces it; the old weights are gone, no temporary is left.
        XCTAssertEqual(CLI.sftDist(Self.train + ["--seed", "9", "--out", out]).status, 0)
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/model/model.safetensors")), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.contains(".tmp-") }, [])
    }

    /// A plain run into the OUT of a LoRA run with --merge-lora and --ema replaced model/ and
    /// left model-base/, model-ema/ (an adapter) and model-merged/ of the earlier run beside
    /// it, silently: each is named in a warning (not deleted: it may be the only copy).
    func testAnEarlierRunsModelsLeftBesideTheNewOneAreNamed() throws {
        let out = CLI.tempDir("stale-models") + "/run"
        let quiet = ["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-examples", "0", "--quiet", "--out", out]
        XCTAssertEqual(CLI.sftDist(quiet + ["--lora-rank", "2", "--merge-lora", "--ema", "0.5"]).status, 0)
        let plain = CLI.sftDist(quiet)
        XCTAssertEqual(plain.status, 0, plain.all)
        for name in ["model-base", "model-ema", "model-merged"] {
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: warning: \(out)/\(name) is an earlier run's, which this run does not replace", in: plain.stderr),
                           1, plain.all)
        }
        let again = CLI.sftDist(quiet + ["--lora-rank", "2", "--merge-lora", "--ema", "0.5"])
        XCTAssertFalse(again.stderr.contains("warning"), again.all)
    }
}
