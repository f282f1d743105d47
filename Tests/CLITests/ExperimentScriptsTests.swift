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
        refused("launch", ["-n"], "-n takes a rank count ≥ 1 (got nothing)")
        refused("launch", ["-n", "0", "train"], "-n takes a rank count ≥ 1 (got 0)")
        refused("lab", ["--reverdict", dir + "/nope"], "nope/lab.json does not exist")

        // forgetting-experiment reuses runs by name, so OUT must hold runs of the same settings:
        // `--kind add` over a `--kind mul` OUT reused the mul runs and labelled them add.
        let forgetting = dir + "/forgetting"
        try FileManager.default.createDirectory(atPath: forgetting, withIntermediateDirectories: true)
        try #"{"base_steps": 800, "ema": "0.99", "eval_count": 100, "ft_batch": 32, "ft_steps": 150, "kind": "mul", "l2_init": "1.0", "lora_args": "--lora-rank 4 --lora-alpha 8", "lr_high": "3e-3", "lr_low": "3e-4", "model": "default"}"#
            .write(toFile: forgetting + "/settings.json", atomically: true, encoding: .utf8)
        refused("forgetting-experiment", ["--out", forgetting, "--kind", "add"], "holds runs made with --kind 'mul', not 'add'")
        try "x\n".write(toFile: dir + "/stranger", atomically: true, encoding: .utf8)
        refused("forgetting-experiment", ["--out", dir], "is not empty and has no settings.json")
    }
}
