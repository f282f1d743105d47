import XCTest
@testable import TensorCore

/// The ops of the Llama family's packed projections: rotary in place on q|k of a packed
/// q|k|v, grouped-query attention reading q, k, v as column blocks of it, SwiGLU on a packed
/// gate|up, and LoRA terms of several adapters on one input (one A GEMM). Each by finite
/// differences and against the one-by-one ops it replaces.
final class PackedProjectionOpTests: XCTestCase {
    var rng = RNG(seed: 23)
    // 4 query heads over 2 kv heads (grouped), head dimension 4.
    let (heads, kvHeads, hd, batch, seqLen) = (4, 2, 4, 2, 5)
    let positions: [Int32] = [0, 1, 2, 0, 1, 3, 4, 5, 0, 1]
    let segments: [Int32] = [0, 0, 0, 1, 1, 0, 0, 0, 0, 1]

    /// x·Wᵀ → rotary on q|k in place → packed attention, against q, k, v projected, rotated
    /// and attended one by one (the same ops the unpacked Llama path runs).
    func packedAttention(_ t: Tape, _ x: Tensor, _ w: Tensor) -> Tensor {
        let qkv = t.linear(x, weight: w, layout: .outIn)
        t.rotaryInPlace(qkv, positions: positions, heads: heads + kvHeads, headDim: hd, theta: 50)
        return t.causalSelfAttention(qkv: qkv, batch: batch, seqLen: seqLen, heads: heads, kvHeads: kvHeads,
                                     headDim: hd, segments: segments)
    }

    func testPackedAttentionGradients() {
        let x = randomTensor([batch * seqLen, 6], &rng), w = randomTensor([(heads + 2 * kvHeads) * hd, 6], &rng, std: 0.5)
        checkGradients([x, w], eps: 1e-2) { self.packedAttention($0, x, w) }
    }

    func testPackedAttentionEqualsOneByOne() {
        let ic = 6, qw = heads * hd, kw = kvHeads * hd
        let x = randomTensor([batch * seqLen, ic], &rng), w = randomTensor([qw + 2 * kw, ic], &rng, std: 0.5)
        let parts = [0..<qw, qw..<(qw + kw), (qw + kw)..<(qw + 2 * kw)].map { rows in
            Tensor(shape: [rows.count, ic], values: Array(w.values[(rows.lowerBound * ic)..<(rows.upperBound * ic)]), requiresGrad: true)
        }
        let seed = (0..<(batch * seqLen * qw)).map { _ in rng.normal() }
        func run(_ build: (Tape) -> Tensor) -> (out: [Float], dx: [Float]) {
            x.grad.update(repeating: 0, count: x.count)
            let t = Tape(), out = build(t)
            seed.withUnsafeBufferPointer { t.backward(from: out, seed: $0.baseAddress!) }
            return (out.values, x.gradValues)
        }
        let packed = run { self.packedAttention($0, x, w) }
        let dw = w.gradValues
        let single = run { t in
            let q = t.rotary(t.linear(x, weight: parts[0], layout: .outIn), positions: positions, heads: heads, headDim: hd, theta: 50)
            let k = t.rotary(t.linear(x, weight: parts[1], layout: .outIn), positions: positions, heads: kvHeads, headDim: hd, theta: 50)
            return t.causalSelfAttention(q: q, k: k, v: t.linear(x, weight: parts[2], layout: .outIn), batch: batch,
                                         seqLen: seqLen, heads: heads, kvHeads: kvHeads, segments: segments)
        }
        assertClose(packed.out, single.out, "output")
        assertClose(packed.dx, single.dx, "dx")
        assertClose(dw, parts.flatMap(\.gradValues), "dW (packed rows = q | k | v)")
    }

    func testPackedSwiGLUGradientsAndValues() {
        let gu = randomTensor([3, 2 * 9], &rng, std: 2)
        checkGradients([gu], eps: 1e-3) { $0.swiglu(gateUp: gu) }
        let gate = Tensor(shape: [3, 9], values: (0..<27).map { gu.data[($0 / 9) * 18 + $0 % 9] })
        let up = Tensor(shape: [3, 9], values: (0..<27).map { gu.data[($0 / 9) * 18 + 9 + $0 % 9] })
        let t = Tape(recording: false)
        XCTAssertEqual(t.swiglu(gateUp: gu).values, t.swiglu(gate: gate, up: up).values, "packed = separate, bit for bit")
    }

