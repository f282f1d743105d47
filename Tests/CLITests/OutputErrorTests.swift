import Foundation
import XCTest

/// Every output a subcommand writes (output directory, recipe, metrics, model, checkpoints,
/// scores, make-data and export files) fails the same way when it cannot be written: exit
/// code 6 (README, "Exit codes") and one line under 300 characters naming the path and the
/// system's reason — never Foundation's "NSCocoaErrorDomain" or "The file doesn't exist."
final class OutputErrorTests: XCTestCase {
    private func checkOutputError(_ r: CLI.Result, naming path: String, _ label: String,
                                  file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 6, "\(label): \(r.all)", file: file, line: line)
        let errors = r.stderr.split(separator: "\n").filter { $0.contains("error") }
        XCTAssertEqual(errors.count, 1, "\(label): \(r.stderr)", file: file, line: line)
        let message = String(errors.first ?? "")
        XCTAssertTrue(message.contains(path), "\(label): \(message)", file: file, line: line)
        XCTAssertLessThan(message.utf8.count, 300, "\(label): \(message)", file: file, line: line)
        for vague in ["NSCocoaErrorDomain", "doesn’t exist", "doesn't exist", "(null)", "could not be completed", "Error Domain"] {
            XCTAssertFalse(message.contains(vague), "\(label): \(message)", file: file, line: line)
        }
    }

    func testTrainOutputsThatCannotBeWritten() throws {
        // /proc refuses new entries: the output directory, and the built-in data under it.
        checkOutputError(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-every", "0",
                                      "--quiet", "--out", "/proc/sft-dist-test"], seconds: 60), naming: "/proc/sft-dist-test", "--out /proc/x")
        checkOutputError(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-every", "0",
                                      "--quiet", "--out", "/proc"], seconds: 60), naming: "/proc", "--out /proc")
        // metrics.jsonl that cannot be created (a directory is in its place).
        let dir = CLI.tempDir("out-metrics")
        try FileManager.default.createDirectory(atPath: dir + "/metrics.jsonl", withIntermediateDirectories: true)
        checkOutputError(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-every", "0",
                                      "--quiet", "--out", dir], seconds: 60), naming: dir + "/metrics.jsonl", "metrics")
        // … refused before anything is written (recipe.yaml was). So is a directory in place of
        // loss.svg (the run ended 0 saying "plot in" it), and a metrics.jsonl that is a symbolic
        // link (the metrics were appended to the file outside OUT).
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/recipe.yaml"), "recipe.yaml written")
        let plot = CLI.tempDir("out-plot")
        try FileManager.default.createDirectory(atPath: plot + "/loss.svg", withIntermediateDirectories: true)
        checkOutputError(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-every", "0",
                                      "--out", plot], seconds: 60), naming: plot + "/loss.svg: is a directory", "plot")
        XCTAssertFalse(FileManager.default.fileExists(atPath: plot + "/recipe.yaml"), "recipe.yaml written")
        let linked = CLI.tempDir("out-metrics-link"), outside = CLI.tempDir("outside") + "/other.txt"
        try "keep\n".write(toFile: outside, atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: linked + "/metrics.jsonl", withDestinationPath: outside)
        checkOutputError(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-every", "0",
                                      "--quiet", "--out", linked], seconds: 60), naming: linked + "/metrics.jsonl: is a symbolic link", "metrics link")
        XCTAssertEqual(try String(contentsOfFile: outside, encoding: .utf8), "keep\n")
        // --out is a regular file: said so (it was "cannot create the output directory (File exists)").
        let file = CLI.tempDir("out-file") + "/f"
        try "x".write(toFile: file, atomically: false, encoding: .utf8)
        let r = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-every", "0", "--quiet", "--out", file], seconds: 60)
        checkOutputError(r, naming: file + ": is a file, not a directory", "--out FILE")
        // --out is a model directory (`--out run/model`): the run wrote data/, model/ and its
        // files into it, and the model directory was no longer one.
        let model = CLI.tempDir("out-model")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-examples", "0",
                                    "--quiet", "--out", model], seconds: 60).status, 0)
        let before = try FileManager.default.contentsOfDirectory(atPath: model + "/model").sorted()
        checkOutputError(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-examples", "0",
                                      "--quiet", "--out", model + "/model"], seconds: 60),
                         naming: model + "/model: holds config.json, so it is a model directory, not a run's output", "--out MODEL")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: model + "/model").sorted(), before)
        let dry = CLI.sftDist(["train", "--model", "tiny", "--out", model + "/model", "--dry-run"])
        checkOutputError(dry, naming: model + "/model: holds config.json, so it is a model directory", "--out MODEL --dry-run")
        // The checkpoints directory is a file.
        let ck = CLI.tempDir("out-checkpoints")
        try "x".write(toFile: ck + "/checkpoints", atomically: false, encoding: .utf8)
        checkOutputError(CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--batch-size", "2", "--eval-every", "0",
                                      "--save-every", "1", "--quiet", "--out", ck], seconds: 60), naming: ck + "/checkpoints", "checkpoints")
    }

    /// A metrics line the disk took only part of is cut off again: the file ends with the last
    /// whole line (a torn `{"step": 63, "loss": 2.75` was left). `ulimit -f` (SIGXFSZ ignored)
    /// makes the write fail part-way, as a full disk does.
    func testMetricsEndWithAWholeLineWhenTheDiskFills() throws {
        let dir = CLI.tempDir("metrics-full")
        let row = "{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\"}\n"
        try String(repeating: row, count: 40).write(toFile: dir + "/d.jsonl", atomically: true, encoding: .utf8)
        let argv = [CLI.binary, "train", "--model", "tiny", "--data", dir + "/d.jsonl", "--steps", "400", "--batch-size", "2",
                    "--eval-examples", "0", "--eval-every", "0", "--log-every", "1", "--quiet", "--out", dir + "/out"]
        let r = CLI.run(["bash", "-c", "trap '' XFSZ; ulimit -f 12; exec \"$@\"", "bash"] + argv, seconds: 120)
        checkOutputError(r, naming: dir + "/out/metrics.jsonl: cannot write metrics", "metrics on a full disk")
        let text = try String(contentsOfFile: dir + "/out/metrics.jsonl", encoding: .utf8)
        XCTAssertTrue(text.hasSuffix("\n"), String(text.suffix(200)))
        for line in text.split(separator: "\n") {
            XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(line.utf8)), String(line))
        }
    }

    /// export/merge/merge-lora --out under a missing directory is refused as file outputs are
    /// (it created the whole path); score --out may not add a model file's name to the model it
    /// reads (a new generation_config.json was planted there, and merge/export copied it on).
    func testCommandOutputsNeedTheirDirectoryAndLeaveInputModelsAlone() throws {
        let dir = CLI.tempDir("out-parent")
        checkOutputError(CLI.sftDist(["export", "--model", "tiny", "--out", dir + "/missing/d"]), naming: dir + "/missing/d: no such directory \(dir)/missing", "export")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/missing"))
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--eval-examples", "0", "--quiet", "--out", dir + "/run"]).status, 0)
        let data = dir + "/run/data/heldout.jsonl"
        checkOutputError(CLI.sftDist(["score", "--model", dir + "/run/model", "--data", data, "--out", dir + "/run/model/generation_config.json"]),
                         naming: "is a file of the input --model \(dir)/run/model", "score into the model")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/run/model/generation_config.json"))
    }

    func testOtherSubcommandsOutputsThatCannotBeWritten() throws {
        let dir = CLI.tempDir("out-others")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-every", "0",
                                    "--quiet", "--out", dir], seconds: 60).status, 0)
        checkOutputError(CLI.sftDist(["make-data", "--out", "/proc/x.jsonl", "--count", "4"], seconds: 30), naming: "/proc/x.jsonl", "make-data")
        // A directory given as the file is an output problem too (it exited 1). An empty path
        // (it said ": cannot write (…: Is a directory)") is a malformed flag: InferenceMisuseTests.
        checkOutputError(CLI.sftDist(["make-data", "--out", dir, "--count", "4"], seconds: 30), naming: dir, "make-data to a directory")
        checkOutputError(CLI.sftDist(["score", "--model", dir + "/model", "--data", dir + "/data/heldout.jsonl", "--out", "/proc/s.jsonl"],
                                     seconds: 60), naming: "/proc/s.jsonl", "score")
        checkOutputError(CLI.sftDist(["export", "--model", dir + "/model", "--out", "/proc/exported"], seconds: 60),
                         naming: "/proc/exported", "export")
        // Bad input stays exit code 1: only writing is class 6.
        XCTAssertEqual(CLI.sftDist(["export", "--model", dir + "/nope", "--out", dir + "/e"], seconds: 60).status, 1)
    }
}
