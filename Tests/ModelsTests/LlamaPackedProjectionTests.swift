import XCTest
@testable import Models
@testable import TensorCore

/// The Llama path's packed projections (`projectPacked`: q|k|v and gate|up as one GEMM each,
/// LoRA's A's of a group as one GEMM): the same loss and gradients as projecting one by one
/// (`packsProjections = false`), with and without adapters, adapter dropout and frozen base;
/// finite differences through a bias-free model (the packed path); Qwen2's interleaved q/k/v
/// biases keep the one-by-one path.
final class LlamaPackedProjectionTests: XCTestCase {
    static let config = LlamaConfig(family: .llama, vocabSize: 13, hiddenSize: 8, intermediateSize: 12, layers: 2,
                                    heads: 4, kvHeads: 2, maxPositions: 16, ropeTheta: 100, tieWordEmbeddings: false)
    let ids: [Int32] = [1, 5, 2, 9, 3, 3, 0, 10], targets: [Int32] = [5, 2, 9, 3, 3, 0, 10, 4]
    let mask: [Float] = [0, 1, 1, 1, 0, 1, 1, 1]
    let positions: [Int32] = [0, 1, 2, 0, 1, 2, 3, 4], segments: [Int32] = [0, 0, 0, 1, 1, 1, 1, 1]

    static func model(targets: [String]?, seed: UInt64, config: LlamaConfig = config) throws -> Llama {
        let lora = try targets.map { try LoRAConfig(rank: 2, alpha: 3, targets: $0).resolved(for: .llama("llama"), plan: config.layoutPlan) }
        let m = Llama(config: config, seed: seed, lora: lora)
        var rng = RNG(seed: seed &+ 31)  // large weights and random B: every term matters
        for e in m.parameters.entries where !e.name.hasSuffix("norm.weight") {
            for i in 0..<e.count { m.parameters.values[e.offset + i] = rng.normal() * 0.3 }
        }
        return m
    }

    /// Loss and the trainable gradients of one forward/backward on an arena tape.
    func lossAndGradients(_ m: Llama, packed: Bool, trainable: TrainableSet) -> (Float, [Float]) {
        m.packsProjections = packed
        trainable.apply(to: m.parameters)
        m.parameters.zeroGrads()
        let arena = Arena()
        arena.reset()
        let tape = Tape(arena: arena)
        let logits = m.forward(tape, inputs: ids, positions: positions, segments: segments, batch: 1, seqLen: 8)
        let loss = tape.crossEntropy(logits, targets: targets, mask: mask, normalizer: 6)
        let value = loss.item
        tape.backward(from: loss)
        return (value, trainable.ranges.flatMap { Array(m.parameters.gradBuffer[$0]) })
    }

    /// `nonzero`: gradients expected nonzero (default: more than half of the trainable ranges,
    /// which the store pads per tensor).
    func assertPackedEqualsOneByOne(_ m: Llama, trainable: TrainableSet, _ label: String, nonzero: Int? = nil) {
        let (l1, g1) = lossAndGradients(m, packed: true, trainable: trainable)
        let (l0, g0) = lossAndGradients(m, packed: false, trainable: trainable)
        XCTAssertEqual(l1, l0, accuracy: 1e-5 * max(1, abs(l0)), label)
        let scale = max(g0.map(abs).max() ?? 0, 1e-3)
        let worst = zip(g1, g0).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 1e-5 * scale, "\(label): gradients differ by \(worst) (largest \(scale))")
        XCTAssertGreaterThanOrEqual(g0.filter { $0 != 0 }.count, nonzero ?? g0.count / 2 + 1, "\(label): gradients mostly zero")
    }

    func testFullFineTuningPackedEqualsOneByOne() throws {
        let m = try Self.model(targets: nil, seed: 3)
        assertPackedEqualsOneByOne(m, trainable: .all(m.parameters), "full")
    }

    func testLoRAPackedEqualsOneByOne() throws {
        for targets in [["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], ["q_proj", "v_proj"], ["k_proj", "up_proj"]] {
            let m = try Self.model(targets: targets, seed: 4)
            let adapters = TrainableSet(m.parameters) { LoRAConfig.isAdapterName($0.name) }
            assertPackedEqualsOneByOne(m, trainable: adapters, "LoRA \(targets), frozen base")
            assertPackedEqualsOneByOne(m, trainable: .all(m.parameters), "LoRA \(targets), base trains too")
            m.loraDropout = LoRADropoutContext(probability: 0.4, salt: 11, rowKeys: (0..<8).map { UInt64($0) * 977 })
            assertPackedEqualsOneByOne(m, trainable: adapters, "LoRA \(targets), dropout 0.4")
        }
    }

    /// Qwen3's QK-Norm runs in place on q|k of the packed GEMM's output, and on q and k apart
    /// one by one: same loss and gradients, the norms' own weights included (and alone trained).
    func testQwen3QKNormPackedEqualsOneByOne() throws {
        let qwen3 = LlamaConfig(family: .qwen3, vocabSize: 13, hiddenSize: 8, intermediateSize: 12, layers: 2,
                                heads: 4, kvHeads: 2, headDim: 4, maxPositions: 16, ropeTheta: 100, tieWordEmbeddings: true)
        let full = try Self.model(targets: nil, seed: 6, config: qwen3)
        for e in full.parameters.entries where e.name.hasSuffix("_norm.weight") {  // away from 1 so the weights matter
            for i in 0..<e.count { full.parameters.values[e.offset + i] = 1 + 0.3 * Float(i % 3) - 0.2 * Float(e.offset % 2) }
        }
        assertPackedEqualsOneByOne(full, trainable: .all(full.parameters), "qwen3 full")
        assertPackedEqualsOneByOne(full, trainable: TrainableSet(full.parameters) { $0.name.hasSuffix("self_attn.q_norm.weight") || $0.name.hasSuffix("self_attn.k_norm.weight") },
                                   "qwen3, only q_norm and k_norm train", nonzero: 2 * 2 * 4)
        let lora = try Self.model(targets: ["q_proj", "k_proj", "v_proj"], seed: 7, config: qwen3)
        assertPackedEqualsOneByOne(lora, trainable: TrainableSet(lora.parameters) { LoRAConfig.isAdapterName($0.name) }, "qwen3 LoRA, frozen base")
    }

    func testPackedModelGradientByFiniteDifferences() throws {
        let m = try Self.model(targets: nil, seed: 5)
        XCTAssertNotNil(m.projectPacked(Tape(recording: false), ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                                                                  "model.layers.0.self_attn.v_proj"],
                                        Tensor(zeros: [1, 8])), "the bias-free model takes the packed path")
        let checked = checkModelGradient(m, ids: ids, targets: targets, mask: mask, positions: positions,
                                         segments: segments, batch: 1, seqLen: 8, samplesPerTensor: 5)
        XCTAssertGreaterThan(checked, 60)
    }

    func testQwen2InterleavedBiasesProjectOneByOne() {
        let m = Llama(config: LlamaConfig(family: .qwen2, vocabSize: 13, hiddenSize: 8, intermediateSize: 12, layers: 1,
                                          heads: 4, kvHeads: 2, maxPositions: 16), seed: 1)
        let attn = "model.layers.0.self_attn."
        XCTAssertNil(m.projectPacked(Tape(recording: false), [attn + "q_proj", attn + "k_proj", attn + "v_proj"], Tensor(zeros: [1, 8])))
        XCTAssertNotNil(m.projectPacked(Tape(recording: false), ["model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"],
                                        Tensor(zeros: [1, 8])), "Qwen2's MLP has no biases: gate|up still packs")
    }
}
