import XCTest
@testable import TensorCore

/// `linear(residual:)`'s backward hands dout to the residual without a cleared buffer when it
/// holds no gradient yet (`Tensor.receiveResidualGradient`: the output's buffer taken over in
/// the same arena, copied into an uncleared one from another), and adds it otherwise. Every
/// case must give bit for bit the gradients of the same sums spelled as a plain tape's
/// `add(linear(…), residual)` (zeroed buffers, every kernel adding), on fresh and on reused
/// pool buffers.
final class ResidualGradientTests: XCTestCase {
    enum Case: CaseIterable { case fresh, alreadyHeld, residualIsInput, otherArena }

    let (n, c, m) = (5, 6, 9)
    var rng = RNG(seed: 31)
    lazy var x0 = randomTensor([n, c], &rng)
    lazy var w0 = randomTensor([c, c], &rng)
    lazy var w1 = randomTensor([m, c], &rng)
    lazy var w2 = randomTensor([c, m], &rng)
    lazy var w3 = randomTensor([c, c], &rng)
    lazy var seed = (0..<n * c).map { _ in rng.normal() }

    /// h = x0·w0ᵀ; y = h + f(h) through `linear(residual: h)` (or, `spelledOut`, `add`) in the
    /// way `which` says; the seed's gradient of y; returns every parameter's gradient.
    func gradients(_ which: Case, arena: Arena?, other: Arena?, spelledOut: Bool = false) -> [Float] {
        arena?.reset(); other?.reset()
        for p in [x0, w0, w1, w2, w3] { p.grad.update(repeating: 0, count: p.count) }
        let t = Tape(arena: arena), first = which == .otherArena ? Tape(arena: other) : t
        func linear(_ x: Tensor, _ w: Tensor, residual: Tensor) -> Tensor {
            spelledOut ? t.add(t.linear(x, weight: w, layout: .outIn), residual)
                       : t.linear(x, weight: w, layout: .outIn, residual: residual)
        }
        let h = first.linear(x0, weight: w0, layout: .outIn)
        var y: Tensor
        switch which {
        case .fresh, .otherArena:   // h's other consumer runs its backward after the residual link
            y = linear(t.linear(h, weight: w1, layout: .outIn), w2, residual: h)
        case .alreadyHeld:          // a consumer recorded later has written h's gradient first
            y = linear(t.linear(h, weight: w1, layout: .outIn), w2, residual: h)
            y = t.add(y, t.linear(h, weight: w3, layout: .outIn))
        case .residualIsInput:
            y = linear(h, w3, residual: h)
        }
        seed.withUnsafeBufferPointer { t.backward(from: y, seed: $0.baseAddress!) }
        if which == .otherArena { first.backward() }
        return [x0, w0, w1, w2, w3].flatMap(\.gradValues)
    }

    func testEveryWayOfReachingTheResidualGivesThePlainTapesBits() {
        for which in Case.allCases {
            let plain = gradients(which, arena: nil, other: nil, spelledOut: true)
            XCTAssertTrue(plain.contains { $0 != 0 })
            let arena = Arena(), other = Arena()
            XCTAssertEqual(gradients(which, arena: nil, other: nil), plain, "\(which), plain tape")
            for pass in 0..<3 {   // later passes get the pool's buffers back, holding earlier values
                let got = gradients(which, arena: arena, other: which == .otherArena ? other : nil)
                let differing = zip(got, plain).filter { $0 != $1 }.count
                XCTAssertEqual(differing, 0, "\(which), arena pass \(pass): gradient entries differ")
            }
        }
    }
}
