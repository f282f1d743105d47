import Foundation
import XCTest

/// `--reward` flags over a recipe file's `rewards`: a flag naming one of its functions replaces
/// that entry (its weight), another is added; a name that two flags give is refused. All flags
/// were added, so `--reward task=2` over a recipe listing `task` said "given twice".
final class RewardFlagsCLITests: XCTestCase {
    func testRewardFlagsReweightTheRecipesFunctionsByName() throws {
        let dir = CLI.tempDir("reward-flags")
        let recipe = dir + "/r.yaml"
        try """
            model: tiny
            objective: grpo
            rewards:
              - task
              - format=0.1
            rollouts: 2
            batch_size: 4
            steps: 1
            max_completion_length: 4
            eval_every: 0
            eval_examples: 0

            """.write(toFile: recipe, atomically: true, encoding: .utf8)
        func run(_ flags: [String], _ name: String) -> CLI.Result {
            CLI.sftDist(["train", "--config", recipe, "--out", dir + "/" + name, "--quiet"] + flags)
        }
        func rewards(_ name: String) throws -> [String] {
            let yaml = try String(contentsOfFile: dir + "/\(name)/recipe.yaml", encoding: .utf8)
            let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let start = try XCTUnwrap(lines.firstIndex(of: "rewards:"), yaml)
            return lines[(start + 1)...].prefix { $0.hasPrefix("- ") || $0.hasPrefix("  - ") }
                .map { $0.trimmingCharacters(in: .whitespaces).dropFirst(2).trimmingCharacters(in: CharacterSet(charactersIn: "'\"")) }
        }
        let plain = run([], "plain")
        XCTAssertEqual(plain.status, 0, plain.all)
        XCTAssertEqual(try rewards("plain"), ["task", "format=0.1"])
        let reweighted = run(["--reward", "format=0", "--reward", "exact", "--reward", "task=2"], "reweighted")
        XCTAssertEqual(reweighted.status, 0, reweighted.all)
        XCTAssertEqual(try rewards("reweighted"), ["task=2", "format=0", "exact"])
        let row = try XCTUnwrap(CLI.trainingRows(dir + "/reweighted").first)
        XCTAssertNotNil(row["rewards/exact/mean"], "\(row)")
        let twice = run(["--reward", "task=2", "--reward", "task=3"], "twice")
        XCTAssertEqual(twice.status, 1, twice.all)
        XCTAssertTrue(twice.stderr.contains("--reward task is given twice"), twice.all)
    }
}
