import XCTest
@testable import Models
import TensorCore

/// Wraps a model without its KV-cache decoding, so `Generator` takes the full-recomputation
/// path: the reference the cached path is compared against.
final class UncachedModel: LanguageModel {
    let inner: LanguageModel
    init(_ m: LanguageModel) { inner = m }
    var parameters: ParameterStore { inner.parameters }
    var generationConfig: GenerationConfig?
    var vocabSize: Int { inner.vocabSize }
    var maxSequenceLength: Int { inner.maxSequenceLength }
    var configJSON: [String: Any] { inner.configJSON }
    func makeReplica() -> LanguageModel { inner.makeReplica() }
    var blockRanges: [Range<Int>] { inner.blockRanges }
    func forward(_ tape: Tape, inputs: [Int32], positions: [Int32], segments: [Int32]?, batch: Int, seqLen: Int) -> Tensor {
        inner.forward(tape, inputs: inputs, positions: positions, segments: segments, batch: batch, seqLen: seqLen)
    }
}

/// Prefill in pieces, then single tokens, for two rows of different lengths at once (`a` 9
/// tokens, `b` 5): every new position's logits must equal a full recomputation within 1e-5.
func checkCachedDecoding(_ model: IncrementalDecoder, a: [Int32], b: [Int32], label: String,
                         file: StaticString = #filePath, line: UInt = #line) {
    func fullLogits(_ seq: [Int32]) -> [Float] {
        model.forward(Tape(recording: false), inputs: seq, batch: 1, seqLen: seq.count).values
    }
    let cache = model.makeCache(rows: 2, capacity: 16)
    let V = model.vocabSize
    var fedA = 0, fedB = 0
    for (na, nb) in [(4, 2), (2, 1), (1, 1), (1, 1), (1, 0)] {
        var segs: [DecodeSegment] = []
        if na > 0 { segs.append(DecodeSegment(row: 0, tokens: Array(a[fedA..<(fedA + na)]))) }
        if nb > 0 { segs.append(DecodeSegment(row: 1, tokens: Array(b[fedB..<(fedB + nb)]))) }
        let got = model.decode(segs, cache: cache)
        let fa = fullLogits(Array(a[0..<(fedA + na)])), fb = nb > 0 ? fullLogits(Array(b[0..<(fedB + nb)])) : []
        var worst: Float = 0
        for i in 0..<(na * V) { worst = max(worst, abs(got[i] - fa[fedA * V + i])) }
        for i in 0..<(nb * V) { worst = max(worst, abs(got[na * V + i] - fb[fedB * V + i])) }
        XCTAssertLessThanOrEqual(worst, 1e-5, "\(label): step at \(fedA)/\(fedB)", file: file, line: line)
        fedA += na; fedB += nb
    }
    XCTAssertEqual(cache.length, [9, 5], file: file, line: line)
}
