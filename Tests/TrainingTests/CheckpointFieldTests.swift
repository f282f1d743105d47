import Distributed
import Foundation
import XCTest
import Models
import TensorCore
@testable import Training

/// `--resume` validates every field of `state.json` and of the component files even when the
/// manifest's hashes match (a hand-made or buggy checkpoint with a fresh manifest): each bad
/// value is one line naming the file and the field, never a trap.
final class CheckpointFieldTests: XCTestCase {
    var support: TinyRun!
    override func setUpWithError() throws { support = try TinyRun() }
    override func tearDownWithError() throws { support.remove() }

    /// A good checkpoint after 2 steps (AdamW, uniform sampler), and a checkpointer of the same
    /// run to load damaged copies of it with.
    func makeCheckpoint() throws -> (good: String, checkpoints: Checkpointer) {
        let recipe = support.recipe(steps: 4, saveEvery: 2)
        let setup = try support.makeSetup(recipe)
        let comm = LocalCommunicator()
        let trainer = Trainer(setup: setup, comm: comm)
        let checkpoints = Checkpointer(setup: setup, components: trainer.components, comm: comm, log: { _ in })
        for step in 0..<2 { _ = trainer.step(step); checkpoints.afterStep(step + 1) }
        return (recipe.out + "/checkpoints/step-000002", checkpoints)
    }

    /// A copy of `good`, damaged, with a manifest that matches the damaged files.
    func damaged(_ good: String, _ name: String, _ damage: (String) throws -> Void) throws -> String {
        let path = support.dir + "/" + name
        try FileManager.default.copyItem(atPath: good, toPath: path)
        try damage(path)
        let manifest = try CheckpointManifest.make(directory: path, step: 2)
        try DurableFiles.write(manifest.encoded, to: path + "/" + CheckpointManifest.fileName)
        return path
    }

    func editState(_ dir: String, _ edit: (inout [String: Any]) -> Void) throws {
        let path = dir + "/state.json"
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
    }

    func editComponent(_ dir: String, _ name: String, _ edit: (inout [String: Any]) -> Void) throws {
        try editState(dir) { json in
            var components = json["components"] as! [String: Any]
            var c = components[name] as! [String: Any]
            edit(&c)
            components[name] = c
            json["components"] = components
        }
    }

    /// Rewrites the optimizer file with `t` (and optionally one value of `v`) replaced.
    func editOptimizer(_ dir: String, t: Float, v3: Float? = nil) throws {
        let file = try SafeTensorsFile(path: dir + "/optimizer.safetensors")
        var tensors: [String: StateTensor] = [:]
        for name in file.names { tensors[name] = StateTensor(shape: file.tensors[name]!.shape, values: try file.floats(name)) }
        tensors["t"]!.values = [t]
        if let v3 { tensors["v"]!.values[3] = v3 }
        try CheckpointStore.writeTensors(tensors, to: dir + "/optimizer.safetensors")
    }

    func testEveryFieldIsValidatedEvenWhenTheManifestMatches() throws {
        let (good, checkpoints) = try makeCheckpoint()
        XCTAssertEqual(try checkpoints.load(good)?.state.step, 2, "the undamaged checkpoint loads")

        func refuse(_ name: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line,
                    _ damage: (String) throws -> Void) throws {
            let path = try damaged(good, name, damage)
            do {
                _ = try checkpoints.load(path)
                XCTFail("\(name): accepted", file: file, line: line)
            } catch {
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix(path + "/"), "\(name): names no file: \(message)", file: file, line: line)
                XCTAssertTrue(message.contains(expected), "\(name): expected \"\(expected)\" in: \(message)", file: file, line: line)
                XCTAssertFalse(message.contains("\n"), "\(name): one line", file: file, line: line)
            }
        }

