import Foundation
import XCTest

/// `generate --out FILE` and `eval --out FILE`, as `score --out`: rank 0 writes the results to a
/// file, whole or not at all. Under mpirun a rank's standard output goes through mpirun, which
/// exits 0 when its own write fails (a full disk behind `>`: 94 of 400 lines, the last one cut,
/// and exit 0 — a review); a file sft-dist writes itself fails with exit 6 and one line.
final class ResultFileTests: XCTestCase {
    func testGenerateAndEvalWriteTheirResultsToAFile() throws {
        let dir = CLI.tempDir("result-files")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--eval-examples", "0", "--quiet", "--out", "run"], cwd: dir).status, 0)
        try (1...5).map { "{\"prompt\": \"add \($0) 2 =\", \"completion\": \" \($0 + 2)\"}\n" }.joined()
            .write(toFile: dir + "/p.jsonl", atomically: true, encoding: .utf8)
        let gen = ["generate", "--model", dir + "/run/model", "--prompts", dir + "/p.jsonl", "--json", "--max-new-tokens", "3"]
        let printed = CLI.mpirun(2, gen)
        XCTAssertEqual(printed.status, 0, printed.all)
        let written = CLI.mpirun(2, gen + ["--out", dir + "/g.jsonl"])
        XCTAssertEqual(written.status, 0, written.all)
        XCTAssertEqual(written.stdout, "")
        XCTAssertEqual(try String(contentsOfFile: dir + "/g.jsonl", encoding: .utf8), printed.stdout)
        XCTAssertEqual(printed.stdout.split(separator: "\n").count, 5)
        // One --prompt is streamed when printed; to a file it is the same line.
        let one = CLI.sftDist(["generate", "--model", "run/model", "--prompt", "add 1 2 =", "--max-new-tokens", "3"], cwd: dir)
        XCTAssertEqual(CLI.sftDist(["generate", "--model", "run/model", "--prompt", "add 1 2 =", "--max-new-tokens", "3", "--out", "one.txt"], cwd: dir).status, 0)
        XCTAssertEqual(try String(contentsOfFile: dir + "/one.txt", encoding: .utf8), one.stdout)

        let ev = ["eval", "--model", dir + "/run/model", "--data", dir + "/p.jsonl", "--examples", "3"]
        let json = CLI.mpirun(2, ev + ["--json"])
        XCTAssertEqual(json.status, 0, json.all)
        let file = CLI.mpirun(2, ev + ["--out", dir + "/e.json"])
        XCTAssertEqual(file.status, 0, file.all)
        XCTAssertEqual(try String(contentsOfFile: dir + "/e.json", encoding: .utf8), json.stdout)

        // A file that cannot be written: exit 6, one line, nothing left; an input is refused as the output.
        for args in [gen + ["--out", dir + "/none/g.jsonl"], ev + ["--out", dir + "/none/e.json"]] {
            let r = CLI.mpirun(2, args)
            XCTAssertEqual(r.status, 6, r.all)
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error: --out \(dir)/none/", in: r.stderr), 1, r.all)
        }
        let clobber = CLI.sftDist(ev + ["--out", dir + "/p.jsonl"])
        XCTAssertEqual(clobber.status, 6, clobber.all)
        XCTAssertTrue(clobber.stderr.contains("is the input --data"), clobber.all)
    }
}
