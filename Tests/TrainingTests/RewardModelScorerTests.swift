import Distributed
import Foundation
import XCTest
import Models
import TestSupport
@testable import Training

/// A reward model as a reward function (`--reward DIR`, TRL's `reward_funcs` with a model id):
/// prompt + completion tokenised by the reward model's tokenizer without special tokens added,
/// the score at the last token that is not pad_token_id — transformers' rewards on the fixtures'
/// texts — and the same bits scored by one rank or dealt over two and three.
final class RewardModelScorerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../ModelsTests/Fixtures/hf").standardized.path

    struct Expected: Decodable {
        struct Text: Decodable { var prompt: String; var completion: String; var text: String; var ids: [Int32]; var reward_single: Float }
        var texts: [Text]; var eos_token_id: Int32
    }

    func testRewardsAreTransformersAtAnyRankCount() throws {
        for name in ["gpt2-reward", "llama-reward"] {
            let dir = Self.fixtures + "/models/" + name
            let want = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/expected/\(name).json")))
            let scorer = try RewardModelScorer(path: dir)
            XCTAssertEqual(scorer.name, name)
            let tokenizer = try scorer.load().tokenizer
            // The fixture's text is prompt + completion + eos as TRL's RewardTrainer feeds it, and a
            // rollout that stopped is scored with its stop token's text after the completion.
            // Llama-3's tokenizer put its BOS first (the fixture tokenised with special tokens):
            // given as text, it is that token.
            let bos = name == "llama-reward" ? "<|begin_of_text|>" : ""
            // The completion, then the text of the token that ended it (the eos), as a rollout's.
            let eos = tokenizer.decode([want.eos_token_id])
            let exact = want.texts.map { t in
                ScoringItem(prompt: bos + t.prompt, completion: t.completion, reference: nil, source: "fixture", stop: eos)
            }
            for (item, t) in zip(exact, want.texts) { XCTAssertEqual(item.prompt + item.completion + eos, bos + t.text, name) }
            for (item, t) in zip(exact, want.texts) { XCTAssertEqual(tokenizer.encode(item.prompt + item.completion + eos), t.ids, name) }
            // 30 more distinct texts (1 to 6 spaces more on the prompt): 35 distinct texts, three
            // chunks (`RewardModelScorer.chunk`) dealt over the ranks — at 2 ranks, chunks 0 and 2 on
            // rank 0 — then the first five again, which get the same rewards to the bit.
            let variants = (1...6).flatMap { k in exact.map {
                ScoringItem(prompt: $0.prompt + String(repeating: " ", count: k), completion: $0.completion, reference: nil, source: "fixture", stop: eos) } }
            let items = exact + variants + exact
            XCTAssertGreaterThan(exact.count + variants.count, 2 * RewardModelScorer.chunk)
            let alone = try scorer.score(items)
            for (r, t) in zip(alone, want.texts) { XCTAssertEqual(r, t.reward_single, accuracy: 1e-5, name) }
            XCTAssertEqual(alone.suffix(5).map(\.bitPattern), alone.prefix(5).map(\.bitPattern), "\(name): an identical text, the same reward")
            XCTAssertEqual(Set(alone[5..<35]).count, 30, "\(name): the variants are other texts")
            for ranks in [1, 2, 3] {
                let byRank = InProcessGroup.run(size: ranks) { comm in try! scorer.score(items, comm: comm).get() }
                for got in byRank { XCTAssertEqual(got.map(\.bitPattern), alone.map(\.bitPattern), "\(name) at \(ranks) ranks") }
            }
        }
    }

    /// Not a reward model, a text past the model's context, arguments: one line each.
    func testProblemsAreNamed() throws {
        XCTAssertThrowsError(try RewardModelScorer(path: Self.fixtures + "/models/gpt2")) {
            XCTAssertTrue("\($0)".contains("not a reward model directory"), "\($0)")
        }
        let scorer = try RewardModelScorer(path: Self.fixtures + "/models/gpt2-reward")
        let context = try scorer.load().model.maxSequenceLength
        let long = ScoringItem(prompt: String(repeating: "what is 12 + 30? ", count: context), completion: " 42", reference: nil, source: "p.jsonl:3")
        switch InProcessGroup.run(size: 2, { scorer.score([long], comm: $0) })[1] {
        case .success: XCTFail("a text past the context scored")
        case .failure(let e): XCTAssertTrue("\(e)".hasPrefix("p.jsonl:3: a rollout of this prompt is") && "\(e)".contains("beyond its context of \(context)"), "\(e)")
        }
        XCTAssertThrowsError(try RewardFunction.make(specs: [Self.fixtures + "/models/gpt2-reward=0.5"],
                                                     args: [Self.fixtures + "/models/gpt2-reward.scale": "2"])) {
            XCTAssertTrue("\($0)".contains("a reward model takes no arguments"), "\($0)")
        }
        // Named by the directory's last component: two directories of one name would share
        // rewards/NAME/… in metrics.jsonl (the same directory spelt twice would count twice).
        XCTAssertThrowsError(try RewardFunction.make(specs: [Self.fixtures + "/models/gpt2-reward", Self.fixtures + "/models/./gpt2-reward/"], args: [:])) {
            XCTAssertTrue("\($0)".contains("both are named gpt2-reward in the metrics"), "\($0)")
        }
        let f = try RewardFunction.make(specs: [Self.fixtures + "/models/gpt2-reward=0.5", "task"], args: [:])
        XCTAssertEqual(f.map(\.name), ["gpt2-reward", "task"])
        XCTAssertEqual(f[0].weight, 0.5)
        // A path holding "=" (a run directory named after its settings): the weight follows the last one.
        let runs = NSTemporaryDirectory() + "rm-\(UUID().uuidString)/lr=1e-3"
        try FileManager.default.createDirectory(atPath: runs, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: runs + "/judge", withDestinationPath: Self.fixtures + "/models/gpt2-reward")
        for (spec, weight) in [(runs + "/judge", Float(1)), (runs + "/judge=0.25", 0.25)] {
            let g = try RewardFunction.make(specs: [spec], args: [:])
            XCTAssertEqual(g.map(\.name), ["judge"], spec)
            XCTAssertEqual(g.map(\.weight), [weight], spec)
            XCTAssertEqual((g.first?.scorer as? RewardModelScorer)?.path, runs + "/judge", spec)
        }
        XCTAssertThrowsError(try RewardFunction.make(specs: [runs + "/judge=x"], args: [:]))
        XCTAssertThrowsError(try RewardFunction.make(specs: ["task=0.5=1"], args: [:]))
    }
}
