import TensorCore

/// NEFTune (Jain et al., "NEFTune: Noisy Embeddings Improve Instruction Finetuning", arXiv
/// 2310.05914, Algorithm 1): in training forwards only, the token embeddings get uniform noise
/// (α/√(L·d))·ε, ε ~ U(−1, 1), L the sequence's length and d the embedding width. transformers'
/// `neftune_noise_alpha` hook (integrations/neftune.py) takes L as the padded batch's length
/// (`output.size(1)`); here L is each sequence's own length — its tokens as `input_ids` would
/// hold them — which is the paper's L and does not change with padding, packing, micro-batches
/// or the rank count. For one unpadded sequence the two are the same.
public struct NEFTuneNoise {
    public var alpha: Double
    public var salt: UInt64
    /// Per row of the pass: its key (sequence and position in the step batch) and its
    /// sequence's length L (0 on padding, which gets no noise).
    public var rowKeys: [UInt64]
    public var sequenceLengths: [Int]

    public init(alpha: Double, salt: UInt64, rowKeys: [UInt64], sequenceLengths: [Int]) {
        self.alpha = alpha; self.salt = salt; self.rowKeys = rowKeys; self.sequenceLengths = sequenceLengths
    }

    /// The noise for embeddings d wide: m_r = α/√(L_r·d).
    public func noise(width d: Int) -> UniformNoise {
        UniformNoise(salt: salt, rowKeys: rowKeys, magnitudes: sequenceLengths.map {
            $0 > 0 ? Float(alpha / (Double($0) * Double(d)).squareRoot()) : 0
        })
    }
}

/// A model whose token embeddings take NEFTune's noise: set by the trainer around a training
/// forward, nil otherwise (evaluation, reference models, decoding).
public protocol NoisyEmbeddings: LanguageModel {
    var embeddingNoise: NEFTuneNoise? { get set }
}

extension NoisyEmbeddings {
    /// The embeddings x [B·T, C] with the noise added, or x itself when there is none.
    func noisedEmbeddings(_ tape: Tape, _ x: Tensor) -> Tensor {
        guard let n = embeddingNoise, n.alpha > 0 else { return x }
        return tape.addingNoise(x, n.noise(width: x.columns))
    }
}
