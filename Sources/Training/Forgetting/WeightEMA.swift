import Models
import TensorCore

/// `--ema DECAY`: an exponential moving average of the trained weights,
///   θ̄ ← d·θ̄ + (1 − d)·θ   after every optimizer step (skipped steps leave it alone),
/// starting from the initial weights (Polyak & Juditsky 1992's iterate averaging in its
/// exponential form; "model averaging" is one of the forgetting baselines of "SFT Doesn't
/// Always Hurt General Capabilities", arXiv 2509.20758, §5). Only the trainable ranges move;
/// frozen weights equal the model's. Every rank keeps the same average (it reads replicated
/// weights), it is a stateful component (`ema`, checkpointed and restored bit for bit), and
/// the run saves it as `OUT/model-ema/` beside `OUT/model/`.
public final class WeightEMA {
    public let decay: Float
    /// A replica of the model holding the average, so it saves as a model directory.
    public let average: LanguageModel
    public let snapshot: ParameterSnapshot

    public init(decay: Float, model: LanguageModel) {
        self.decay = decay
        average = model.makeReplica()
        average.copyParameters(from: model)
        snapshot = ParameterSnapshot("ema", parameters: average.parameters)
    }

    /// One update after an optimizer step over `ranges` of `params`.
    public func update(from params: ParameterStore, ranges: [Range<Int>]) {
        let p = params.values, e = average.parameters.values
        let keep = decay, take = 1 - decay
        for r in ranges {
            for i in r { e[i] = keep * e[i] + take * p[i] }
        }
    }
}
