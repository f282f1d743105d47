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
        return tape.recomputed(x, parameters: params, scratch: scratch, block)
    }
}
