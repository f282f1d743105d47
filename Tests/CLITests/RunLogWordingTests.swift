import Foundation
import XCTest

/// The run log as a person reads it: counts agree with their nouns, and sample answers are
/// quoted as they were typed (debugDescription showed "don't" as "don\'t").
final class RunLogWordingTests: XCTestCase {
    func testOneStepOfOneExampleAndApostrophesAsTyped() throws {
        let dir = CLI.tempDir("log-wording")
        let rows = (0..<20).map { #"{"prompt": "say don't \#($0) =", "completion": " it's"}"# }
        try rows.joined(separator: "\n").write(toFile: dir + "/d.jsonl", atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["train", "--model", "tiny", "--data", dir + "/d.jsonl", "--steps", "1", "--batch-size", "1",
                             "--eval-examples", "2", "--out", dir + "/out"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("objective: nll, 1 step of 1 example\n"), r.stdout)
        let samples = r.stdout.split(separator: "\n").filter { $0.contains("(expected ") }
        XCTAssertFalse(samples.isEmpty, r.stdout)
        for line in samples {
            XCTAssertTrue(line.hasPrefix("  \"say don't "), String(line))
            XCTAssertTrue(line.hasSuffix("(expected \" it's\")"), String(line))
        }
    }
    /// Each method at work is named at start-up with every argument it reads, defaults
    /// included (recipe.yaml lists only those given, and the log named none of them).
    func testTheMethodsLineNamesEveryArgumentWithItsDefault() {
        let dir = CLI.tempDir("log-methods")
        let base = ["train", "--model", "tiny", "--steps", "1", "--eval-examples", "0"]
        let uds = CLI.sftDist(base + ["--selection", "uds", "--selection-pool", "4", "--selection-arg", "alpha=0.01", "--out", dir + "/a"])
        XCTAssertEqual(uds.status, 0, uds.all)
        XCTAssertTrue(uds.stdout.contains("\nmethods: selection uds, pool 4 (alpha=0.01, budget=0.25, queue=1024, sketch_time=8, sketch_vocab=128)\n"), uds.stdout)
        let grpo = CLI.sftDist(base + ["--objective", "grpo", "--reward", "task", "--out", dir + "/b"])
        XCTAssertTrue(grpo.stdout.contains("\nmethods: objective grpo (beta=0, epsilon=0.2, epsilon_high=0.2, importance_sampling_level=token, loss_type=dapo, top_entropy_quantile=1, use_bias_correction_kl=true); rewards task=1\n"), grpo.stdout)
        let weighted = CLI.sftDist(base + ["--objective", "grpo", "--reward", "exact=0.5", "--reward", "format", "--reward-arg", "exact.ignore_case=yes", "--out", dir + "/e"])
        XCTAssertTrue(weighted.stdout.contains("\nmethods: objective grpo (beta=0, epsilon=0.2, epsilon_high=0.2, importance_sampling_level=token, loss_type=dapo, top_entropy_quantile=1, use_bias_correction_kl=true); rewards exact=0.5, format=1 (exact.ignore_case=true, format.pattern=[^\\n]*\\S[^\\n]*)\n"), weighted.stdout)
        let rft = CLI.sftDist(base + ["--self-train", "rft", "--self-train-scorer", "task", "--self-train-arg", "prompts=4", "--out", dir + "/c"])
        XCTAssertTrue(rft.stdout.contains("\nmethods: self-training rft every 100 steps (k=4, max_new_tokens=12, prompts=4, ratio=0.5, temperature=1, top_p=1)\n"), rft.stdout)
        let plain = CLI.sftDist(base + ["--out", dir + "/d"])
        XCTAssertFalse(plain.stdout.contains("methods:"), plain.stdout)
        XCTAssertFalse(plain.stdout.contains("save_every"), plain.stdout)
        // An interval past the last step acts never: said (a --save-every 5 run of 2 steps wrote no checkpoint, without a word).
        let never = CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--eval-examples", "0", "--save-every", "5", "--eval-every", "10", "--out", dir + "/f"])
        XCTAssertEqual(never.status, 0, never.all)
        XCTAssertTrue(never.stdout.contains("\nnote: save_every 5 > steps 2: no checkpoint falls due in this run (SIGUSR1 still writes one; the final model is saved at its end); lower --save-every to checkpoint it\n"), never.stdout)
        XCTAssertTrue(never.stdout.contains("\nnote: eval_every 10 > steps 2: no evaluation falls due during this run (only those --eval-every 0 makes, at its start and end)\n"), never.stdout)
    }
}