    /// Adapters on the first and last of three column blocks (q and v, peft's default for
    /// Llama), the middle one without: every input by finite differences, frozen or trainable W.
    func testLoRATermsOnColumnBlocksGradients() {
        let (n, ic, r) = (5, 6, 2), blocks = [4, 3, 3]
        for frozen in [true, false] {
            let x = randomTensor([n, ic], &rng), w = randomTensor([blocks.reduce(0, +), ic], &rng, requiresGrad: !frozen)
            let a0 = randomTensor([r, ic], &rng), b0 = randomTensor([blocks[0], r], &rng)
            let a2 = randomTensor([r, ic], &rng), b2 = randomTensor([blocks[2], r], &rng)
            let members = [LoRAGroupMember(adapter: LoRAAdapter(a: a0, b: b0, scaling: 1.5), column: 0),
                           LoRAGroupMember(adapter: LoRAAdapter(a: a2, b: b2, scaling: 1.5), column: blocks[0] + blocks[1])]
            checkGradients(frozen ? [x, a0, b0, a2, b2] : [x, w, a0, b0, a2, b2]) { t in
                let out = t.linear(x, weight: w, layout: .outIn)
                t.addLoRATerms(into: out, input: x, members: members)
                return out
            }
            XCTAssertEqual(w.hasGrad, !frozen)
        }
    }

    /// The packed terms equal `loraLinear` per block (values and every gradient), also when
    /// the input needs no gradient (the first block of a LoRA run: frozen embeddings), at a rank
    /// the GEMMs serve and one the one-pass output-side kernel serves.
    func testLoRATermsEqualLoRALinearPerBlock() {
        let (n, ic) = (7, 5), blocks = [4, 2, 2]
        for (inputTrains, r) in [(true, 3), (false, 3), (true, 8), (false, 8)] {  // rank 8: LoRAOutputGradients
            let x = randomTensor([n, ic], &rng, requiresGrad: inputTrains)
            let ws = blocks.map { randomTensor([$0, ic], &rng, requiresGrad: false) }
            let adapters = blocks.map { LoRAAdapter(a: randomTensor([r, ic], &rng), b: randomTensor([$0, r], &rng), scaling: 0.5) }
            let packedW = Tensor(shape: [blocks.reduce(0, +), ic], values: ws.flatMap(\.values))
            let dout = (0..<(n * blocks.reduce(0, +))).map { _ in rng.normal() }
            let grads = { adapters.flatMap { $0.a.gradValues + $0.b.gradValues } + (inputTrains ? x.gradValues : []) }
            func zero() { for t in [x] + adapters.flatMap({ [$0.a, $0.b] }) { t.grad.update(repeating: 0, count: t.count) } }

            zero()
            let t1 = Tape(), packed = t1.linear(x, weight: packedW, layout: .outIn)
            var column = 0
            t1.addLoRATerms(into: packed, input: x, members: zip(blocks, adapters).map { oc, a in
                defer { column += oc }
                return LoRAGroupMember(adapter: a, column: column)
            })
            dout.withUnsafeBufferPointer { t1.backward(from: packed, seed: $0.baseAddress!) }
            let packedGrads = grads()

            zero()
            let t2 = Tape(), outs = zip(ws, adapters).map { t2.loraLinear(x, weight: $0, layout: .outIn, adapter: $1) }
            let total = blocks.reduce(0, +)
            var off = 0
            for (o, oc) in zip(outs, blocks) {  // each block's share of the packed seed
                for row in 0..<n { for j in 0..<oc { o.grad[row * oc + j] = dout[row * total + off + j] } }
                off += oc
            }
            t2.backward()
            let single = (0..<n).flatMap { row in zip(outs, blocks).flatMap { o, oc in o.values[(row * oc)..<((row + 1) * oc)] } }
            assertClose(packed.values, single, "output, input trains: \(inputTrains), rank \(r)")
            assertClose(packedGrads, grads(), "gradients, input trains: \(inputTrains), rank \(r)")
        }
    }

