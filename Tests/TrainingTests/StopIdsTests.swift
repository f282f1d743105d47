import Foundation
import XCTest
import TestSupport
import Models
@testable import Training

/// Generation stops where transformers' generate does: at the model's own `eos_token_id`
/// (config.json and generation_config.json, one id or a list) besides the tokenizer's end
/// token and the chat-turn ends.
final class StopIdsTests: XCTestCase {
    static let llama = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../ModelsTests/Fixtures/hf/models/llama").standardized.path

    func testConfigEosTokenIdsStopGeneration() throws {
        let dir = try makeTemporaryDirectory("sft-dist-stop")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (model, tokenizer) = try ModelDirectory.load(Self.llama)
        XCTAssertTrue(Evaluator.stopIds(tokenizer, model: model).contains(624))
        let copy = dir + "/llama"
        try FileManager.default.copyItem(atPath: Self.llama, toPath: copy)
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: copy + "/config.json"))) as! [String: Any]
        cfg["eos_token_id"] = [3, 5, 99_999]   // an id outside the vocabulary is not a token
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: copy + "/config.json"))
        let (listed, tok) = try ModelDirectory.load(copy)
        let stop = Evaluator.stopIds(tok, model: listed)
        XCTAssertTrue(stop.isSuperset(of: [3, 5, tok.eosId]), "\(stop)")
        XCTAssertFalse(stop.contains(99_999))
    }

    func testGenerationConfigEosTokenIdsStopGeneration() throws {
        let dir = try makeTemporaryDirectory("sft-dist-stop-generation")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let copy = dir + "/llama"
        try FileManager.default.copyItem(atPath: Self.llama, toPath: copy)
        let (plain, plainTok) = try ModelDirectory.load(copy)
        XCTAssertFalse(Evaluator.stopIds(plainTok, model: plain).contains(7))
        try Data(#"{"eos_token_id": [7, 11, 99999], "do_sample": true}"#.utf8).write(to: URL(fileURLWithPath: copy + "/generation_config.json"))
        let (model, tok) = try ModelDirectory.load(copy)
        let stop = Evaluator.stopIds(tok, model: model)
        XCTAssertTrue(stop.isSuperset(of: [7, 11, 624, tok.eosId]), "\(stop)")
        XCTAssertFalse(stop.contains(99_999))
        // One id, as Qwen2.5's base models write it.
        try Data(#"{"eos_token_id": 9}"#.utf8).write(to: URL(fileURLWithPath: copy + "/generation_config.json"))
        let (one, oneTok) = try ModelDirectory.load(copy)
        XCTAssertTrue(Evaluator.stopIds(oneTok, model: one).contains(9))
        XCTAssertFalse(Evaluator.stopIds(oneTok, model: one).contains(7))
    }
}
