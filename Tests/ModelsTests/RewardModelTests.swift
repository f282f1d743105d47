import Foundation
import XCTest
@testable import Models
@testable import TensorCore

/// Reward models saved by transformers (`*ForSequenceClassification`, num_labels 1; Fixtures/hf/,
/// `scripts/make-hf-fixtures reward-models`) load and give transformers' rewards: the score at
/// each text's last token that is not config.json's pad_token_id — before GPT-2's eos (pad =
/// eos), at Llama's (pad ≠ eos). A causal LM loads as a reward model with a fresh head, and a
/// reward model is refused where a causal LM is needed.
final class RewardModelTests: XCTestCase {
    struct Expected: Decodable {
        struct Text: Decodable { var ids: [Int32]; var reward_position: Int; var reward_single: Float }
        var texts: [Text]; var rewards: [Float]; var pad_token_id: Int
    }

    func expected(_ name: String) throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: HFModelTests.root + "/expected/\(name).json")))
    }

    /// Within 1e-5 of transformers' float32 rewards (observed ≤ 5e-7), alone and in one padded batch.
    func testRewardsMatchTransformers() throws {
        for name in ["gpt2-reward", "llama-reward"] {
            let (model, _) = try ModelDirectory.load(HFModelTests.model(name), kind: .rewardModel)
            XCTAssertTrue(model.scoresSequences, name)
            let want = try expected(name)
            let pad = ModelDirectory.rewardPadId(model)
            XCTAssertEqual(pad, Int32(want.pad_token_id), name)
            for t in want.texts {
                XCTAssertEqual(SequenceScoreHead.rewardPosition(t.ids[...], pad: pad), t.reward_position, name)
                let scores = model.forward(Tape(recording: false), inputs: t.ids, batch: 1, seqLen: t.ids.count)
                XCTAssertEqual(scores.columns, 1)
                XCTAssertEqual(scores.data[t.reward_position], t.reward_single, accuracy: 1e-5, "\(name): \(t.ids.count) ids")
            }
            // Right-padded to the longest, as transformers' batch: the pads change no reward.
            let T = want.texts.map(\.ids.count).max()!
            let ids = want.texts.flatMap { $0.ids + [Int32](repeating: pad!, count: T - $0.ids.count) }
            let scores = model.forward(Tape(recording: false), inputs: ids, batch: want.texts.count, seqLen: T)
            for (b, t) in want.texts.enumerated() {
                let at = SequenceScoreHead.rewardPosition(ids[(b * T)..<(b * T + T)], pad: pad)
                XCTAssertEqual(scores.data[b * T + at], want.rewards[b], accuracy: 1e-5, "\(name): batched \(b)")
                XCTAssertEqual(at, t.reward_position)
            }
        }
    }

    /// A causal LM read as a reward model keeps its decoder, drops lm_head.weight and starts
    /// score.weight from N(0, 0.02); saved, it reloads as that reward model exactly.
    func testACausalLMBecomesARewardModel() throws {
        let lm = try ModelDirectory.load(HFModelTests.model("llama")).model
        let (rm, tokenizer) = try ModelDirectory.load(HFModelTests.model("llama"), kind: .rewardModel, seed: 5)
        XCTAssertNil(rm.parameters.entry("lm_head.weight"))
        let head = rm.parameters[SequenceScoreHead.weightName]
        XCTAssertEqual(head.shape, [1, 32])
        let std = (0..<head.count).map { Double(head.data[$0] * head.data[$0]) }.reduce(0, +) / Double(head.count)
        XCTAssertEqual(std.squareRoot(), 0.02, accuracy: 0.008)
        for e in lm.parameters.entries where e.name != "lm_head.weight" {
            XCTAssertEqual(Array(UnsafeBufferPointer(start: rm.parameters[e.name].data, count: e.count)),
                           Array(UnsafeBufferPointer(start: lm.parameters[e.name].data, count: e.count)), e.name)
        }
        let dir = NSTemporaryDirectory() + "reward-model-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ModelDirectory.save(rm, tokenizer: tokenizer, to: dir, format: .hf)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
        XCTAssertEqual(config["architectures"] as? [String], ["LlamaForSequenceClassification"])
        XCTAssertEqual((config["id2label"] as? [String: String])?.count, 1)
        XCTAssertEqual(config["pad_token_id"] as? Int, Int(tokenizer.padId))
        let back = try ModelDirectory.load(dir, kind: .rewardModel).model
        XCTAssertEqual(Array(UnsafeBufferPointer(start: back.parameters.values, count: back.parameters.count)),
                       Array(UnsafeBufferPointer(start: rm.parameters.values, count: rm.parameters.count)))
    }

    /// A reward model saved again (export, merge, a checkpoint) keeps its own pad_token_id, 621 in
    /// the Llama fixture, not its tokenizer's pad (its eos, 624): another id moves every reward.
    func testARewardModelKeepsItsPadId() throws {
        let (rm, tokenizer) = try ModelDirectory.load(HFModelTests.model("llama-reward"), kind: .rewardModel)
        XCTAssertNotEqual(tokenizer.padId, 621)
        let dir = NSTemporaryDirectory() + "reward-pad-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ModelDirectory.save(rm, tokenizer: tokenizer, to: dir, format: .hf)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
        XCTAssertEqual(config["pad_token_id"] as? Int, 621)
    }

    /// A copy of fixture `name` with config.json's pad_token_id set to `pad`.
    func copy(_ name: String, pad: Int) throws -> String {
        let dir = NSTemporaryDirectory() + "reward-copy-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: HFModelTests.model(name), toPath: dir)
        var json = try JSONObjectFile.read(dir + "/config.json")
        json["pad_token_id"] = pad
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: dir + "/config.json"))
        return dir
    }

    /// A causal LM's own pad_token_id is not the new reward model's: TRL's RewardTrainer sets it
    /// to the tokenizer's pad (here the eos), and so does the conversion (a LoRA reward model,
    /// whose base stays the causal LM, reads its rewards past it as in training). A reward model's pad_token_id past the vocabulary
    /// is none — no reward is read after a token that does not exist — and saved as the
    /// tokenizer's pad; a Llama reward model's pad is part of what ranks compare.
    func testPadIdsThatAreNotTheRewardModels() throws {
        let causal = try copy("llama", pad: 621)
        defer { try? FileManager.default.removeItem(atPath: causal) }
        let (rm, tokenizer) = try ModelDirectory.load(causal, kind: .rewardModel, seed: 1)
        XCTAssertEqual(ModelDirectory.rewardPadId(rm), tokenizer.padId)
        XCTAssertEqual(ModelDirectory.configJSON(rm, tokenizer: tokenizer)["pad_token_id"] as? Int, Int(tokenizer.padId))
        XCTAssertNotEqual(tokenizer.padId, 621)
        let far = try copy("gpt2-reward", pad: 99_999)
        defer { try? FileManager.default.removeItem(atPath: far) }
        let (odd, oddTokenizer) = try ModelDirectory.load(far, kind: .rewardModel)
        XCTAssertNil(ModelDirectory.rewardPadId(odd))
        XCTAssertEqual(ModelDirectory.configJSON(odd, tokenizer: oddTokenizer)["pad_token_id"] as? Int, Int(oddTokenizer.padId))
        let llama = try ModelDirectory.load(HFModelTests.model("llama-reward"), kind: .rewardModel).model
        XCTAssertEqual(llama.architectureJSON["pad_token_id"] as? Int, 621)
    }

    func testARewardModelIsRefusedAsACausalLM() {
        XCTAssertThrowsError(try ModelDirectory.load(HFModelTests.model("gpt2-reward"))) { error in
            XCTAssertTrue("\(error)".contains("is a reward model (GPT2ForSequenceClassification)"), "\(error)")
        }
        XCTAssertTrue(ModelDirectory.holdsRewardModel(HFModelTests.model("llama-reward")))
        XCTAssertFalse(ModelDirectory.holdsRewardModel(HFModelTests.model("llama")))
    }

    /// A classifier with several labels is not a reward model: refused, naming the field.
    func testSeveralLabelsAreRefused() throws {
        var json = try JSONObjectFile.read(HFModelTests.model("gpt2-reward") + "/config.json")
        json["id2label"] = ["0": "NEG", "1": "POS"]
        XCTAssertThrowsError(try ModelDirectory.architecture(json, path: "c.json")) { error in
            XCTAssertTrue("\(error)".contains("id2label") && "\(error)".contains("2 labels"), "\(error)")
        }
        json["id2label"] = nil
        XCTAssertThrowsError(try ModelDirectory.architecture(json, path: "c.json"), "no id2label: transformers' default, two labels")
    }
}
