import Foundation
import XCTest

/// The experiment scripts' own arguments (a hostile review's finds): `--help` was taken as the
/// output directory (`mkdir -p --help`), missing or unknown arguments ended in a Python
/// traceback or "unbound variable", a mistyped run name ran nothing with exit 0, and a run that
/// failed was a missing table row with exit 0. These cases start no training.
final class ExperimentScriptsTests: XCTestCase, LabRunning {
    func script(_ name: String, _ args: [String], cwd: String? = nil, env: [String] = []) -> CLI.Result {
        CLI.run(["env", "SFT_DIST_BIN=\(CLI.binary)", "OPENBLAS_NUM_THREADS=1"] + env + [Self.repo + "/scripts/" + name] + args,
                seconds: 120, cwd: cwd)
    }

    func refused(_ name: String, _ args: [String], _ message: String, env: [String] = [], line: UInt = #line) {
        let r = script(name, args, env: env)
        XCTAssertEqual(r.status, 1, r.all, line: line)
        XCTAssertTrue(r.stderr.contains(message), "expected \(message) in:\n\(r.all)", line: line)
        XCTAssertFalse(r.all.contains("Traceback") || r.all.contains("unbound variable"), r.all, line: line)
    }

    func testArgumentsAreCheckedBeforeAnythingRuns() throws {
        let dir = CLI.tempDir("experiment-scripts")
        for name in ["rl-experiment", "selection-experiment", "self-train-experiment"] {
            let help = script(name, ["--help"], cwd: dir)
            XCTAssertEqual(help.status, 0, "\(name): \(help.all)")
            XCTAssertTrue(help.stdout.lowercased().contains("experiment"), "\(name): \(help.stdout)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/--help"), "\(name) made a directory named --help")
            refused(name, ["--bogus"], "unknown option --bogus")
        }
        refused("rl-experiment", ["--table"], "--table takes one OUT")
        refused("rl-experiment", ["--table", dir + "/nope"], "not an rl-experiment directory")
        refused("rl-experiment", [dir + "/rl", "grpo-lr3e-5-typo"], "no run named grpo-lr3e-5-typo")
        refused("rl-experiment", [dir + "/rl"], "STEPS must be a positive integer (got abc)", env: ["STEPS=abc"])
        refused("selection-experiment", ["--table"], "--table takes one DIR")
        refused("selection-experiment", ["--table", dir + "/nope"], "not a selection-experiment directory")
        refused("selection-experiment", [dir + "/sel", "x"], "STEPS must be a positive integer (got x)")
        refused("self-train-experiment", [dir + "/st"], "WARM must be a positive integer (got 0)", env: ["WARM=0"])
        let distillHelp = script("distill-experiment", ["--help"], cwd: dir)
        XCTAssertEqual(distillHelp.status, 0, distillHelp.all)
        XCTAssertTrue(distillHelp.stdout.contains("distillation experiment"), distillHelp.stdout)
        refused("distill-experiment", ["--out", dir + "/d", "--only", "nll,gkd-typo"], "unknown arm 'gkd-typo' in --only; known: nll, gkd-data, gkd")
        refused("distill-experiment", ["--out", dir + "/d", "--steps", "0"], "--steps must be at least 1 (got 0)")
        refused("distill-experiment", ["--out", dir + "/d", "--student-noise", "1"], "--student-noise in [0, 1)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/d"), "distill-experiment wrote before its arguments were checked")
        refused("launch", ["-n"], "-n takes a rank count from 1 to 999999 (got nothing)")
        refused("launch", ["-n", "0", "train"], "-n takes a rank count from 1 to 999999 (got 0)")
        let padded = script("launch", ["-n", "02", "make-data", "--out", dir + "/launch.jsonl", "--count", "3"])   // was refused
        XCTAssertEqual(padded.status, 0, padded.all)
        refused("lab", ["--reverdict", dir + "/nope"], "nope/lab.json does not exist")
        // lab --only "" (an unset shell variable) named nothing and ran every claim.
        refused("lab", ["--only", "", "--list"], "lab: --only: no claim ''")

        // scripts/bench and bench-peer (a hostile review): --help ran `sft-dist bench --help`
        // per run and ended in a traceback; --threads was run but the table still said
        // "1 rank x 2 threads"; bench-peer's flag without a value was "unbound variable", and
        // its counts were checked only after installing torch. Exit 2: a usage error.
        let benchHelp = script("bench", ["--help"])
        XCTAssertEqual(benchHelp.status, 0, benchHelp.all)
        XCTAssertTrue(benchHelp.stdout.hasPrefix("usage: scripts/bench"), benchHelp.all)
        for (name, args, message) in [("bench", ["--threads", "1"], "bench: --threads is not taken here"),
                                      ("bench", ["--rollouts"], "bench: --rollouts is not taken here"),
                                      ("bench-peer", ["--runs"], "bench-peer: --runs needs a value"),
                                      ("bench-peer", ["--threads", "1 x"], "bench-peer: --threads must be a whole number of at least 1 (got 'x')"),
                                      ("bench-peer", ["--lora-rank", "0"], "bench-peer: --lora-rank must be a whole number of at least 1 (got '0')")] {
            let r = script(name, args)
            XCTAssertEqual(r.status, 2, "\(name) \(args): \(r.all)")
            XCTAssertTrue(r.stderr.contains(message), "\(name) \(args): \(r.all)")
            XCTAssertFalse(r.all.contains("unbound variable") || r.all.contains("Traceback"), r.all)
        }
        // A relative SFT_DIST_BIN is the caller's (it was looked up inside the repository).
        let caller = dir + "/caller"
        try FileManager.default.createDirectory(atPath: caller + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: caller + "/bin/sft-dist", withDestinationPath: CLI.binary)
        let relative = script("bench", ["--runs", "1", "--steps", "1", "--warmup", "0", "--generate-tokens", "0", "--batch-size", "2",
                                        "--seq-len", "16"], cwd: caller, env: ["SFT_DIST_BIN=bin/sft-dist"])
        XCTAssertEqual(relative.status, 0, relative.all)
        XCTAssertTrue(relative.stdout.contains("2 ranks x 1 thread / 1 rank x 2 threads"), relative.all)

        // forgetting-experiment reuses runs by name, so OUT must hold runs of the same settings:
        // `--kind add` over a `--kind mul` OUT reused the mul runs and labelled them add.
        let forgetting = dir + "/forgetting"
        try FileManager.default.createDirectory(atPath: forgetting, withIntermediateDirectories: true)
        try #"{"base_steps": 800, "ema": "0.99", "eval_count": 100, "ft_batch": 32, "ft_steps": 150, "kind": "mul", "l2_init": "1.0", "lora_args": "--lora-rank 4 --lora-alpha 8", "lr_high": "3e-3", "lr_low": "3e-4", "model": "default"}"#
            .write(toFile: forgetting + "/settings.json", atomically: true, encoding: .utf8)
        refused("forgetting-experiment", ["--out", forgetting, "--kind", "add"], "holds runs made with --kind 'mul', not 'add'")
        try "x\n".write(toFile: dir + "/stranger", atomically: true, encoding: .utf8)
        refused("forgetting-experiment", ["--out", dir], "is not empty and has no settings.json")

        // objective-experiment: the same rules, and --only names objectives it knows.
        let help = script("objective-experiment", ["--help"], cwd: dir)
        XCTAssertEqual(help.status, 0, help.all)
        XCTAssertTrue(help.stdout.contains("--only"), help.stdout)
        let only = script("objective-experiment", ["--out", dir + "/objectives", "--only", "nll,grpo"])
        XCTAssertEqual(only.status, 2, only.all)
        XCTAssertTrue(only.stderr.contains("--only: grpo: choose from nll, dft"), only.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/objectives"), "a refused --only made its OUT")
        let objectives = dir + "/objectives-out"
        try FileManager.default.createDirectory(atPath: objectives, withIntermediateDirectories: true)
        try #"{"base_steps": 800, "eval_count": 200, "ft_batch": 32, "ft_steps": 150, "kind": "mul", "lr": "1e-3"}"#
            .write(toFile: objectives + "/settings.json", atomically: true, encoding: .utf8)
        refused("objective-experiment", ["--out", objectives, "--lr", "3e-3"], "holds runs made with --lr '1e-3', not '3e-3'")
        refused("objective-experiment", ["--out", dir], "is not empty and has no settings.json")
    }
}
