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
        let round = SelfGeneratedTargetsRound(labelled: prompts, options: try options("ssr"), scoring: try SelfTrainScoring(name: "task"), seed: 1,
                                              paraphrase: false)
        let (outcome, _) = try round.decide(round: 0, prompts: prompts, samples: samples)
        XCTAssertEqual(outcome.replacements, [prompts[0].row(answer: tokenizer.encodePlain(" 5 "))])
        XCTAssertEqual(outcome.replacements.first?.example, 4)
        XCTAssertEqual(outcome.restored, [7, 9])
    }

    /// S3FT differs from SSR exactly where the own answer is rejected and the paraphrase (the
    /// answer after reading the gold example) is accepted: S3FT trains on the paraphrase, SSR on
    /// the gold answer. Where the own answer is accepted both take it; where neither is, both
    /// keep the gold. The paraphrase context is the gold example, then the prompt again.
    func testS3FTFallsBackToAnAcceptedParaphraseWhereSSRKeepsTheGold() throws {
        let prompts = [prompt("add 2 3 =", reference: " 5", index: 0), prompt("mul 2 4 =", reference: " 8", index: 1),
                       prompt("copy ab =", reference: " ab", index: 2), prompt("add 1 1 =", reference: " 2", index: 3),
                       prompt("upper ab =", reference: " AB", index: 4)]
        let own = [sample(" 5"), sample(" 9"), sample(" ba"), sample(" 3"), sample(" AB")]
        let paraphrases = [sample(" 6"), sample(" 8"), sample(" ba"), sample(" 2", finished: false), sample(" AB")]
        let scoring = try SelfTrainScoring(name: "task")
        let ssr = SelfGeneratedTargetsRound(labelled: prompts, options: try options("ssr"), scoring: scoring, seed: 1, paraphrase: false)
        let s3ft = SelfGeneratedTargetsRound(labelled: prompts, options: try options("s3ft"), scoring: scoring, seed: 1, paraphrase: true)
        XCTAssertEqual(ssr.contexts(prompts), prompts.map(\.ids))
        XCTAssertEqual(s3ft.contexts(prompts), prompts.map(\.ids) + prompts.map { tokenizer.encodePlain("\($0.text)\($0.reference!)") + [tokenizer.eosId] + $0.ids })
        let (a, _) = try ssr.decide(round: 0, prompts: prompts, samples: own.map { [$0] })
        let (b, records) = try s3ft.decide(round: 0, prompts: prompts, samples: (own + paraphrases).map { [$0] })
        let ownRows = [prompts[0].row(answer: own[0].ids), prompts[4].row(answer: own[4].ids)]
        XCTAssertEqual(a.replacements, ownRows)
        XCTAssertEqual(a.restored, [1, 2, 3])
        // Prompt 1: " 9" rejected, paraphrase " 8" accepted; prompt 3's paraphrase did not finish.
        XCTAssertEqual(b.replacements, [ownRows[0], prompts[1].row(answer: paraphrases[1].ids), ownRows[1]])
        XCTAssertEqual(b.restored, [2, 3])
        XCTAssertEqual(records.map { $0["target"] as? String }, ["model", "paraphrase", "gold", "gold", "model"])
        XCTAssertNil(records[0]["paraphrase"], "a paraphrase is judged only where the own answer was rejected")
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: b.metrics)["self_targets_paraphrased"], 0.2)
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: b.metrics)["self_targets_accepted"], 0.4)
        XCTAssertNil(Dictionary(uniqueKeysWithValues: a.metrics)["self_targets_paraphrased"])
    }

    /// `--self-train-scorer` takes every `--reward` name, built by the same registry with its
    /// `--reward-arg NAME.key=value` arguments (`regex`, `format` were refused before).
    func testSelfTrainScorerTakesRewardFunctionNames() throws {
        XCTAssertEqual(SelfTrainScoring.names, RewardFunction.names)
        let regex = try SelfTrainScoring(name: "regex", rewardArgs: ["regex.pattern": "^ [0-9]+$", "exact.ignore_case": "true"])
        let item = { (c: String) in ScoringItem(prompt: "add 2 3 =", completion: c, reference: nil, source: "t:1") }
        XCTAssertEqual(try regex.accepts([item(" 5"), item(" five")]), [true, false])
        XCTAssertFalse(regex.needsReference)
        let format = try SelfTrainScoring(name: "format")
        XCTAssertEqual(try format.accepts([item(" 5"), item(" 5\n6")]), [true, false])
        XCTAssertTrue(try SelfTrainScoring(name: "numeric").needsReference)
        XCTAssertFalse(try SelfTrainScoring(name: "task").needsReference)
        XCTAssertThrowsError(try SelfTrainScoring(name: "regex")) { XCTAssertTrue("\($0)".contains("pattern"), "\($0)") }
        var r = Recipe()
        r.selfTrainScorer = "format"; r.selfTrain = "rft"
        XCTAssertEqual(try SelfTrainOptions(recipe: r).scorer, "format")
    }

    /// An empty unlabelled prompt is named as generate names it (it was "cannot be formatted
    /// for an answer").
    func testAnEmptyUnlabelledPromptIsNamed() throws {
        let path = NSTemporaryDirectory() + "unlabelled-\(UUID().uuidString).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "{\"prompt\": \"add 1 2 =\"}\n{\"prompt\": \"\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try UnlabelledPrompts.read(path: path, tokenizer: ByteTokenizer(), template: .chatml, maxLength: 64, skipBadLines: false)) {
            XCTAssertEqual("\($0)", "\(path):2: the prompt is empty (no text for the model to answer)")
        }
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
