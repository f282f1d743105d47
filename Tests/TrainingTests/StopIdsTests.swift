import Foundation
import XCTest
import TestSupport
import Models
@testable import Training

/// Generation stops where transformers' generate does: at the model's own `eos_token_id`
/// (config.json, one id or a list) besides the tokenizer's end token and the chat-turn ends.
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
}
