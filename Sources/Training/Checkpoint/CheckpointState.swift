import Foundation
import Models
import TensorCore

/// `state.json`: everything besides the tensors that a resumed run needs to continue exactly
/// as if never interrupted, and what `--resume` checks before trusting the checkpoint.
///
/// What the run's state is made of, and where each piece lives:
/// - parameters, optimizer moments, the old-policy snapshot: safetensors files next to this;
/// - the step and the count of skipped (non-finite) steps: here;
/// - the batch source (the coordinator's data cursor): `batchSource`; the uniform sampler's
///   batch is a pure function of (seed, step), so its state is the seed;
/// - random streams: the objective's per-(step, rank, micro-batch) stream is derived, not
///   carried, so it needs no state; `objectiveRNG` records each rank's stream for the next step
///   so that a binary deriving them differently is caught instead of silently diverging;
/// - the LR schedule: a pure function of the step and the recipe;
/// - the reference model (objectives that regularise towards it): the initial weights or
///   `ref_model`, rebuilt at start-up; `referenceChecksum` proves it is the same.
struct CheckpointState: Codable {
    var step: Int                        // optimizer steps completed
    var totalSteps: Int
    var skippedSteps: Int
    var ranks: Int                       // rank count that wrote it (informational)
    var recipe: Recipe
    var objective: String
    var optimizer: String
    var optimizerKeys: [String]
    var batchSource: [String]            // BatchSource.state, hex words
    var objectiveRNG: [[String]]         // per rank: RNG words of (step, rank, micro-batch 0)
    var oldPolicy: Bool                  // old_policy.safetensors present
    var parameterChecksum: String        // ParameterStore.checksum(), hex
    var referenceChecksum: String?       // of the reference model, when the objective has one
    var trainingDataHash: String         // XXH64 over the tokenized training examples
    var trainingExamples: Int

    static let fileName = "state.json"

    var encoded: [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array((try? enc.encode(self)) ?? Data()) + [0x0A]
    }

    static func decode(_ data: Data, path: String) throws -> CheckpointState {
        do { return try JSONDecoder().decode(CheckpointState.self, from: data) } catch {
            throw CheckpointError("\(path): unreadable checkpoint state (\(error))")
        }
    }

    static func hex(_ words: [UInt64]) -> [String] { words.map(XXHash64.hex) }
    static func words(_ hex: [String], path: String) throws -> [UInt64] {
        try hex.map {
            guard $0.count == 16, let w = UInt64($0, radix: 16) else { throw CheckpointError("\(path): \"\($0)\" is not a 64-bit hex word") }
            return w
        }
    }

    /// The first recipe key whose value differs and that a resumed run may not change
    /// (`ResumeRule`, declared with each key in `RecipeKeys`), with both values.
    static func recipeDifference(saved: Recipe, current: Recipe) -> (key: String, saved: String, current: String)? {
        saved.firstDifference(from: current, only: { $0.resume == .mustMatch }).map { ($0.key, $0.mine, $0.other) }
    }

    /// The first config key that differs between the checkpoint's config.json and the model
    /// being trained ("n_embd: 64 in the checkpoint, 128 here").
    static func configDifference(saved: Data, current: [String: Any]) -> String? {
        guard let a = (try? JSONSerialization.jsonObject(with: saved)) as? [String: Any] else { return "config.json is not a JSON object" }
        // Round-trip the live config through JSON so both sides have the same number types.
        guard let data = try? JSONSerialization.data(withJSONObject: current, options: [.sortedKeys]),
              let b = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return "the model's config is not JSON" }
        for key in Set(a.keys).union(b.keys).sorted() {
            let x = a[key] as? NSObject, y = b[key] as? NSObject
            if x == nil && y == nil { continue }
            if let x, let y, x.isEqual(y) { continue }
            return "\(key): \(x.map { "\($0)" } ?? "absent") in the checkpoint, \(y.map { "\($0)" } ?? "absent") here"
        }
        return nil
    }

    /// XXH64 over every training example's ids and loss mask, in order: a different data file,
    /// split, template, truncation or tokenizer all change it.
    static func dataHash(_ examples: [Example]) -> UInt64 {
        var h = XXHash64()
        for e in examples {
            withUnsafeBytes(of: Int64(e.ids.count).littleEndian) { h.update($0) }
            e.ids.withUnsafeBytes { h.update($0) }
            e.lossMask.withUnsafeBytes { h.update($0) }
        }
        return h.finalize()
    }
}
