import Foundation
import Models

/// Checkpoints written before stateful components: `state.json` named each kind of state
/// (`skippedSteps`, `batchSource`, `optimizerKeys`, `oldPolicy`, …). Their files are the ones
/// the components write today (`optimizer.safetensors`, `old_policy.safetensors`), so reading
/// one only maps those fields onto the components of the same names; the tensor shapes come
/// from the files' headers. (`totalSteps`, `objective`, `optimizer` and `objectiveRNG` were
/// derivable and are ignored: the recipe comparison covers them.)
extension CheckpointState {
    private struct Version1: Decodable {
        var step: Int
        var skippedSteps: Int
        var ranks: Int
        var recipe: Recipe
        var optimizerKeys: [String]
        var batchSource: [String]
        var oldPolicy: Bool
        var parameterChecksum: String
        var referenceChecksum: String?
        var trainingDataHash: String
        var trainingExamples: Int
    }

    /// True for a `state.json` of the former layout.
    static func isVersion1(_ data: Data) -> Bool {
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return false }
        return json["components"] == nil && json["batchSource"] != nil
    }

    /// Reads a former-layout `state.json` at `path` in checkpoint `dir`; `listed` are the files
    /// its manifest lists (only those are opened).
    static func version1(_ data: Data, path: String, dir: String, listed: Set<String>) throws -> CheckpointState {
        let old: Version1
        do { old = try JSONDecoder().decode(Version1.self, from: data) } catch {
            throw CheckpointError("\(path): unreadable checkpoint state (\(CheckpointManifest.describe(error)))")
        }
        let words = old.batchSource.compactMap { $0.utf8.count == 16 ? UInt64($0, radix: 16) : nil }
        guard words.count == old.batchSource.count else { throw CheckpointError("\(path): batchSource is not a list of 64-bit hex words") }
        func shapes(_ component: String) throws -> [String: [Int]] {
            let file = tensorFile(component)
            guard listed.contains(file) else { throw CheckpointError("\(dir)/\(CheckpointManifest.fileName): corrupt manifest (does not list \(file))") }
            return try SafeTensorsFile(path: dir + "/" + file).tensors.mapValues(\.shape)
        }
        var components: [String: SavedComponent] = [
            "trainer": SavedComponent(values: ["skipped_steps": .int(old.skippedSteps)], tensors: [:]),
            "batch_source": SavedComponent(values: ["words": .words(words)], tensors: [:]),
            "optimizer": SavedComponent(values: [:], tensors: try shapes("optimizer")),
        ]
        guard Set(components["optimizer"]!.tensors.keys) == Set(old.optimizerKeys) else {
            throw CheckpointError("\(dir)/\(tensorFile("optimizer")): holds \(components["optimizer"]!.tensors.keys.sorted()) but \(fileName) lists \(old.optimizerKeys.sorted())")
        }
        if old.oldPolicy { components["old_policy"] = SavedComponent(values: [:], tensors: try shapes("old_policy")) }
        return CheckpointState(step: old.step, ranks: old.ranks, recipe: old.recipe, components: components,
                               parameterChecksum: old.parameterChecksum, referenceChecksum: old.referenceChecksum,
                               trainingDataHash: old.trainingDataHash, trainingExamples: old.trainingExamples)
    }
}
