import Distributed
import Foundation
import XCTest
import Models
import TensorCore
@testable import Training

/// LoRA through the real trainer: only the adapters train (the base stays bit-identical and
/// its gradient buffer is never written: no weight-gradient GEMM), the adapter format round-trips,
/// a run with adapters and dropout resumes bit-exactly, and refusals name the flag.
final class LoRATrainingTests: XCTestCase {
    var support: TinyRun!
    override func setUpWithError() throws { support = try TinyRun() }
    override func tearDownWithError() throws { support.remove() }

    func loraRecipe(steps: Int, saveEvery: Int = 0) -> Recipe {
        var r = support.recipe(steps: steps, saveEvery: saveEvery)
        r.loraRank = 2; r.loraAlpha = 4; r.loraDropout = 0.2; r.loraTargets = "c_attn,c_fc"; r.lr = 5e-2
        return r
    }

    /// TinyRun's setup with a two-block GPT-2 built with the recipe's adapters.
    func makeSetup(_ recipe: Recipe) throws -> RunSetup {
        let plain = try support.makeSetup(recipe)
        let config = GPT2Config(vocabSize: plain.tokenizer.vocabSize, contextLength: 16, embedDim: 8, layers: 2, heads: 2)
        let lora = try XCTUnwrap(LoRATraining.config(recipe)).resolved(for: .gpt2, plan: config.layoutPlan)
        let model = GPT2(config: config, seed: 3, lora: lora)
        model.initializeAdapters(seed: recipe.seed)
        return RunSetup(recipe: recipe, tokenizer: plain.tokenizer, model: model, train: plain.train, heldOut: plain.heldOut,
                        objective: plain.objective, referenceModel: nil)
    }

