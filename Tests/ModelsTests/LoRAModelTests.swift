import XCTest
@testable import Models
@testable import TensorCore

/// LoRA injected into GPT-2 (Conv1D [in, out]) and the Llama family (nn.Linear [out, in]):
/// adapter tensors named and shaped as peft's, inside each block's range; B = 0 leaves the
/// logits bit-identical; gradients through the whole model by finite differences; KV-cache
/// decoding with adapters equals the full forward; a target the model lacks is refused, naming
/// it and listing the model's modules.
final class LoRAModelTests: XCTestCase {
    static let gpt2Config = GPT2Config(vocabSize: 13, contextLength: 16, embedDim: 8, layers: 2, heads: 2)
    static let llamaConfig = LlamaConfig(family: .llama, vocabSize: 13, hiddenSize: 8, intermediateSize: 12, layers: 2,
                                         heads: 4, kvHeads: 2, maxPositions: 16, ropeTheta: 100, tieWordEmbeddings: false)

    static func gpt2(_ targets: [String], seed: UInt64 = 1) throws -> GPT2 {
        let lora = try LoRAConfig(rank: 2, alpha: 3, targets: targets).resolved(for: .gpt2, plan: gpt2Config.layoutPlan)
        return GPT2(config: gpt2Config, seed: seed, lora: lora)
    }

    static func llama(_ targets: [String], seed: UInt64 = 1) throws -> Llama {
        let lora = try LoRAConfig(rank: 3, alpha: 6, targets: targets).resolved(for: .llama("llama"), plan: llamaConfig.layoutPlan)
        return Llama(config: llamaConfig, seed: seed, lora: lora)
    }

    /// Every adapter value random (B too), so the low-rank term matters.
    static func randomizeAdapters(_ m: LanguageModel, seed: UInt64, std: Float = 0.3) {
        var rng = RNG(seed: seed)
        for e in m.parameters.entries where LoRAConfig.isAdapterName(e.name) {
            for i in 0..<e.count { m.parameters.values[e.offset + i] = rng.normal() * std }
        }
    }

    func testAdapterNamesShapesAndBlockRanges() throws {
        let g = try Self.gpt2(["c_attn", "c_proj"])
        let shapes = Dictionary(uniqueKeysWithValues: g.parameters.entries.map { ($0.name, $0.shape) })
        XCTAssertEqual(shapes["transformer.h.1.attn.c_attn.lora_A.weight"], [2, 8])
        XCTAssertEqual(shapes["transformer.h.1.attn.c_attn.lora_B.weight"], [24, 2])
        XCTAssertEqual(shapes["transformer.h.0.attn.c_proj.lora_B.weight"], [8, 2])
        XCTAssertEqual(shapes["transformer.h.0.mlp.c_proj.lora_A.weight"], [2, 32], "c_proj names both projections, as in peft")
        XCTAssertNil(shapes["transformer.h.0.mlp.c_fc.lora_A.weight"])
        XCTAssertEqual(g.adapterNames.count, 2 * 2 * 3)
        let l = try Self.llama(["k_proj", "down_proj"])
        let ls = Dictionary(uniqueKeysWithValues: l.parameters.entries.map { ($0.name, $0.shape) })
        XCTAssertEqual(ls["model.layers.0.self_attn.k_proj.lora_A.weight"], [3, 8])
        XCTAssertEqual(ls["model.layers.0.self_attn.k_proj.lora_B.weight"], [4, 3], "k_proj: kv heads × head dim outputs")
        XCTAssertEqual(ls["model.layers.1.mlp.down_proj.lora_A.weight"], [3, 12])
        for (i, range) in l.blockRanges.enumerated() {
            for name in l.adapterNames where name.hasPrefix("model.layers.\(i).") {
                let e = l.parameters.entry(name)!
                XCTAssertTrue(range.contains(e.offset) && e.offset + e.count <= range.upperBound, "\(name) outside block \(i)'s bucket")
            }
        }
        XCTAssertEqual(try LoRAConfig(rank: 2, alpha: 3).resolved(for: .gpt2, plan: Self.gpt2Config.layoutPlan).targets, ["c_attn"])
        XCTAssertEqual(try LoRAConfig(rank: 2, alpha: 3).resolved(for: .llama("qwen2"), plan: Self.llamaConfig.layoutPlan).targets,
                       ["q_proj", "v_proj"])
    }

