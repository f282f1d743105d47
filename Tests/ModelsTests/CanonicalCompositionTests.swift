import XCTest
@testable import Models

/// NFC against Python's `unicodedata.normalize("NFC", …)` (Unicode 14.0, 2026-12-03), which
/// tokenizers 0.23 agreed with on every case here: the two faults of the normalizers this
/// toolchain has (Foundation's supplementary-plane composition, the standard library's order of
/// U+0F73's marks) and ordinary composition, which must not change.
final class CanonicalCompositionTests: XCTestCase {
    func scalars(_ s: String) -> String { s.unicodeScalars.map { String(format: "%04X", $0.value) }.joined(separator: " ") }

    func testNFCAsPythonComputesIt() {
        let vectors: [(String, String)] = [
            ("\u{10041}\u{0301}", "10041 0301"),                      // Foundation gave 00C1
            ("\u{0F73}\u{0F73}", "0F71 0F71 0F72 0F72"),              // the standard library gave 0F71 0F72 0F71 0F72
            ("\u{0F75}\u{0F71}x\u{0F81}\u{0F74}", "0F71 0F71 0F74 0078 0F71 0F80 0F74"),
            ("e\u{0301}", "00E9"), ("\u{212B}", "00C5"), ("\u{11099}\u{110BA}", "1109A"),
            ("\u{1100}\u{1161}\u{11A8}", "AC01"), ("a\u{0301}\u{0323}", "1EA1 0301"),
            ("\u{1D15E}", "1D157 1D165"), ("\u{2F800}", "4E3D"), ("plain ascii", "0070 006C 0061 0069 006E 0020 0061 0073 0063 0069 0069"),
        ]
        for (input, expected) in vectors {
            XCTAssertEqual(scalars(CanonicalComposition.nfc(input)), expected, scalars(input))
        }
    }

    func testTheTokenizerNormalizesWithIt() {
        XCTAssertEqual(scalars(BPETokenizer.normalize("\u{10041}\u{0301}\u{0F73}\u{0F73}", [.nfc])), "10041 0F71 0F71 0F72 0F72 0301")  // one run of marks, in class order
    }
}
