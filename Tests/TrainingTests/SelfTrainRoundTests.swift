import Foundation
import XCTest
@testable import Distributed
@testable import Models
@testable import TensorCore
@testable import Training

/// The selection rules of rft and ssr/s3ft on fixed samples, and the producer's mixing of a
/// round's rows into the step batch, through its checkpointed state.
final class SelfTrainRoundTests: XCTestCase {
    let tokenizer = ByteTokenizer()

    func prompt(_ text: String, reference: String, index: Int) -> SelfTrainPrompt {
        let e = ChatFormat.promptCompletion(prompt: text, completion: reference, source: "t.jsonl:\(index + 1)", tokenizer: tokenizer)
        return SelfTrainPrompt(example: e, index: index, tokenizer: tokenizer, reference: reference)!
    }

    func sample(_ text: String, finished: Bool = true) -> RoundSample {
        RoundSample(ids: tokenizer.encodePlain(text), text: text, logProbs: [-0.5], finished: finished)
    }

    func options(_ method: String, _ args: [String: String] = [:]) throws -> SelfTrainOptions {
        var r = Recipe()
        r.selfTrain = method; r.selfTrainScorer = "task"; r.selfTrainArgs = args; r.selfTrainEvery = 10
        if method == "semievol" { r.unlabelled = "u.jsonl" }
        return try SelfTrainOptions(recipe: r)
    }

    func testRFTKeepsDistinctAcceptedFinishedAnswers() throws {
        let prompts = [prompt("add 2 3 =", reference: " 5", index: 0), prompt("mul 2 4 =", reference: " 8", index: 1)]
        let samples = [[sample(" 5"), sample("5 "), sample(" 6"), sample(" 5", finished: false)],
                       [sample("8"), sample(" 7"), sample(" 7"), sample(" 7")]]
        let round = RejectionSamplingRound(labelled: prompts, options: try options("rft"), scoring: try SelfTrainScoring(name: "task"), seed: 1)
        let (outcome, records) = try round.decide(round: 0, prompts: prompts, samples: samples)
        // Accepted: " 5" and "5 " (one key: one row), "8"; the unfinished " 5" does not count.
        XCTAssertEqual(outcome.rows, [prompts[0].row(answer: tokenizer.encodePlain(" 5")), prompts[1].row(answer: tokenizer.encodePlain("8"))])
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: outcome.metrics)["rft_accepted"], 3.0 / 8.0)
        XCTAssertEqual(records[0]["accepted"] as? [Bool], [true, true, false, false])
        // The row is prompt + answer + the format's end token, trained after the prompt.
        let row = outcome.rows[0].sequence
        XCTAssertEqual(row.ids, tokenizer.encodePlain("add 2 3 = 5") + [tokenizer.eosId])
        XCTAssertEqual(row.lossMask, [UInt8](repeating: 0, count: 9) + [1, 1, 1])
        XCTAssertEqual(row.origin, .pseudoLabel)
    }

    func testSelfGeneratedTargetsReplaceOnlyAcceptedAnswers() throws {
        let prompts = [prompt("add 2 3 =", reference: " 5", index: 4), prompt("mul 2 4 =", reference: " 8", index: 7),
                       prompt("copy ab =", reference: " ab", index: 9)]
        let samples = [[sample(" 5 ")], [sample(" 9")], [sample(" ab", finished: false)]]
        let round = SelfGeneratedTargetsRound(labelled: prompts, options: try options("s3ft"), scoring: try SelfTrainScoring(name: "task"), seed: 1)
        let (outcome, _) = try round.decide(round: 0, prompts: prompts, samples: samples)
        XCTAssertEqual(outcome.replacements, [prompts[0].row(answer: tokenizer.encodePlain(" 5 "))])
        XCTAssertEqual(outcome.replacements.first?.example, 4)
        XCTAssertEqual(outcome.restored, [7, 9])
    }

    /// A round's rows fill `ratio` of the batch, replaced targets stand in for their rows, and
    /// the state restores into a new producer that builds the same batches; bad state names its field.
    func testMixingThroughCheckpointedState() throws {
        let examples = (0..<6).map { ChatFormat.promptCompletion(prompt: "copy \($0) =", completion: " \($0)", source: "t:\($0 + 1)", tokenizer: tokenizer) }
        let opts = try options("semievol", ["ratio": "0.5"])
        func producer() -> SelfTrainProducer {
            SelfTrainProducer(labelled: UniformSampler(datasetSize: 6, batchSize: 4, seed: 3),
                              method: SemiEvolRound(unlabelled: [], options: opts, scoring: nil, seed: 3), options: opts,
                              seed: 3, out: "/nonexistent", maxLength: 64, vocabSize: tokenizer.vocabSize)
        }
        let pool = (0..<3).map { PseudoRow(ids: tokenizer.encodePlain("q\($0) = a\($0)") + [tokenizer.eosId], promptLength: 4, example: -1) }
        let labelledOrder = UniformSampler(datasetSize: 6, batchSize: 4, seed: 3).batch(step: 12)
        let replaced = PseudoRow(ids: tokenizer.encodePlain("copy \(labelledOrder[0]) = mine") + [tokenizer.eosId], promptLength: 8,
                                 example: labelledOrder[0])
        var state = ComponentState(values: ["round": .int(1), "words": .words([3])])
        for (prefix, rows) in [("pool_", pool), ("replaced_", [replaced])] {
            state.values[prefix + "ids"] = .ints(rows.flatMap { $0.ids.map(Int.init) })
            state.values[prefix + "lengths"] = .ints(rows.map(\.ids.count))
            state.values[prefix + "prompt_lengths"] = .ints(rows.map(\.promptLength))
            state.values[prefix + "examples"] = .ints(rows.map(\.example))
        }
        let a = producer()
        try a.restoreState(state, step: 12)
        let batch = a.batch(step: 12, examples: examples)
        XCTAssertEqual(batch.sequences.count, 4)
        XCTAssertEqual(batch.sequences.map(\.origin), [.pseudoLabel, .demonstration, .pseudoLabel, .pseudoLabel])
        XCTAssertEqual(batch.sequences[0], replaced.sequence)
        XCTAssertEqual(batch.sequences[1].example, labelledOrder[1])
        XCTAssertEqual(Set(batch.sequences[2...].map(\.ids)).isSubset(of: Set(pool.map(\.ids))), true)
        XCTAssertNotEqual(batch.sequences[2].ids, batch.sequences[3].ids, "drawn without replacement")

        let b = producer()
        try b.restoreState(a.saveState(), step: 12)
        XCTAssertEqual(b.batch(step: 13, examples: examples), a.batch(step: 13, examples: examples))

        var bad = state
        bad.values["pool_ids"] = .ints([Int](repeating: 999, count: pool.reduce(0) { $0 + $1.ids.count }))
        XCTAssertThrowsError(try producer().restoreState(bad, step: 12)) { XCTAssertTrue("\($0)".contains("pool_ids"), "\($0)") }
        bad = state
        bad.values["round"] = .int(5)
        XCTAssertThrowsError(try producer().restoreState(bad, step: 12)) { XCTAssertTrue("\($0)".contains("round"), "\($0)") }
    }
}
