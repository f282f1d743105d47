import TensorCore

/// A model whose logits are one linear projection of its last hidden state. The trainer
/// then fuses that projection with a row-local objective over chunks of rows
/// (`Tape.fusedHead`), so the [B·T, V] logits are never stored whole.
public protocol HiddenStateModel: LanguageModel {
    /// Everything up to the output projection: logits = hidden · op(head) with `layout`.
    func forwardHidden(_ tape: Tape, inputs: [Int32], positions: [Int32], segments: [Int32]?,
                       batch: Int, seqLen: Int) -> (hidden: Tensor, head: Tensor, layout: WeightLayout)
}
