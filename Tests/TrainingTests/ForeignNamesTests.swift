import XCTest
@testable import Training

/// transformers', TRL's and peft's names for settings `train` names otherwise: each hint
/// must name a setting that exists, and a name of ours must never be taken for theirs.
final class ForeignNamesTests: XCTestCase {
    func testEveryHintNamesOneOfOurSettings() {
        for e in ForeignNames.entries {
            XCTAssertNil(Recipe.key(named: e.theirs), "\(e.theirs) is one of our keys: its hint would never be reached")
            if let ours = e.ours {
                XCTAssertNotNil(Recipe.key(named: ours), "\(e.theirs) → \(ours): no such recipe key")
            } else {
                XCTAssertNotNil(e.note, "\(e.theirs) has no counterpart and no note saying why")
            }
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
        XCTAssertEqual(refusal("reward_weights: [1, 0.5]\n"),
                       #"r.yaml:1: unknown key "reward_weights" (TRL: reward_weights is "rewards" here: a weight per function, given with it: --reward NAME=WEIGHT (rewards: [NAME=WEIGHT, …]))"#)
        XCTAssertEqual(refusal("resume_from_checkpoint: latest\n"),
                       #"r.yaml:1: unknown key "resume_from_checkpoint" (transformers: resume_from_checkpoint is "resume" here)"#)
        // The edit-distance hint sent DPO's beta to AdamW's beta1, bf16 to lr, loss_type to lora_rank.
        XCTAssertEqual(refusal("objective: dpo\nbeta: 0.1\n"),
                       #"r.yaml:2: unknown key "beta" (TRL: beta is "objective_args" here: --objective-arg beta=β: dpo's, kto's and spin's β (default 0.1), grpo's, gmpo's and rloo's KL coefficient (default 0, 0 and 0.05, as TRL's), gkd's divergence mix (default 0.5); uft's and otr's are their own (README))"#)
        XCTAssertEqual(refusal("bf16: true\n"), #"r.yaml:1: unknown key "bf16" (transformers: bf16 has no counterpart here: sft-dist computes in float32)"#)
        XCTAssertTrue(refusal("loss_type: dr_grpo\n").contains(#"(TRL: loss_type is "objective_args" here: --objective-arg loss_type="#))
        // TRL's GRPOConfig: the edit-distance hint offered seed for use_vllm, rollout_top_k for entropy_coef_min.
        XCTAssertEqual(refusal("use_vllm: true\n"),
                       #"r.yaml:1: unknown key "use_vllm" (TRL: use_vllm has no counterpart here: no vLLM: rollouts are sampled by sft-dist's own KV-cache generation, sharded over the ranks, with the trained weights)"#)
        XCTAssertEqual(refusal("entropy_coef_min: 0.01\n"),
                       #"r.yaml:1: unknown key "entropy_coef_min" (TRL: entropy_coef_min is "objective_args" here: --objective-arg entropy_coef_min=… with grpo and use_adaptive_entropy=true)"#)
        // TRL's CPOConfig, OnlineDPOConfig and GKDConfig settings that are objective arguments here,
        // and GKD's teacher, which is --ref-model.
        for (key, note) in [("cpo_alpha", "--objective-arg cpo_alpha=… with --objective cpo"),
                            ("desirable_weight", "--objective-arg desirable_weight=λ_D with --objective kto"),
                            ("undesirable_weight", "--objective-arg undesirable_weight=λ_U with --objective kto"),
                            ("simpo_gamma", "--objective-arg simpo_gamma=γ with --objective cpo and loss_type simpo"),
                            ("tpo_alpha", "--objective-arg tpo_alpha=… with --objective tpo"),
                            ("tpo_l_gamma", "--objective-arg tpo_l_gamma=γ with --objective tpo and loss_type tpo-l"),
                            ("missing_eos_penalty", "--objective-arg missing_eos_penalty=… with --objective online-dpo"),
                            ("normalize_advantages", "--objective-arg normalize_advantages=true with --objective rloo"),
                            ("center_rewards_coefficient", "--objective-arg center_rewards_coefficient=λ with --objective reward"),
                            ("lmbda", "--objective-arg lmbda=λ with gkd (default 0.5: the share of steps on the student's own answers)"),
                            ("seq_kd", "--objective-arg seq_kd=true with gkd (the teacher's answers on the other steps)")] {
            XCTAssertTrue(refusal("\(key): 1\n").hasSuffix(#"is "objective_args" here: \#(note))"#), "\(key): \(refusal("\(key): 1\n"))")
        }
        XCTAssertEqual(refusal("train_sampling_strategy: sequential\n"),
                       #"r.yaml:1: unknown key "train_sampling_strategy" (TRL's KTOConfig: train_sampling_strategy has no counterpart here: rows are drawn by the seeded uniform sampler under every objective (TRL's KTOTrainer reads them in file order))"#)
        XCTAssertEqual(refusal("teacher_model_name_or_path: t\n"),
                       #"r.yaml:1: unknown key "teacher_model_name_or_path" (TRL's GKDConfig: teacher_model_name_or_path is "ref_model" here: gkd's teacher is --ref-model DIR)"#)
        // A misspelling of ours still gets the nearest of ours.
        XCTAssertEqual(refusal("grad_clp: 1\n"), #"r.yaml:1: unknown key "grad_clp" (did you mean "grad_clip"?)"#)
    }
}
