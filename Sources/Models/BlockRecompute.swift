import TensorCore

/// `--recompute` (activation checkpointing per transformer block, `Tape.recomputed`): a model
/// whose blocks can be re-run in backward keeps only each block's input and output; the
/// block's own activations live in `recomputeArena`, one block at a time.
public protocol BlockRecomputing: AnyObject {
    var recomputeArena: Arena? { get set }
    var parameters: ParameterStore { get }
}

extension GPT2: BlockRecomputing {}
extension Llama: BlockRecomputing {}

extension BlockRecomputing {
    /// Runs transformer block `prefix` on `x`: directly, or re-run in backward with
    /// `--recompute` (when recording; a forward without a tape keeps nothing anyway).
    func runBlock(_ tape: Tape, _ x: Tensor, prefix: String, _ block: @escaping (Tape, Tensor) -> Tensor) -> Tensor {
        guard let scratch = recomputeArena, tape.recording else { return block(tape, x) }
        let params = parameters.entries.filter { $0.name.hasPrefix(prefix) }.map { parameters[$0.name] }
        return tape.recomputed(x, parameters: params, scratch: scratch, replayingForwardState(block))
    }

    /// `block` reads per-forward state of the model — LoRA dropout's masks, which the trainer
    /// sets around the forward pass and clears before backward — so the re-run in backward
    /// puts back what this forward saw; otherwise it would differentiate the block without
    /// dropout while the loss came from the block with it.
    func replayingForwardState(_ block: @escaping (Tape, Tensor) -> Tensor) -> (Tape, Tensor) -> Tensor {
        guard let adapted = self as? LoRAAdaptable, let dropout = adapted.loraDropout else { return block }
        return { tape, x in
            let was = adapted.loraDropout
            adapted.loraDropout = dropout
            defer { adapted.loraDropout = was }
            return block(tape, x)
        }
    }
}