    func testFreshAdaptersLeaveLogitsBitIdentical() throws {
        let ids: [Int32] = [1, 5, 2, 9, 3, 3]
        for (plain, adapted) in [(GPT2(config: Self.gpt2Config, seed: 4) as LanguageModel, try Self.gpt2(["c_attn", "c_proj", "c_fc"], seed: 4) as LoRAAdaptable),
                                 (Llama(config: Self.llamaConfig, seed: 4), try Self.llama(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], seed: 4))] {
            adapted.initializeAdapters(seed: 9)
            let a = plain.forward(Tape(recording: false), inputs: ids, batch: 1, seqLen: 6).values
            let b = adapted.forward(Tape(recording: false), inputs: ids, batch: 1, seqLen: 6).values
            XCTAssertEqual(a, b)
            let lora = adapted.parameters.entries.first { $0.name.hasSuffix("lora_A.weight") }!
            let bound = 1 / Float(lora.shape[1]).squareRoot()
            let values = (0..<lora.count).map { adapted.parameters.values[lora.offset + $0] }
            XCTAssertTrue(values.allSatisfy { abs($0) <= bound } && values.contains { $0 != 0 }, "A ~ U(±1/√in)")
        }
    }

    func testGradientsThroughAdaptedModelsBothLayouts() throws {
        for m in [try Self.gpt2(["c_attn", "c_proj", "c_fc"], seed: 2) as LanguageModel,
                  try Self.llama(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], seed: 2)] {
            Self.randomizeAdapters(m, seed: 5)
            let checked = checkModelGradient(m, ids: [1, 5, 2, 9, 3, 3, 0, 10], targets: [5, 2, 9, 3, 3, 0, 10, 4],
                                             mask: [0, 1, 1, 1, 0, 1, 1, 1], positions: [0, 1, 2, 0, 1, 2, 3, 4],
                                             segments: [0, 0, 0, 1, 1, 1, 1, 1], batch: 1, seqLen: 8, samplesPerTensor: 4)
            XCTAssertGreaterThan(checked, 60)
        }
    }

    func testCachedDecodingWithAdaptersEqualsFullForward() throws {
        let g = try Self.gpt2(["c_attn", "c_proj", "c_fc"])
        let l = try Self.llama(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        Self.randomizeAdapters(g, seed: 6)
        Self.randomizeAdapters(l, seed: 7)
        checkCachedDecoding(g, a: [1, 7, 3, 9, 2, 2, 11, 0, 5], b: [4, 4, 8, 12, 6], label: "gpt2+lora")
        checkCachedDecoding(l, a: [1, 7, 3, 9, 2, 2, 11, 0, 5], b: [4, 4, 8, 12, 6], label: "llama+lora")
    }

    func testUnknownTargetIsNamedWithTheModelsModules() {
        XCTAssertThrowsError(try LoRAConfig(rank: 2, alpha: 3, targets: ["c_attn", "q_proj"]).resolved(for: .gpt2, plan: Self.gpt2Config.layoutPlan)) {
            XCTAssertEqual("\($0)", "--lora-targets: the gpt2 model has no adaptable module \"q_proj\" (LoRA adapts its block projections: c_attn, c_proj, c_fc)")
        }
        XCTAssertThrowsError(try LoRAConfig(rank: 2, alpha: 3, targets: ["lm_head"]).resolved(for: .llama("qwen2"), plan: Self.llamaConfig.layoutPlan)) {
            XCTAssertEqual("\($0)", "--lora-targets: the qwen2 model has no adaptable module \"lm_head\" (LoRA adapts its block projections: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)")
        }
    }

    /// A rank above a target's smaller dimension is refused naming it (65536 once made a
    /// 1.3 M-parameter model 169 M); a rank at it is accepted; a target named twice is one.
    func testRankAboveAModulesWidthIsRefusedAndTargetsAreASet() throws {
        let plan = Self.gpt2Config.layoutPlan
        let width = Self.gpt2Config.embedDim
        XCTAssertThrowsError(try LoRAConfig(rank: width + 1, alpha: 3, targets: ["c_attn"]).resolved(for: .gpt2, plan: plan)) {
            XCTAssertEqual("\($0)", "LoRA rank \(width + 1) is more than attn.c_attn's \(width) input features: an update of that rank has more parameters than the weight and is no longer low-rank; give a rank ≤ \(width)")
        }
        XCTAssertNoThrow(try LoRAConfig(rank: width, alpha: 3, targets: ["c_attn"]).resolved(for: .gpt2, plan: plan))
        XCTAssertEqual(try LoRAConfig(rank: 2, alpha: 3, targets: ["c_attn", "c_fc", "c_attn"]).resolved(for: .gpt2, plan: plan).targets, ["c_attn", "c_fc"])
    }

    /// peft matches targets against full module names: names of one module in every layer are
    /// that module (same adapter tensors as the short name); in some layers only, refused
    /// naming the layers, as adapters here go on a module in every layer.
    func testFullModuleNamesCoveringEveryLayerAreThatModule() throws {
        let plan = Self.gpt2Config.layoutPlan
        for targets in [["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"], ["h.1.attn.c_attn", "h.0.attn.c_attn"]] {
            let lora = try LoRAConfig(rank: 2, alpha: 3, targets: targets).resolved(for: .gpt2, plan: plan)
            XCTAssertEqual(lora.targets, ["attn.c_attn"], "\(targets)")
        }
        let full = try Self.llama(["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj", "v_proj"])
        XCTAssertEqual(full.parameters.entries.map(\.name), try Self.llama(["q_proj", "v_proj"]).parameters.entries.map(\.name))
        XCTAssertThrowsError(try LoRAConfig(rank: 2, alpha: 3, targets: ["transformer.h.0.attn.c_attn"]).resolved(for: .gpt2, plan: plan)) {
            XCTAssertEqual("\($0)", "--lora-targets: \"transformer.h.0.attn.c_attn\" names attn.c_attn in layer 0 of 2 only; sft-dist adapts a module in every layer (name it \"attn.c_attn\")")
        }
    }
}
