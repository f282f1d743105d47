import XCTest
@testable import Models
@testable import TensorCore

final class LlamaTests: XCTestCase {
    /// Finite differences through the whole decoder (GQA, q/k/v biases, tied and untied heads,
    /// packed segments): loss = masked CE of the logits.
    func checkWholeModelGradient(_ config: LlamaConfig, seed: UInt64) {
        let model = Llama(config: config, seed: seed)
        // Matrices N(0, 0.2) so gradients stand well above float32 noise; norm gains 1 ± 0.2 and
        // biases nonzero so their gradients are exercised.
        var rng = RNG(seed: seed &+ 99)
        for e in model.parameters.entries {
            let t = model.parameters[e.name]
            let norm = e.name.hasSuffix("norm.weight")
            for i in 0..<t.count { t.data[i] = (norm ? 1 : 0) + rng.normal() * 0.2 }
        }
        let ids: [Int32] = [1, 5, 2, 9, 3, 3, 0, 10]
        let targets: [Int32] = [5, 2, 9, 3, 3, 0, 10, 4]
        let mask: [Float] = [0, 1, 1, 1, 0, 1, 1, 1]
        let positions: [Int32] = [0, 1, 2, 0, 1, 2, 3, 4]
        let segments: [Int32] = [0, 0, 0, 1, 1, 1, 1, 1]
        let checked = checkModelGradient(model, ids: ids, targets: targets, mask: mask, positions: positions,
                                         segments: segments, batch: 1, seqLen: 8, samplesPerTensor: 5)
        XCTAssertGreaterThan(checked, 60)
    }

    func testQwen2StyleGradient() {
        checkWholeModelGradient(LlamaConfig(family: .qwen2, vocabSize: 11, hiddenSize: 8, intermediateSize: 12, layers: 2,
                                            heads: 4, kvHeads: 2, maxPositions: 16, ropeTheta: 100, tieWordEmbeddings: true),
                                seed: 3)
    }

    /// Qwen3: QK-Norm (a [head_dim] RMSNorm weight per layer for q and for k), head_dim 6 where
    /// hidden_size / heads is 4, no biases (the packed q|k|v path).
    func testQwen3StyleGradient() {
        checkWholeModelGradient(LlamaConfig(family: .qwen3, vocabSize: 11, hiddenSize: 8, intermediateSize: 12, layers: 2,
                                            heads: 2, kvHeads: 1, headDim: 6, maxPositions: 16, ropeTheta: 100,
                                            tieWordEmbeddings: true),
                                seed: 9)
    }

    func testLlamaStyleUntiedWithAllBiasesGradient() {
        checkWholeModelGradient(LlamaConfig(family: .llama, vocabSize: 11, hiddenSize: 8, intermediateSize: 12, layers: 1,
                                            heads: 2, kvHeads: 1, headDim: 6, maxPositions: 16, ropeTheta: 50,
                                            tieWordEmbeddings: false, qkvBias: true, oBias: true, mlpBias: true),
                                seed: 5)
    }

    /// The trainer's fast path: an arena tape and the fused LM head (forwardHidden + fusedHead)
    /// give the plain tape's loss and parameter gradients.
    func testArenaAndFusedHeadMatchPlainTape() {
        let model = Llama(config: LlamaConfig(family: .qwen2, vocabSize: 13, hiddenSize: 8, intermediateSize: 12, layers: 2,
                                              heads: 4, kvHeads: 2, maxPositions: 16, tieWordEmbeddings: false), seed: 7)
        let ids: [Int32] = [1, 5, 2, 9, 3, 3, 0, 10], targets: [Int32] = [5, 2, 9, 3, 3, 0, 10, 4]
        let mask: [Float] = [0, 1, 1, 1, 0, 1, 1, 1]
        let positions: [Int32] = [0, 1, 2, 0, 1, 2, 3, 4], segments: [Int32] = [0, 0, 0, 1, 1, 1, 1, 1]
        model.parameters.zeroGrads()
        let plain = Tape()
        let loss = plain.crossEntropy(model.forward(plain, inputs: ids, positions: positions, segments: segments, batch: 1, seqLen: 8),
                                      targets: targets, mask: mask, normalizer: 6)
        plain.backward(from: loss)
        let reference = Array(model.parameters.gradBuffer)

        model.parameters.zeroGrads()
        let arena = Arena()
        arena.reset()
        let fused = Tape(arena: arena)
        let (hidden, head, layout) = model.forwardHidden(fused, inputs: ids, positions: positions, segments: segments, batch: 1, seqLen: 8)
        var total = [Double](repeating: 0, count: Parallel.threads)  // one slot per worker thread
        total.withUnsafeMutableBufferPointer { total in
            fused.fusedHead(hidden, weight: head, layout: layout, rowsPerChunk: 3) { t, rows, logits, dlogits in
                total[t] += SoftmaxKernels.crossEntropy(logits: logits, targets: Array(targets[rows]), mask: Array(mask[rows]),
                                                        rows: rows.count, vocab: 13, dlogits: dlogits, scale: 1.0 / 6)
            }
        }
        fused.backward()
        XCTAssertEqual(Float(total.reduce(0, +) / 6), loss.item, accuracy: 1e-5)
        for (a, b) in zip(Array(model.parameters.gradBuffer), reference) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testLayoutUsesHFNamesAndShapes() {
        let c = LlamaConfig(family: .llama, vocabSize: 10, hiddenSize: 8, intermediateSize: 20, layers: 1, heads: 4,
                            kvHeads: 2, maxPositions: 32)
        let layout = Dictionary(uniqueKeysWithValues: c.parameterLayout.map { ($0.name, $0.shape) })
        XCTAssertEqual(layout["model.layers.0.self_attn.q_proj.weight"], [8, 8])
        XCTAssertEqual(layout["model.layers.0.self_attn.k_proj.weight"], [4, 8])
        XCTAssertEqual(layout["model.layers.0.mlp.down_proj.weight"], [8, 20])
        XCTAssertEqual(layout["lm_head.weight"], [10, 8])
        XCTAssertNil(layout["model.layers.0.self_attn.q_proj.bias"])
    }
}
