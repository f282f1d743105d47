import Foundation
import XCTest

/// Absurd counts and hostile recipes, as an adversarial user would try them: every one is a
/// single line naming the flag or the recipe's file, line and key with the limit, exit code 1,
/// and nothing written — never a trap, a heap corruption, a stall or an allocation failure.
/// Each run is under a timeout and a 2 GiB address-space limit.
final class SettingLimitTests: XCTestCase {
    let tiny = ["--model", "tiny", "--steps", "2", "--batch-size", "2", "--micro-batch-size", "2",
                "--eval-examples", "1", "--max-new-tokens", "1", "--quiet"]

    @discardableResult
    func assertRefused(_ args: [String], _ message: String, out: String? = nil,
                       file: StaticString = #filePath, line: UInt = #line) -> CLI.Result {
        let r = CLI.run(["/usr/bin/prlimit", "--as=\(2 << 30)", CLI.binary] + args, seconds: 30)
        XCTAssertEqual(r.status, 1, "\(args.prefix(6)): \(r.all.prefix(500))", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("sft-dist: error: "), String(r.stderr.prefix(500)), file: file, line: line)
        XCTAssertEqual(CLI.occurrences(of: message, in: r.stderr), 1, "expected \"\(message)\" in:\n\(r.all.prefix(500))", file: file, line: line)
        XCTAssertEqual(r.stderr.filter { $0 == "\n" }.count, 1, "one line:\n\(r.stderr.prefix(500))", file: file, line: line)
        XCTAssertLessThan(r.stderr.count, 300, file: file, line: line)
        if let out {
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/metrics.jsonl"), "metrics written", file: file, line: line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model"), "model written", file: file, line: line)
        }
        return r
    }

    func testAbsurdTrainFlagsNameTheFlagAndTheLimit() {
        let out = CLI.tempDir("absurd-train")
        let cases: [([String], String)] = [
            (["--batch-size", "9223372036854775807"], "--batch-size must be an integer in 1…1048576 (got 9223372036854775807)"),
            (["--batch-size", "1099511627776"], "--batch-size must be an integer in 1…1048576"),
            (["--steps", "-1"], "--steps must be an integer in 1…100000000 (got -1)"),
            (["--micro-batch-size=-3"], "--micro-batch-size must be an integer in 1…65536 (got -3)"),
            (["--max-length", "4294967296"], "--max-length must be an integer in 2…1048576"),
            (["--threads", "10000"], "--threads must be an integer in 1…1024 (got 10000)"),
            (["--threads=-1"], "--threads must be an integer in 1…1024 (got -1)"),
            (["--objective", "otr", "--objective-arg", "k=1000000000"], "objective otr: k must be an integer in 1…4096 (got 1000000000)"),
            (["--lr", "nan"], "--lr must be a finite number > 0 (got nan)"),
            (["--schedule", "cosine2"], "--schedule must be one of cosine, linear, constant (got cosine2)"),
            (["--steps", "many"], "--steps must be an integer in 1…100000000 (got many)"),
            (["--eval-examples", "99999999999"], "--eval-examples must be an integer in 0…10000000"),
            (["--no-such-flag"], "Unknown option '--no-such-flag'"),
        ]
        for (args, message) in cases {
            assertRefused(["train"] + tiny + args + ["--out", out], message, out: out)
        }
    }

    /// The same limits in every subcommand that takes the setting (one declaration).
    func testOtherSubcommandsShareTheLimits() {
        let eval = ["eval", "--model", "tiny", "--data", "/nonexistent.jsonl"]
        assertRefused(eval + ["--samples", "1000000000"], "--samples must be an integer in 0…4096 (got 1000000000)")
        assertRefused(eval + ["--examples=-1"], "--examples must be an integer in 0…10000000 (got -1)")
        assertRefused(eval + ["--micro-batch-size", "0"], "--micro-batch-size must be an integer in 1…65536 (got 0)")
        assertRefused(eval + ["--micro-batch-size=-3"], "--micro-batch-size must be an integer in 1…65536 (got -3)")
        assertRefused(eval + ["--top-p", "2"], "--top-p must be a number in (0, 1] (got 2.0)")
        assertRefused(eval + ["--temperature", "nan"], "--temperature must be a number in [0, 1000] (got nan)")
        assertRefused(eval + ["--samples", "4", "--pass-k", "1,x"], "--pass-k values must be integers between 1 and --samples (4)")
        let generate = ["generate", "--model", "tiny", "--prompt", "hi"]
        assertRefused(generate + ["--temperature", "nan"], "--temperature must be a number in [0, 1000] (got nan)")
        assertRefused(generate + ["--top-p", "2"], "--top-p must be a number in (0, 1] (got 2.0)")
        assertRefused(generate + ["--max-new-tokens", "1000000000"], "--max-new-tokens must be an integer in 1…65536")
        assertRefused(generate + ["--threads", "0"], "--threads must be an integer in 1…1024 (got 0)")
        assertRefused(["score", "--model", "tiny", "--data", "x.jsonl", "--max-length", "1"], "--max-length must be an integer in 2…1048576 (got 1)")
        assertRefused(["bench", "--steps", "0"], "--steps must be an integer in 1…100000000 (got 0)")
        assertRefused(["bench", "--warmup=-1"], "--warmup must be an integer in 0…100000000 (got -1)")
        assertRefused(["make-data", "--out", "/dev/null", "--count", "100000000000"], "--count must be an integer in 1…10000000")
        // Text that is no integer of the flag's type says the limits too, as train's flags do
        // (it was "The value '-1' is invalid for '--seed <seed>'").
        assertRefused(["make-data", "--out", "/dev/null", "--seed", "-1"], "--seed must be an integer in 0…18446744073709551615 (got -1)")
        assertRefused(["make-data", "--out", "/dev/null", "--count", "abc"], "--count must be an integer in 1…10000000 (got abc)")
        assertRefused(generate + ["--max-new-tokens", "x"], "--max-new-tokens must be an integer in 1…65536 (got x)")
        assertRefused(eval + ["--samples", "1.5"], "--samples must be an integer in 0…4096 (got 1.5)")
        assertRefused(generate + ["--seed", "-1"], "--seed must be an integer in 0…18446744073709551615 (got -1)")
        assertRefused(["make-data", "--out", "/dev/null", "--count", ""], "--count must be an integer in 1…10000000 (got an empty value)")
        assertRefused(["train", "--steps", "", "--dry-run"], "--steps must be an integer in 1…100000000 (got an empty value)")
        // Hexadecimal numbers, which Swift's Float/Double read (`--temperature 0x1` sampled at 1),
        // are refused as train's keys refuse them.
        for (args, flag) in [(eval + ["--temperature", "0x1"], "--temperature"), (generate + ["--top-p", "0x0.8"], "--top-p"),
                             (eval + ["--watchdog", "0x10"], "--watchdog"), (eval + ["--scorer-timeout", "0x1p3"], "--scorer-timeout"),
                             (["make-data", "--out", "/dev/null", "--noise", "0x0.1"], "--noise"),
                             (["select", "--method", "loss", "--keep", "0x0.8", "--data", "x.jsonl", "--out", "/dev/null"], "--keep")] {
            assertRefused(args, "invalid for '\(flag) <")
            XCTAssertTrue(CLI.run([CLI.binary] + args, seconds: 30).stderr.hasSuffix(": not a decimal number\n"), "\(args)")
        }
        // `help NAME` for a subcommand that does not exist printed the overview with exit 0.
        assertRefused(["help", "bogus"], "no subcommand 'bogus': sft-dist help lists them")
        assertRefused(["help", "train", "bogus"], "no subcommand 'bogus': sft-dist help lists them")
        XCTAssertEqual(CLI.sftDist(["help", "train"]).status, 0)
    }

    func testHostileRecipeFilesAreOneLine() throws {
        let dir = CLI.tempDir("hostile-recipe")
        func recipe(_ name: String, _ text: String) throws -> String {
            let path = dir + "/" + name
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        var bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
        for i in 1..<9 { bomb += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ", ") + "]\n" }
        let cases: [(String, String, String)] = [
            ("deep.yaml", "x: " + String(repeating: "{a: ", count: 3000) + "1" + String(repeating: "}", count: 3000) + "\n",
             "deep.yaml: nested too deeply for a recipe"),
            ("complex.yaml", "? [a, b]\n: 1\n", "complex.yaml:1: a mapping key must be a plain name, not a sequence"),
            ("bomb.yaml", bomb, "bomb.yaml: more than 10000 values once aliases are expanded"),
            ("dup.yaml", "model: tiny\nsteps: 5\nsteps: 6\n", "dup.yaml:3: duplicate key \"steps\""),
            ("empty.yaml", "", "empty.yaml: the recipe is empty"),
            ("huge.yaml", "schedule: " + String(repeating: "z", count: 900_000) + "\n",
             "huge.yaml:1: schedule must be one of cosine, linear, constant (got zzzz"),
            ("range.yaml", "model: tiny\nbatch_size: 9223372036854775807\n", "range.yaml:2: batch_size must be an integer in 1…1048576"),
        ]
        for (name, text, message) in cases {
            let out = dir + "/out-" + name
            assertRefused(["train", "--config", try recipe(name, text), "--out", out], message, out: out)
        }
        assertRefused(["train", "--config", "/dev/zero"], "/dev/zero: not a regular file")
    }
}
