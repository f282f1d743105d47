import XCTest
@testable import Training

final class ScorerTests: XCTestCase {
    func item(_ c: String, _ r: String?, _ src: String = "t.jsonl:1") -> ScoringItem {
        ScoringItem(prompt: "p", completion: c, reference: r, source: src)
    }

    func testExactContainsNumericRegex() throws {
        let exact = try ScorerRegistry.make(name: "exact", args: [:])
        XCTAssertEqual(try exact.score([item("  hello   world ", "hello world"), item("Hello", "hello")]), [1, 0])
        XCTAssertEqual(try ScorerRegistry.make(name: "exact", args: ["ignore_case": "true"]).score([item("Hello", "hello")]), [1])
        // ignore_case is true or false in any common spelling; anything else was read as false.
        for (text, score) in [("True", Float(1)), ("1", 1), ("yes", 1), ("false", 0), ("False", 0), ("0", 0)] {
            XCTAssertEqual(try ScorerRegistry.make(name: "contains", args: ["ignore_case": text]).score([item("Hello", "hello")]), [score], text)
        }
        XCTAssertThrowsError(try ScorerRegistry.make(name: "exact", args: ["ignore_case": "maybe"])) {
            XCTAssertEqual("\($0)", "scorer exact: ignore_case must be true or false (got maybe)")
        }
        XCTAssertEqual(try ScorerRegistry.make(name: "contains", args: [:]).score([item("so it is 42.", "42"), item("x", "42")]), [1, 0])
        let numeric = try ScorerRegistry.make(name: "numeric", args: [:])
        XCTAssertEqual(try numeric.score([item("The answer is 1,234.", "1234"), item("3 then 5", "5.0"), item("none", "5"),
                                          item(" cba", "cba"), item("12.5", "12.6")]), [1, 1, 0, 1, 0])
        XCTAssertEqual(try ScorerRegistry.make(name: "numeric", args: ["tolerance": "1e-2"]).score([item("12.5", "12.6")]), [1])
        let regex = try ScorerRegistry.make(name: "regex", args: ["pattern": "^<answer>\\d+</answer>$"])
        XCTAssertEqual(try regex.score([item("<answer>12</answer>", nil), item("12", nil)]), [1, 0])
    }

    func testBadScorerArguments() {
        XCTAssertThrowsError(try ScorerRegistry.make(name: "nope", args: [:])) { XCTAssertTrue("\($0)".contains("unknown scorer \"nope\"")) }
        XCTAssertThrowsError(try ScorerRegistry.make(name: "regex", args: ["pattern": "("])) { XCTAssertTrue("\($0)".contains("invalid pattern")) }
        XCTAssertThrowsError(try ScorerRegistry.make(name: "exact", args: ["tolerance": "1"])) { XCTAssertTrue("\($0)".contains("unknown argument \"tolerance\"")) }
        XCTAssertThrowsError(try ScorerRegistry.make(name: "numeric", args: ["tolerance": "-1"]))
    }

    func testExternalCommandReadsJSONLAndWritesScores() throws {
        // Scores 1 when the completion has more than 3 characters, with python-free shell tools.
        let s = try ScorerRegistry.make(name: "command", args: ["cmd": #"while IFS= read -r line; do case "$line" in *'"completion":"long'*) echo 1;; *) echo 0.25;; esac; done"#])
        XCTAssertEqual(try s.score([item("long one", "x"), item("s", "x")]), [1, 0.25])
    }

    func testExternalCommandFailuresNameTheExample() throws {
        let items = [item("a", "x", "d.jsonl:4"), item("b", "x", "d.jsonl:9")]
        func message(_ cmd: String, timeout: String = "10") -> String {
            do {
                _ = try ScorerRegistry.make(name: "command", args: ["cmd": cmd, "timeout": timeout]).score(items)
                return "no error"
            } catch { return "\(error)" }
        }
        XCTAssertTrue(message("cat >/dev/null; echo 1; echo oops").contains("line 2 of its output is \"oops\", not a decimal number (for d.jsonl:9)"))
        // Read as every number sft-dist reads: a NUL ended the text read ("0.75\0garbage" scored 0.75),
        // hexadecimal was taken, and a number beyond float32 was called "not a number".
        XCTAssertTrue(message(#"cat >/dev/null; printf '0.75\0garbage\n1\n'"#).contains(#"line 1 of its output is "0.75\0garbage", not a decimal number (for d.jsonl:4)"#))
        XCTAssertTrue(message("cat >/dev/null; echo 1; echo 0x1p0").contains("line 2 of its output is \"0x1p0\", not a decimal number"))
        XCTAssertTrue(message("cat >/dev/null; echo -1e200; echo 1").contains("line 1 of its output is \"-1e200\", beyond float32's range (largest magnitude 3.4e38) (for d.jsonl:4)"))
        XCTAssertEqual(message("cat >/dev/null; echo 3e38; echo ' -0.5e1 '"), "no error")
        XCTAssertTrue(message("cat >/dev/null; echo 1").contains("wrote 1 scores for 2 completions"))
        XCTAssertTrue(message("echo boom >&2; exit 3").contains("failed with status 3 on a batch starting at d.jsonl:4 (stderr: boom)"))
        XCTAssertTrue(message("sleep 5", timeout: "0.5").contains("timed out after 0.5 s"))
        XCTAssertTrue(message("cat >/dev/null; echo nan; echo 1").contains("line 1 of its output is \"nan\", not a finite number"))
    }

    func testPassAtKEstimator() {
        XCTAssertEqual(GenerationEval.passAtK(n: 4, c: 0, k: 1), 0)
        XCTAssertEqual(GenerationEval.passAtK(n: 4, c: 1, k: 1), 0.25, accuracy: 1e-12)
        XCTAssertEqual(GenerationEval.passAtK(n: 4, c: 1, k: 4), 1)
        XCTAssertEqual(GenerationEval.passAtK(n: 5, c: 2, k: 2), 1 - 3.0 / 10.0, accuracy: 1e-12)  // 1 − C(3,2)/C(5,2)
    }
}
