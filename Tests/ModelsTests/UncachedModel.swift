@testable import Models
import TensorCore

/// Wraps a model without its KV-cache decoding, so `Generator` takes the full-recomputation
/// path: the reference the cached path is compared against.
final class UncachedModel: LanguageModel {
    let inner: LanguageModel
    init(_ m: LanguageModel) { inner = m }
    var parameters: ParameterStore { inner.parameters }
    var vocabSize: Int { inner.vocabSize }
    var maxSequenceLength: Int { inner.maxSequenceLength }
    var configJSON: [String: Any] { inner.configJSON }
    func makeReplica() -> LanguageModel { inner.makeReplica() }
    var blockRanges: [Range<Int>] { inner.blockRanges }
    func forward(_ tape: Tape, inputs: [Int32], positions: [Int32], segments: [Int32]?, batch: Int, seqLen: Int) -> Tensor {
        inner.forward(tape, inputs: inputs, positions: positions, segments: segments, batch: batch, seqLen: seqLen)
    }
}