    /// peft's `all-linear`: every projection of the blocks, saved by name (GPT-2's attn.c_proj
    /// and mlp.c_proj are both `c_proj`, as peft names them); only alone, as peft takes it.
    func testAllLinearTargetsEveryProjection() throws {
        XCTAssertEqual(LoRATraining.targets(" all-linear "), ["all-linear"])
        XCTAssertNil(LoRATraining.targets("all-linear,q_proj"))
        let gpt2 = GPT2Config(vocabSize: 16, contextLength: 16, embedDim: 8, layers: 2, heads: 2)
        let g = try LoRAConfig(rank: 2, alpha: 4, targets: ["all-linear"]).resolved(for: .gpt2, plan: gpt2.layoutPlan)
        XCTAssertEqual(Set(g.targets), ["c_attn", "c_proj", "c_fc"])
        let llama = LlamaConfig(family: .llama, vocabSize: 16, hiddenSize: 8, intermediateSize: 12, layers: 2, heads: 2, kvHeads: 1, maxPositions: 16)
        let l = try LoRAConfig(rank: 2, alpha: 4, targets: ["all-linear"]).resolved(for: .llama("llama"), plan: llama.layoutPlan)
        XCTAssertEqual(Set(l.targets), ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    }

    func values(_ p: ParameterStore, _ e: ParameterStore.Entry) -> [UInt32] {
        (0..<e.count).map { p.values[e.offset + $0].bitPattern }
    }

    func testOnlyAdaptersTrainAndTheBaseStaysBitIdentical() throws {
        let setup = try makeSetup(loraRecipe(steps: 3))
        let p = setup.model.parameters
        let before = Dictionary(uniqueKeysWithValues: p.entries.map { ($0.name, values(p, $0)) })
        let trainer = Trainer(setup: setup, comm: LocalCommunicator())
        let adapters = (setup.model as! LoRAAdaptable).adapterNames
        XCTAssertEqual(trainer.trainable.names, adapters)
        XCTAssertEqual(adapters.count, 2 * 2 * 2)
        for step in 0..<3 { XCTAssertTrue(trainer.step(step).loss.isFinite) }
        var movedB = 0
        for e in p.entries {
            if LoRAConfig.isAdapterName(e.name) {
                if values(p, e) != before[e.name]! { movedB += e.name.hasSuffix("lora_B.weight") ? 1 : 0 }
            } else {
                XCTAssertEqual(values(p, e), before[e.name]!, "frozen \(e.name) changed")
                XCTAssertTrue((0..<e.count).allSatisfy { p.grads[e.offset + $0] == 0 }, "frozen \(e.name) got a gradient")
            }
        }
        XCTAssertEqual(movedB, 4, "every lora_B moved from zero")
        let moments = trainer.components.components.first { $0.stateName == "optimizer" }!.saveState().tensors
        XCTAssertEqual(moments["m"]?.values.count, trainer.trainable.count, "first moments for the adapters only")
        XCTAssertEqual(moments["v"]?.values.count, trainer.trainable.count, "second moments for the adapters only")
        XCTAssertLessThan(trainer.trainable.count * 10, p.count, "the adapters are a small share of the model")
    }

    /// Steps 3–4 after resuming from the step-2 checkpoint equal the uninterrupted run's, bit
    /// for bit, with dropout on (its masks are keyed by step and token, not by a consumed stream).
    func testResumeWithAdaptersIsBitExact() throws {
        func run(_ r: Recipe) throws -> (losses: [Double], from: Int, weights: [UInt32]) {
            let setup = try makeSetup(r)
            let comm = LocalCommunicator()
            let trainer = Trainer(setup: setup, comm: comm)
            let checkpoints = Checkpointer(setup: setup, components: trainer.components, comm: comm, log: { _ in })
            let start = checkpoints.resume()?.step ?? 0
            var losses: [Double] = []
            for step in start..<r.steps {
                losses.append(trainer.step(step).loss)
                checkpoints.afterStep(step + 1)
            }
            let p = setup.model.parameters
            return (losses, start, (0..<p.count).map { p.values[$0].bitPattern })
        }
        let recipe = loraRecipe(steps: 4, saveEvery: 2)
        let full = try run(recipe)
        var resuming = recipe
        resuming.resume = support.dir + "/run/checkpoints/step-000002"
        let resumed = try run(resuming)
        XCTAssertEqual(resumed.from, 2)
        XCTAssertEqual(resumed.losses.map(\.bitPattern), full.losses.suffix(2).map(\.bitPattern))
        XCTAssertEqual(resumed.weights, full.weights)
        var noDropout = recipe
        noDropout.loraDropout = 0
        XCTAssertNotEqual(try run(noDropout).losses.last, full.losses.last, "dropout takes part")
    }

    func testAdapterDirectoryRoundTripsInPeftsFormat() throws {
        let setup = try makeSetup(loraRecipe(steps: 1))
        let model = setup.model as! LoRAAdaptable
        LoRAModelTestsSupport.randomize(model)
        let dir = support.dir + "/adapter"
        try AdapterDirectory.save(model, base: "some/base", to: dir)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(config["peft_type"] as? String, "LORA")
        XCTAssertEqual(config["r"] as? Int, 2)
        XCTAssertEqual(config["lora_alpha"] as? Double, 4)
        XCTAssertEqual(config["fan_in_fan_out"] as? Bool, true)
        XCTAssertEqual(config["target_modules"] as? [String], ["c_attn", "c_fc"])
        XCTAssertEqual(config["base_model_name_or_path"] as? String, "some/base")
        let file = try SafeTensorsCheckpoint(file: dir + "/adapter_model.safetensors")
        XCTAssertEqual(Set(file.names), Set(model.adapterNames.map { "base_model.model." + $0 }))
        XCTAssertEqual(file.info("base_model.model.transformer.h.1.attn.c_attn.lora_B.weight")?.shape, [24, 2])
        let (lora, fan, _) = try AdapterDirectory.readConfig(dir)
        XCTAssertEqual(lora, model.lora!)
        XCTAssertTrue(fan)
        let fresh = try makeSetup(loraRecipe(steps: 1)).model
        try AdapterDirectory.loadWeights(into: fresh.parameters, from: dir + "/adapter_model.safetensors", base: "tiny")
        XCTAssertEqual(fresh.parameters.checksum(), model.parameters.checksum())
    }

    func testRefusals() throws {
        var recipe = loraRecipe(steps: 1)
        recipe.freeze = "wte"
        let setup = try makeSetup(recipe)
        XCTAssertThrowsError(try LoRATraining.trainableSet(recipe, model: setup.model)) {
            XCTAssertEqual("\($0)", "--freeze cannot be combined with --lora-rank (a LoRA run trains only its adapters)")
        }
        let table = LogitTableModel(examples: 2, positions: 2, vocab: 3)
        XCTAssertThrowsError(try LoRATraining.trainableSet(loraRecipe(steps: 1), model: table)) {
            XCTAssertEqual("\($0)", "--lora-rank: LoRA is not supported for this architecture (logit-table; supported: gpt2, llama, qwen2, qwen3, mistral)")
        }
        XCTAssertNil(LoRATraining.targets("q_proj,,v_proj"))
        XCTAssertNil(LoRATraining.targets("q_proj;rm"))
        XCTAssertEqual(LoRATraining.targets(" q_proj , attn.c_proj"), ["q_proj", "attn.c_proj"])
        var r = Recipe()
        XCTAssertThrowsError(try Recipe.key(named: "lora_targets")!.read(flag: "a,,b", into: &r)) {
            XCTAssertTrue("\($0)".hasPrefix("--lora-targets must be comma-separated module names"), "\($0)")
        }
    }

    /// peft's `target_modules` is a list; a recipe may write `lora_targets` as one, and it is
    /// the same run as the comma-separated flag (recipe.yaml and the resume check see one text).
    func testLoRATargetsAsAYAMLList() throws {
        let listed = try Recipe.parse(yaml: "lora_rank: 2\nlora_targets: [c_attn, \"c_fc\"]\n", source: "r.yaml")
        XCTAssertEqual(listed.loraTargets?.names, ["c_attn", "c_fc"])
        var flagged = Recipe()
        flagged.loraRank = 2
        try Recipe.key(named: "lora_targets")!.read(flag: "c_attn,c_fc", into: &flagged)
        XCTAssertEqual(listed, flagged)
        XCTAssertEqual(try Recipe.parse(yaml: listed.yaml, source: "recipe.yaml"), listed)
        for bad in ["[]", "[c_attn, [c_fc]]", "[c_attn, \"a,b\"]", "[c_attn, ~]", "{c_attn: 1}"] {
            XCTAssertThrowsError(try Recipe.parse(yaml: "lora_rank: 2\nlora_targets: \(bad)\n", source: "r.yaml"), bad) {
                XCTAssertTrue("\($0)".hasPrefix("r.yaml:2: lora_targets must be comma-separated module names"), "\($0)")
            }
        }
    }
}

enum LoRAModelTestsSupport {
    static func randomize(_ m: LanguageModel, seed: UInt64 = 21) {
        var rng = RNG(seed: seed)
        for e in m.parameters.entries where LoRAConfig.isAdapterName(e.name) {
            for i in 0..<e.count { m.parameters.values[e.offset + i] = rng.normal() * 0.3 }
        }
    }
}
