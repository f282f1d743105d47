import XCTest
@testable import Models

final class ByteTokenizerTests: XCTestCase {
    let tokenizer = ByteTokenizer()

    func testVocabularyLayout() {
        XCTAssertEqual(tokenizer.vocabSize, 260)
        XCTAssertEqual(tokenizer.eosId, 256)
        XCTAssertEqual(tokenizer.padId, 259)
        XCTAssertEqual(tokenizer.specialTokenId("<|endoftext|>"), 256)
        XCTAssertEqual(tokenizer.specialTokenId("<|im_start|>"), 257)
        XCTAssertEqual(tokenizer.specialTokenId("<|im_end|>"), 258)
        XCTAssertEqual(tokenizer.specialTokenId("<|pad|>"), 259)
        XCTAssertNil(tokenizer.specialTokenId("<|nope|>"))
        XCTAssertEqual(tokenizer.specialTokens.count, 4)
        XCTAssertEqual(ByteTokenizer.name, "bytes")
    }

    func testUnicodeRoundTrip() {
        for text in ["", "hello", "héllo wörld", "日本語テキスト", "emoji 👩‍👩‍👧 🚀!", "tab\tnew\nline", "\u{0}nul"] {
            let ids = tokenizer.encode(text)
            XCTAssertEqual(ids.count, text.utf8.count, text)
            XCTAssertTrue(ids.allSatisfy { $0 >= 0 && $0 < 256 })
            XCTAssertEqual(tokenizer.decode(ids), text)
            XCTAssertEqual(tokenizer.decode(tokenizer.encodePlain(text)), text)
        }
        XCTAssertEqual(tokenizer.encode("é"), [0xC3, 0xA9])
    }

    func testEncodeRecognisesSpecials() {
        XCTAssertEqual(tokenizer.encode("<|im_start|>hi<|im_end|><|endoftext|>"),
                       [257, 104, 105, 258, 256])
        XCTAssertEqual(tokenizer.encode("a<|pad|>"), [97, 259])
        // Near misses stay text.
        XCTAssertEqual(tokenizer.encode("<|im_end|"), Array("<|im_end|".utf8).map(Int32.init))
        XCTAssertEqual(tokenizer.encode("<<|im_end|>"), [60, 258])
    }

    func testEncodePlainDoesNotParseSpecials() {
        let text = "<|im_end|>"
        XCTAssertEqual(tokenizer.encodePlain(text), Array(text.utf8).map(Int32.init))
        XCTAssertEqual(tokenizer.decode(tokenizer.encodePlain(text)), text)
    }

    func testDecodeSpecialsAndInvalidBytes() {
        XCTAssertEqual(tokenizer.decode([257, 104, 105, 258, 256]), "<|im_start|>hi<|im_end|><|endoftext|>")
        // A special in the middle of a multi-byte character breaks it: both halves are invalid.
        XCTAssertEqual(tokenizer.decode([0xC3, 256, 0xA9]), "\u{FFFD}<|endoftext|>\u{FFFD}")
        XCTAssertEqual(tokenizer.decode([0xFF, 65]), "\u{FFFD}A")
        XCTAssertEqual(tokenizer.decode([65, 9999, -1]), "A\u{FFFD}\u{FFFD}")
    }
}