        // The optimizer file: AdamW's step count (a Float→Int trap before), moments, keys, sizes.
        try refuse("t-nan", "optimizer.safetensors: \"t\" holds nan at index 0 (must be finite)") { try editOptimizer($0, t: .nan) }
        try refuse("t-huge", "optimizer.safetensors: \"t\" is 1e+30, not a step count") { try editOptimizer($0, t: 1e30) }
        try refuse("t-fraction", "optimizer.safetensors: \"t\" is 1.5, not a step count") { try editOptimizer($0, t: 1.5) }
        try refuse("t-negative", "optimizer.safetensors: \"t\" is -1.0, not a step count") { try editOptimizer($0, t: -1) }
        try refuse("t-ahead", "optimizer.safetensors: \"t\" is 3, more than the 2 steps done") { try editOptimizer($0, t: 3) }
        try refuse("v-negative", "optimizer.safetensors: \"v\" holds -2.0 at index 3 (must be finite and ≥ 0)") { try editOptimizer($0, t: 2, v3: -2) }
        try refuse("extra-key", "optimizer.safetensors: \"w\" is not kept by this run") { dir in
            try CheckpointStore.writeTensors(["m": StateTensor([1]), "v": StateTensor([1]), "t": StateTensor([1]), "w": StateTensor([1])],
                                             to: dir + "/optimizer.safetensors")
            try editComponent(dir, "optimizer") { $0["tensors"] = ["m": [1], "v": [1], "t": [1], "w": [1]] }
        }
        try refuse("wrong-size", "optimizer.safetensors: \"m\" has 1 values, this model needs") { dir in
            try CheckpointStore.writeTensors(["m": StateTensor([1]), "v": StateTensor([1]), "t": StateTensor([1])], to: dir + "/optimizer.safetensors")
            try editComponent(dir, "optimizer") { $0["tensors"] = ["m": [1], "v": [1], "t": [1]] }
        }
        try refuse("file-vs-state", "optimizer.safetensors: holds [\"m\", \"t\", \"v\"] but state.json lists [\"m\", \"t\"]") { dir in
            try editComponent(dir, "optimizer") { c in var t = c["tensors"] as! [String: Any]; t["v"] = nil; c["tensors"] = t }
        }

