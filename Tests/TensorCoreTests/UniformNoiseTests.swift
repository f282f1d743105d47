import XCTest
@testable import TensorCore

/// NEFTune's additive noise (Ops/UniformNoise.swift): finite differences through it, its draws
/// against values computed independently (scripts/neftune_references.py's SplitMix64 in
/// Python), the rows following their keys, the range and moments of U(−m, m), and rows of
/// magnitude 0 (padding) left as they are.
final class UniformNoiseTests: XCTestCase {
    var rng = RNG(seed: 23)

    func testGradientsPassThroughTheNoise() {
        let x = randomTensor([5, 6], &rng)
        let noise = UniformNoise(salt: 3, rowKeys: (0..<5).map { UInt64($0) &* 11 }, magnitudes: [0.5, 0.1, 0, 1, 0.25])
        // Through a non-linearity, so the noise's place in the forward matters to the check.
        checkGradients([x]) { $0.gelu($0.addingNoise(x, noise)) }
    }

    /// ε(r, j) for the first step of a run with seed 1234: the salt and row keys as the trainer
    /// makes them (Trainer+TrainingNoise.swift), the values from Python's reimplementation.
    func testDrawsMatchAnIndependentImplementation() {
        let salt = DropoutMask.key(DropoutMask.key(1234, 0), 0x4E45_4654)
        XCTAssertEqual(salt, 0x8df7_ab74_b12c_c9c8)
        let rows: [(sequence: UInt64, position: UInt64, column: Int, want: Float)] = [
            (0, 0, 0, 0.019003629684448242), (0, 0, 1, 0.013692617416381836),
            (0, 3, 63, 0.537199854850769), (5, 2, 7, 0.18918967247009277),
        ]
        let noise = UniformNoise(salt: salt, rowKeys: rows.map { DropoutMask.key($0.sequence, $0.position) },
                                 magnitudes: rows.map { _ in 1 })
        for (r, row) in rows.enumerated() { XCTAssertEqual(noise.unit(row: r, column: row.column), row.want, "row \(r)") }
    }

    /// The noise follows the row's key, not its index (rank-count invariance); it lies in
    /// [−m, m) with mean ≈ 0 and variance ≈ m²/3; a row of magnitude 0 is copied exactly.
    func testNoiseFollowsRowKeysWithUniformMoments() {
        let (n, c) = (300, 32)
        let x = randomTensor([n, c], &rng, requiresGrad: false)
        let keys = (0..<n).map { UInt64($0) &* 0x9E37_79B9 }
        let mags: [Float] = (0..<n).map { $0 % 3 == 0 ? 0 : 0.5 }
        let out = Tape(recording: false).addingNoise(x, UniformNoise(salt: 17, rowKeys: keys, magnitudes: mags))
        let perm = Array((0..<n).reversed())
        let xr = Tensor(shape: x.shape, values: perm.flatMap { r in (0..<c).map { x.data[r * c + $0] } })
        let outR = Tape(recording: false).addingNoise(xr, UniformNoise(salt: 17, rowKeys: perm.map { keys[$0] },
                                                                       magnitudes: perm.map { mags[$0] }))
        var (sum, sumSq, count) = (0.0, 0.0, 0)
        for (i, r) in perm.enumerated() {
            for j in 0..<c {
                XCTAssertEqual(outR.data[i * c + j], out.data[r * c + j])
                let e = out.data[r * c + j] - x.data[r * c + j]
                if mags[r] == 0 { XCTAssertEqual(out.data[r * c + j], x.data[r * c + j]); continue }
                XCTAssertTrue(e >= -0.5 - 1e-6 && e < 0.5 + 1e-6, "noise \(e) outside [−0.5, 0.5)")
                sum += Double(e); sumSq += Double(e * e); count += 1
            }
        }
        XCTAssertEqual(sum / Double(count), 0, accuracy: 0.01)
        XCTAssertEqual(sumSq / Double(count), 0.25 / 3, accuracy: 0.004)
    }
}
