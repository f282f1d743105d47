import Foundation
import XCTest

/// `--resume` verifies before it loads: each kind of bad checkpoint is refused with its own
/// message and exit code 1, and the run directory (metrics, checkpoints) is left as it was.
final class BadCheckpointTests: XCTestCase {
    let args = ["train", "--model", "tiny", "--steps", "6", "--batch-size", "4", "--micro-batch-size", "2",
                "--lr", "3e-3", "--eval-examples", "2", "--max-new-tokens", "2", "--save-every", "3", "--quiet"]

    func testEachKindOfBadCheckpointIsRefusedAndChangesNothing() throws {
        let dir = CLI.tempDir("bad-checkpoint"), out = dir + "/run"
        let fm = FileManager.default
        let first = CLI.sftDist(args + ["--out", out])
        XCTAssertEqual(first.status, 0, first.all)
        let metrics = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)
        let recipe = try String(contentsOfFile: out + "/recipe.yaml", encoding: .utf8)
        let good = out + "/checkpoints/step-000003"

        /// A copy of the good checkpoint, damaged by `damage`.
        func damaged(_ name: String, _ damage: (String) throws -> Void) throws -> String {
            let path = dir + "/" + name
            try fm.copyItem(atPath: good, toPath: path)
            try damage(path)
            return path
        }
        func refuse(_ extra: [String], _ message: String, file: StaticString = #filePath, line: UInt = #line) {
            let r = CLI.sftDist(args + ["--out", out] + extra, seconds: 60)
            XCTAssertEqual(r.status, 1, r.all, file: file, line: line)
            XCTAssertEqual(CLI.occurrences(of: message, in: r.stderr), 1, "expected \"\(message)\" in:\n\(r.all)", file: file, line: line)
            XCTAssertEqual(try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8), metrics, "metrics.jsonl changed", file: file, line: line)
            XCTAssertEqual(try? String(contentsOfFile: out + "/recipe.yaml", encoding: .utf8), recipe, "recipe.yaml changed", file: file, line: line)
            XCTAssertEqual(CLI.checkpoints(out).published, ["step-000003", "step-000006"], file: file, line: line)
        }

        refuse(["--resume", dir + "/nowhere"], "nowhere: no such checkpoint directory")
        // A step that was not saved: the ones that were, to pick from.
        refuse(["--resume", out + "/checkpoints/step-000004"],
               "step-000004: no such checkpoint directory (\(out)/checkpoints holds step-000003, step-000006; or give \"latest\")")
        // Another run's: no "latest" (it would look in this run's --out), and a file or an
        // empty directory named like a checkpoint is not offered.
        let other = CLI.sftDist(args + ["--out", dir + "/fresh", "--resume", out + "/checkpoints/step-000004"])
        XCTAssertEqual(other.status, 1, other.all)
        XCTAssertTrue(other.stderr.contains("no such checkpoint directory (\(out)/checkpoints holds step-000003, step-000006)"), other.stderr)
        try fm.createDirectory(atPath: dir + "/odd/checkpoints/step-000002", withIntermediateDirectories: true)
        fm.createFile(atPath: dir + "/odd/checkpoints/step-000005", contents: Data())
        let odd = CLI.sftDist(args + ["--out", dir + "/fresh", "--resume", dir + "/odd/checkpoints/step-000005"])
        XCTAssertEqual(odd.status, 1, odd.all)
        XCTAssertTrue(odd.stderr.contains("step-000005: no such checkpoint directory (use a directory like "), odd.stderr)
        refuse(["--resume", out], "run/manifest.json: missing (not a checkpoint directory")
        refuse(["--resume", good, "--model", "small"], "step-000003: checkpoint is from a different model config (")
        refuse(["--resume", good, "--lr", "0.001"], "checkpoint was made with a different recipe: lr is 0.003 there but 0.001 here")
        refuse(["--resume", good, "--objective", "dft"], "different recipe: objective is \"nll\" there but \"dft\" here")

        let garbage = try damaged("garbage") { try "{ not json".write(toFile: $0 + "/manifest.json", atomically: true, encoding: .utf8) }
        refuse(["--resume", garbage], "garbage/manifest.json: corrupt manifest (not the JSON sft-dist writes")
        let edited = try damaged("edited") { p in
            let m = try String(contentsOfFile: p + "/manifest.json", encoding: .utf8)
            try m.replacingOccurrences(of: "\"size\" : ", with: "\"size\" : 1").write(toFile: p + "/manifest.json", atomically: true, encoding: .utf8)
        }
        refuse(["--resume", edited], "edited/manifest.json: corrupt manifest (its checksum")
        let truncated = try damaged("truncated") { p in
            let f = p + "/model/model.safetensors"
            let b = try Data(contentsOf: URL(fileURLWithPath: f))
            try b.prefix(b.count / 2).write(to: URL(fileURLWithPath: f))
        }
        refuse(["--resume", truncated], "truncated/model/model.safetensors: ")
        refuse(["--resume", truncated], "bytes but the manifest says")
        let flipped = try damaged("flipped") { p in
            let f = p + "/optimizer.safetensors"
            var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: f)))
            b[b.count - 5] ^= 0x10
            try Data(b).write(to: URL(fileURLWithPath: f))
        }
        refuse(["--resume", flipped], "flipped/optimizer.safetensors: checksum")
        let missing = try damaged("missing") { try fm.removeItem(atPath: $0 + "/state.json") }
        refuse(["--resume", missing], "missing/state.json: missing from the checkpoint")

        // Other training data (a free key, but the content is hashed).
        let lines = try String(contentsOfFile: out + "/data/train.jsonl", encoding: .utf8).split(separator: "\n")
        try lines.dropLast(7).joined(separator: "\n").write(toFile: dir + "/other.jsonl", atomically: true, encoding: .utf8)
        refuse(["--resume", good, "--data", dir + "/other.jsonl", "--heldout", out + "/data/heldout.jsonl"],
               "step-000003: the training data differs from the checkpoint's")

        // The good checkpoint still resumes, and the run ends where the first one did.
        let ok = CLI.sftDist(args + ["--out", out, "--resume", good])
        XCTAssertEqual(ok.status, 0, ok.all)
        XCTAssertEqual(CLI.loggedSteps(out), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(CLI.losses(out), metrics.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["loss"] as? Double })
    }
}