        // state.json: the step, rank count, skipped steps, checksums, component names and values.
        try refuse("step-huge", "state.json: step is 1e+30, not an integer") { try editState($0) { $0["step"] = 1e30 } }
        try refuse("ranks-fraction", "state.json: ranks is 1.5, not an integer") { try editState($0) { $0["ranks"] = 1.5 } }
        try refuse("step-negative", "state.json: step is -1, the manifest's is 2") { try editState($0) { $0["step"] = -1 } }
        try refuse("ranks-zero", "state.json: ranks is 0, not a rank count") { try editState($0) { $0["ranks"] = 0 } }
        try refuse("ranks-huge", "state.json: ranks is 2147483648, not a rank count") { try editState($0) { $0["ranks"] = 2147483648 } }
        try refuse("examples-negative", "state.json: trainingExamples is -3, not a count") { try editState($0) { $0["trainingExamples"] = -3 } }
        try refuse("checksum", "state.json: parameterChecksum is \"zz\", not 16 hex digits") { try editState($0) { $0["parameterChecksum"] = "zz" } }
        try refuse("reward-checksum", "state.json: rewardModelChecksums.judge is \"zz\", not 16 hex digits") { try editState($0) { $0["rewardModelChecksums"] = ["judge": "zz"] } }
        try refuse("skipped-too-many", "state.json: components.trainer.skipped_steps is 3, outside 0...2") { dir in
            try editComponent(dir, "trainer") { $0["values"] = ["skipped_steps": 3] }
        }
        try refuse("skipped-type", "state.json: components.trainer.skipped_steps is not an integer") { dir in
            try editComponent(dir, "trainer") { $0["values"] = ["skipped_steps": "two"] }
        }
        try refuse("skipped-missing", "state.json: components.trainer.skipped_steps is missing") { dir in
            try editComponent(dir, "trainer") { $0["values"] = [String: Any]() }
        }
        try refuse("words-seed", "state.json: components.batch_source.words hold [\"0000000000000005\"], the data order of seed 1234") { dir in
            try editComponent(dir, "batch_source") { $0["values"] = ["words": ["0000000000000005"]] }
        }
        try refuse("words-hex", "state.json: unreadable checkpoint state (bad value at \"components.batch_source.values.words\")") { dir in
            try editComponent(dir, "batch_source") { $0["values"] = ["words": ["xyz"]] }
        }
        try refuse("component-missing", "state.json: holds state of [\"batch_source\", \"optimizer\"], this run keeps [\"batch_source\", \"optimizer\", \"trainer\"]") { dir in
            try editState(dir) { j in var c = j["components"] as! [String: Any]; c["trainer"] = nil; j["components"] = c }
        }
        try refuse("unknown-field", "state.json: unknown field \"stepsPerRound\" (written by another version") { try editState($0) { $0["stepsPerRound"] = 3 } }
        try refuse("unknown-recipe-key", "state.json: unknown field \"recipe.lr_decay\"") { dir in
            try editState(dir) { j in var r = j["recipe"] as! [String: Any]; r["lr_decay"] = 0.5; j["recipe"] = r }
        }
        try refuse("unknown-component-value", "state.json: components.trainer.values.extra is not a value this version of sft-dist keeps") { dir in
            try editComponent(dir, "trainer") { $0["values"] = ["skipped_steps": 0, "skipped_in_a_row": 0, "extra": 1] }
        }
        try refuse("unknown-component-field", "state.json: unknown field \"components.trainer.extra\"") { dir in
            try editComponent(dir, "trainer") { $0["extra"] = 1 }
        }
        try refuse("component-name", "state.json: components names \"../../x\", not a component name") { dir in
            try editState(dir) { j in var c = j["components"] as! [String: Any]; c["../../x"] = c["trainer"]; j["components"] = c }
        }
    }

    /// A checkpoint from before --prompts and --unlabelled were hashed (2026-12-02/03) holds
    /// only the path its run read: the file under that path resumes, another path is refused
    /// and says why the comparison is by path, and dropping the file is refused.
    func testCheckpointFromBeforeInputHashesIsComparedByPath() throws {
        var recipe = support.recipe(steps: 4, saveEvery: 2)
        let prompts = support.dir + "/p.jsonl", copy = support.dir + "/copy.jsonl"
        for path in [prompts, copy] { try "{\"prompt\": \"a\"}\n".write(toFile: path, atomically: true, encoding: .utf8) }
        recipe.prompts = prompts
        func checkpointer(_ recipe: Recipe) throws -> Checkpointer {
            let setup = try support.makeSetup(recipe)
            return Checkpointer(setup: setup, components: Trainer(setup: setup, comm: LocalCommunicator()).components,
                                comm: LocalCommunicator(), log: { _ in })
        }
        let writer = try checkpointer(recipe)
        writer.save(stepsDone: 2)
        let good = recipe.out + "/checkpoints/step-000002"
        XCTAssertNotNil(try CheckpointStore.readState(good).promptsHash, "a checkpoint of today holds the hash")
        let old = try damaged(good, "before-hashes") { dir in try editState(dir) { $0["promptsHash"] = nil } }
        XCTAssertNil(try CheckpointStore.readState(old).promptsHash)
        XCTAssertEqual(try writer.load(old)?.state.step, 2, "the same path resumes")
        var moved = recipe
        moved.prompts = copy
        XCTAssertThrowsError(try checkpointer(moved).load(old)) { error in
            XCTAssertTrue("\(error)".contains("the checkpoint's run read --prompts \(prompts) (a checkpoint that predates content hashes, so compared by path), and this one \(copy)"), "\(error)")
        }
        XCTAssertEqual(try checkpointer(moved).load(good)?.state.step, 2, "with the hash, the same bytes under another path resume")
        var dropped = recipe
        dropped.prompts = nil
        XCTAssertThrowsError(try checkpointer(dropped).load(old)) { error in
            XCTAssertTrue("\(error)".contains("the checkpoint's run read a --prompts file"), "\(error)")
        }
    }

    /// A checkpoint of the former layout (`state.json` with per-kind fields, written before
    /// stateful components; psft, so with an old-policy file) still resumes, bit-exactly.
    func testFormerLayoutStillResumesExactly() throws {
        var recipe = support.recipe(steps: 4, saveEvery: 2)
        recipe.objective = "psft"; recipe.objectiveArgs = ["refresh": "3"]
        let full = try support.train(recipe)
        let former = try damaged(recipe.out + "/checkpoints/step-000002", "former") { dir in
            try editState(dir) { j in
                let c = j["components"] as! [String: [String: Any]]
                func values(_ name: String) -> [String: Any] { c[name]!["values"] as! [String: Any] }
                j["skippedSteps"] = values("trainer")["skipped_steps"]
                j["batchSource"] = values("batch_source")["words"]
                j["optimizerKeys"] = ["m", "t", "v"]
                j["oldPolicy"] = true
                j["totalSteps"] = 4; j["objective"] = "psft"; j["optimizer"] = "adamw"
                j["objectiveRNG"] = [["0123456789abcdef", "0123456789abcdef", "0123456789abcdef", "0123456789abcdef"]]
                j["components"] = nil
            }
        }
        // Checked here first: a refused resume ends the process (Fatal.agree).
        XCTAssertEqual(try CheckpointStore.readState(former).components.keys.sorted(), ["batch_source", "old_policy", "optimizer", "trainer"])
        var resuming = recipe
        resuming.resume = former
        let resumed = try support.train(resuming)
        XCTAssertEqual(resumed.from, 2)
        XCTAssertEqual(resumed.losses.map(\.bitPattern), full.losses.suffix(2).map(\.bitPattern))
    }

    /// A manifest re-sealed over a state.json nested past Foundation's limit (513 `[` at the
    /// end of the text make its JSON parsers trap): refused with the file named, not a trap.
    /// `CheckpointState.fields` lists every field `encoded` writes (a field added without it
    /// would refuse every checkpoint that holds it), and a good checkpoint has no unknown field.
    func testFieldListCoversEveryWrittenField() throws {
        let (good, _) = try makeCheckpoint()
        var state = try CheckpointState.decode(Data(contentsOf: URL(fileURLWithPath: good + "/state.json")), path: "s.json")
        state.referenceChecksum = StateValue.hex(1); state.unlabelledHash = StateValue.hex(2)
        state.promptsHash = StateValue.hex(3); state.evaluatedSetHashes = ["": StateValue.hex(4)]; state.lastLoss = 1.5; state.numTokens = 7
        state.rewardModelChecksums = ["judge": StateValue.hex(5)]
        let json = try JSONSerialization.jsonObject(with: Data(state.encoded)) as! [String: Any]
        XCTAssertEqual(Set(json.keys), CheckpointState.fields)
        XCTAssertNil(CheckpointState.unknownField(json))
        XCTAssertEqual(try CheckpointState.decode(Data(state.encoded), path: "s.json").promptsHash, StateValue.hex(3))
    }

    func testDeeplyNestedStateIsRefusedNotATrap() {
        for n in [513, 5000] {
            let bytes = Array(#"{"components": "#.utf8) + [UInt8](repeating: 0x5B, count: n)
            XCTAssertThrowsError(try CheckpointState.decode(Data(bytes), path: "s.json"), "\(n)") {
                XCTAssertTrue("\($0)".hasPrefix("s.json: corrupt checkpoint state"), "\($0)")
            }
        }
    }
}