    func testAdjacentRowsOnlyForBackToBackTensorsOfOneTrainability() {
        let store = ParameterStore(layout: [("q", [4, 8]), ("k", [2, 8]), ("pad", [3]), ("v", [2, 8])])
        let fused = Tensor.adjacentRows([store["q"], store["k"]])
        XCTAssertEqual(fused?.shape, [6, 8])
        XCTAssertTrue(fused?.data == store["q"].data && fused?.grad == store["q"].grad)
        XCTAssertNil(Tensor.adjacentRows([store["q"], store["k"], store["v"]]), "a tensor between them")
        XCTAssertNil(Tensor.adjacentRows([store["k"], store["q"]]), "out of order")
        store["k"].requiresGrad = false
        XCTAssertNil(Tensor.adjacentRows([store["q"], store["k"]]), "one trainable, one frozen")
        store["q"].requiresGrad = false
        XCTAssertEqual(Tensor.adjacentRows([store["q"], store["k"]])?.requiresGrad, false)
    }

    func assertClose(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let scale = max(b.map(abs).max() ?? 0, 1)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 1e-5 * scale, "\(what): max difference \(worst)", file: file, line: line)
    }
}

/// The one-pass output-side LoRA gradients (Ops/LoRAOutputGradients.swift) against the two
/// GEMMs they replace, at ranks 8 and 16, strided operands, row counts that leave a tail of
/// the 4-row blocks, and 1 and 2 threads.
final class LoRAOutputGradientsTests: XCTestCase {
    func testEqualsTheTwoGEMMs() {
        var rng = RNG(seed: 41)
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        for (threads, n, oc, r) in [(1, 7, 5, 8), (1, 130, 24, 16), (2, 131, 9, 8)] {
            Parallel.threads = threads
            let ldo = oc + 3, ldu = r + 8, s: Float = 0.75
            let dout = (0..<(n * ldo)).map { _ in rng.normal() }, u = (0..<(n * ldu)).map { _ in rng.normal() }
            let b = (0..<(oc * r)).map { _ in rng.normal() }, db0 = (0..<(oc * r)).map { _ in rng.normal() }
            var du = [Float](repeating: 0, count: n * ldu), db = db0
            var duRef = du, dbRef = db0
            var duOnly = du  // a frozen B: du alone (the kernel's loop without dB)
            dout.withUnsafeBufferPointer { d in u.withUnsafeBufferPointer { uu in b.withUnsafeBufferPointer { bb in
                LoRAOutputGradients.run(du: &du, lddu: ldu, db: &db, dout: d.baseAddress!, ldo: ldo, u: uu.baseAddress!, ldu: ldu,
                                        b: bb.baseAddress!, scaling: s, n: n, outFeatures: oc, rank: r)
                LoRAOutputGradients.run(du: &duOnly, lddu: ldu, db: nil, dout: d.baseAddress!, ldo: ldo, u: uu.baseAddress!,
                                        ldu: ldu, b: bb.baseAddress!, scaling: s, n: n, outFeatures: oc, rank: r)
                BLAS.gemm(transA: true, transB: false, m: oc, n: r, k: n, alpha: s, a: d.baseAddress!, lda: ldo,
                          b: uu.baseAddress!, ldb: ldu, beta: 1, c: &dbRef, ldc: r)
                BLAS.gemm(transA: false, transB: false, m: n, n: r, k: oc, alpha: s, a: d.baseAddress!, lda: ldo,
                          b: bb.baseAddress!, ldb: r, beta: 0, c: &duRef, ldc: ldu)
            } } }
            XCTAssertEqual(duOnly, du, "du without dB, threads \(threads), n \(n), oc \(oc), r \(r)")
            for (got, want, what) in [(du, duRef, "du"), (db, dbRef, "dB")] {
                let worst = zip(got, want).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-4 * max(1, want.map(abs).max() ?? 0), "\(what), threads \(threads), n \(n), oc \(oc), r \(r)")
            }
        }
    }
}
