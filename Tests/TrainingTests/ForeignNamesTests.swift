import XCTest
@testable import Training

/// transformers', TRL's and peft's names for settings `train` names otherwise: each hint
/// must name a setting that exists, and a name of ours must never be taken for theirs.
final class ForeignNamesTests: XCTestCase {
    func testEveryHintNamesOneOfOurSettings() {
        for e in ForeignNames.entries {
            XCTAssertNil(Recipe.key(named: e.theirs), "\(e.theirs) is one of our keys: its hint would never be reached")
            XCTAssertNotNil(Recipe.key(named: e.ours), "\(e.theirs) → \(e.ours): no such recipe key")
        }
        XCTAssertEqual(Set(ForeignNames.entries.map(\.theirs)).count, ForeignNames.entries.count, "a name listed twice")
    }

    /// The edit-distance hint offered "lora_rank" for transformers' "learning_rate".
    func testAnotherLibrarysKeyIsAnsweredWithOurs() {
        func refusal(_ yaml: String) -> String {
            do { _ = try Recipe.parse(yaml: yaml, source: "r.yaml"); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertEqual(refusal("learning_rate: 0.001\n"), #"r.yaml:1: unknown key "learning_rate" (transformers: learning_rate is "lr" here)"#)
        XCTAssertEqual(refusal("steps: 3\nnum_generations: 4\n"), #"r.yaml:2: unknown key "num_generations" (TRL: num_generations is "rollouts" here)"#)
        XCTAssertEqual(refusal("reward_funcs: [task]\n"), #"r.yaml:1: unknown key "reward_funcs" (TRL: reward_funcs is "rewards" here)"#)
        XCTAssertEqual(refusal("resume_from_checkpoint: latest\n"),
                       #"r.yaml:1: unknown key "resume_from_checkpoint" (transformers: resume_from_checkpoint is "resume" here)"#)
        // A misspelling of ours still gets the nearest of ours.
        XCTAssertEqual(refusal("grad_clp: 1\n"), #"r.yaml:1: unknown key "grad_clp" (did you mean "grad_clip"?)"#)
    }
}
