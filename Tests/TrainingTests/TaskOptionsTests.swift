import Foundation
import XCTest
import Models
@testable import Training

/// `make-data`'s task options, each checked on the rows it generates, with the answers
/// recomputed here independently of the generator's solver.
final class TaskOptionsTests: XCTestCase {
    /// A row's task as the test reads it from the prompt: phrasing stripped by hand.
    struct Task {
        var op: String
        var args: [String]
    }

    func task(_ prompt: String, template: String = "standard", file: StaticString = #filePath, line: UInt = #line) -> Task {
        let (prefix, suffix) = ["standard": ("", " ="), "arrow": ("", " ->"), "question": ("what is ", " ?")][template]!
        XCTAssertTrue(prompt.hasPrefix(prefix) && prompt.hasSuffix(suffix), "\(prompt) is not \(template)", file: file, line: line)
        let words = prompt.dropFirst(prefix.count).dropLast(suffix.count).split(separator: " ").map(String.init)
        return Task(op: words[0], args: Array(words.dropFirst()))
    }

    /// The standard rule of `kind`, written out again here.
    func reference(_ kind: String, _ args: [String]) -> String {
        switch kind {
        case "add": return " \(Int(args[0])! + Int(args[1])!)"
        case "mul": return " \(Int(args[0])! * Int(args[1])!)"
        case "reverse": return " " + String(args[0].reversed())
        case "copy": return " " + args[0]
        case "repeat": return " " + String(repeating: args[0], count: Int(args[1])!)
        case "sort": return " " + String(args[0].sorted())
        case "upper": return " " + args[0].uppercased()
        default: XCTFail("unknown kind \(kind)"); return ""
        }
    }

    func rows(_ count: Int, seed: UInt64 = 5, _ configure: (inout TaskOptions) -> Void) -> [TaskRow] {
        var options = TaskOptions()
        configure(&options)
        return TaskGenerator.rows(count: count, seed: seed, options: options)
    }

    /// FNV-1a, 64 bits.
    func fnv1a(_ text: String) -> UInt64 {
        text.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0100_0000_01b3 }
    }

    /// The default options are the embedded dataset, byte for byte: the hash and first rows of
    /// `make-data` (4000 rows, seed 1234) as the binary before task options wrote them.
    func testDefaultOptionsKeepTheEmbeddedDatasetByteForByte() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tasks-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let options = TaskOptions()
        XCTAssertTrue(options.isDefault)
        try TaskGenerator.writeJSONL(TaskGenerator.rows(count: 4000, seed: 1234, options: options), options: options, to: path)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("""
            {"prompt":"sort 523 =","completion":" 235"}
            {"prompt":"sort 642 =","completion":" 246"}
            {"prompt":"reverse chupy =","completion":" ypuhc"}

            """))
        XCTAssertEqual(text.utf8.count, 182_644)
        XCTAssertEqual(fnv1a(text), 0x128b_3906_aeec_bd0e)
        // The dictionary form the training run writes is the same rows.
        var legacy = ""
        for r in TaskGenerator.generate(count: 4000, seed: 1234) {
            legacy += "{\"prompt\":\(JSONText.quote(r["prompt"]!)),\"completion\":\(JSONText.quote(r["completion"]!))}\n"
        }
        XCTAssertEqual(legacy, text)
    }

    func testSameOptionsAndSeedGiveTheSameRows() {
        let configure: (inout TaskOptions) -> Void = { $0.digits = 2...4; $0.noise = 0.3; $0.template = .arrow }
        let a = rows(300, configure)
        XCTAssertEqual(a, rows(300, configure))
        XCTAssertEqual(Array(a.prefix(40)), rows(40, configure))
        XCTAssertNotEqual(a, rows(300, seed: 6, configure))
    }

    func testDigitsBoundEveryOperandAndAreRecorded() {
        let generated = rows(2000) { $0.digits = 3...4 }
        var sizes = Set<Int>()
        for row in generated {
            let t = task(row.prompt)
            XCTAssertTrue((3...4).contains(row.digits), row.prompt)
            sizes.insert(row.digits)
            let operands = row.kind == "repeat" ? [t.args[0]] : t.args
            for operand in operands {
                XCTAssertEqual(operand.count, row.digits, row.prompt)
                if row.kind == "add" || row.kind == "mul" { XCTAssertFalse(operand.hasPrefix("0"), row.prompt) }
            }
            XCTAssertEqual(row.completion, reference(row.kind, t.args), row.prompt)
        }
        XCTAssertEqual(sizes, [3, 4])
        XCTAssertEqual(Set(generated.map(\.kind)), Set(TaskGenerator.kinds))
        // Default sizes are recorded too: add's operands have two digits, mul's one.
        for row in rows(200, { _ in }) where row.kind == "add" || row.kind == "mul" {
            XCTAssertEqual(row.digits, row.kind == "add" ? 2 : 1, row.prompt)
        }
    }

    func testKindsSelectOnlyThoseSkills() {
        let generated = rows(500) { $0.kinds = ["mul", "upper"] }
        XCTAssertEqual(Set(generated.map(\.kind)), ["mul", "upper"])
        for row in generated {
            let t = task(row.prompt)
            XCTAssertEqual(t.op, row.kind)
            XCTAssertEqual(row.completion, reference(row.kind, t.args), row.prompt)
        }
    }

    func testRuleVariantsFollowTheirRule() {
        for k in [1, 3] {
            let generated = rows(400) { $0.variant = .plus(k) }
            XCTAssertEqual(Set(generated.map(\.kind)), ["add", "mul"])
            for row in generated {
                let t = task(row.prompt)
                XCTAssertEqual(t.op, "\(row.kind)+\(k)")
                XCTAssertEqual(row.variant, .plus(k))
                let a = Int(t.args[0])!, b = Int(t.args[1])!
                XCTAssertEqual(row.completion, " \((row.kind == "add" ? a + b : a * b) + k)", row.prompt)
                XCTAssertEqual(TaskGenerator.expectedCompletion(forPrompt: row.prompt), row.completion)
            }
        }
        let renamed = ["add": "sum", "mul": "prod", "reverse": "flip", "copy": "echo",
                       "repeat": "tile", "sort": "order", "upper": "caps"]
        let generated = rows(700) { $0.variant = .renamed }
        XCTAssertEqual(Set(generated.map(\.kind)), Set(TaskGenerator.kinds))
        for row in generated {
            let t = task(row.prompt)
            XCTAssertEqual(t.op, renamed[row.kind], row.prompt)
            XCTAssertEqual(row.completion, reference(row.kind, t.args), row.prompt)
        }
        XCTAssertEqual(TaskGenerator.expectedCompletion(forPrompt: "add+2 23 45 ="), " 70")
        XCTAssertEqual(TaskGenerator.expectedCompletion(forPrompt: "mul+9 7 8 ="), " 65")
        XCTAssertNil(TaskGenerator.expectedCompletion(forPrompt: "add+0 23 45 ="))
        XCTAssertNil(TaskGenerator.expectedCompletion(forPrompt: "reverse+1 abc ="))
    }

    func testTemplateVariantsChangeOnlyThePhrasing() {
        let standard = rows(300) { _ in }
        for template in ["arrow", "question"] {
            let phrased = rows(300) { $0.template = TaskTemplate(rawValue: template)! }
            for (row, plain) in zip(phrased, standard) {
                let t = task(row.prompt, template: template), p = task(plain.prompt)
                XCTAssertEqual(t.op, p.op)
                XCTAssertEqual(t.args, p.args)
                XCTAssertEqual(row.completion, plain.completion, row.prompt)
                XCTAssertEqual(TaskGenerator.expectedCompletion(forPrompt: row.prompt), row.completion, row.prompt)
            }
        }
    }

    /// The corrupted share is Binomial(n, p): within 4 standard deviations of n·p. Corrupted
    /// rows are wrong, the others right, and the prompts are those without noise.
    func testCompletionNoiseShareAndCorruptedRowsAreWrong() {
        let n = 4000, p = 0.3
        let clean = rows(n) { $0.digits = 1...2 }
        let noisy = rows(n) { $0.digits = 1...2; $0.noise = p }
        let corrupted = noisy.filter { $0.corrupted == true }.count
        XCTAssertEqual(noisy.filter { $0.corrupted == nil }.count, 0)
        XCTAssertLessThan(abs(Double(corrupted) - Double(n) * p), 4 * (Double(n) * p * (1 - p)).squareRoot(), "\(corrupted) of \(n)")
        for (row, truth) in zip(noisy, clean) {
            XCTAssertEqual(row.prompt, truth.prompt)
            let t = task(row.prompt)
            if row.corrupted == true {
                XCTAssertNotEqual(row.completion, reference(row.kind, t.args), row.prompt)
                XCTAssertTrue(row.completion!.hasPrefix(" ") && row.completion!.count > 1, row.prompt)
            } else {
                XCTAssertEqual(row, { var r = truth; r.corrupted = false; return r }())
            }
        }
    }

    /// Without `--digits` the default sizes vary (words of 3–5 letters, `repeat`'s of 1–2), and
    /// a corrupted answer is still another prompt's of the row's own size: its length does not
    /// give it away (for the kinds whose answer length the size fixes).
    func testCompletionNoiseKeepsEachRowsSizeAtTheDefaultSizes() {
        let noisy = rows(2000) { $0.noise = 1; $0.kinds = ["reverse", "upper", "copy", "sort"] }
        var checked = 0
        for row in noisy where row.corrupted == true {
            let size = task(row.prompt).args[0].count
            XCTAssertEqual(row.completion!.count - 1, size, "\(row.prompt) →\(row.completion!)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 1000)
        // `repeat`: its count sets the length too; a wrong answer drawn with another count
        // gave 98 of 200 corrupted rows away (a hostile review).
        let repeats = rows(400) { $0.noise = 1; $0.kinds = ["repeat"]; $0.digits = 9...9 }
        for row in repeats where row.corrupted == true {
            let args = task(row.prompt).args
            XCTAssertEqual(row.completion!.count - 1, args[0].count * Int(args[1])!, "\(row.prompt) →\(row.completion!)")
            XCTAssertNotEqual(row.completion, reference(row.kind, args), row.prompt)
        }
        XCTAssertGreaterThan(repeats.filter { $0.corrupted == true }.count, 300)
    }

    /// Token noise: each answer character is corrupted with probability p (Binomial over all
    /// answer characters), `corrupted_tokens` counts exactly the characters that differ.
    func testTokenNoiseShareAndCountedCharacters() {
        let p = 0.2
        let clean = rows(3000) { _ in }
        let noisy = rows(3000) { $0.noise = p; $0.noiseKind = .token }
        var characters = 0, changed = 0
        for (row, truth) in zip(noisy, clean) {
            let got = Array(row.completion!.utf8), want = Array(truth.completion!.utf8)
            XCTAssertEqual(got.count, want.count, row.prompt)
            XCTAssertEqual(got.first, 0x20)
            let differing = zip(got, want).filter { $0 != $1 }.count
            XCTAssertEqual(row.corruptedTokens, differing, row.prompt)
            XCTAssertEqual(row.corrupted, differing > 0, row.prompt)
            characters += want.count - 1
            changed += differing
        }
        let mean = Double(characters) * p
        XCTAssertLessThan(abs(Double(changed) - mean), 4 * (mean * (1 - p)).squareRoot(), "\(changed) of \(characters)")
    }

    func testUnlabelledRowsHavePromptsOnly() throws {
        let labelled = rows(100) { $0.kinds = ["add"] }
        let unlabelled = rows(100) { $0.kinds = ["add"]; $0.unlabelled = true }
        XCTAssertEqual(unlabelled.map(\.prompt), labelled.map(\.prompt))
        for row in unlabelled {
            XCTAssertNil(row.completion)
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(row.jsonLine(measurement: true).utf8)) as? [String: Any])
            XCTAssertNil(object["completion"])
            XCTAssertEqual(object["prompt"] as? String, row.prompt)
        }
        // Training refuses them: they are not labelled data.
        let line = unlabelled[0].jsonLine(measurement: true)
        XCTAssertThrowsError(try JSONLReader.parse(Array(line.utf8), path: "u.jsonl")) {
            XCTAssertEqual("\($0)", #"u.jsonl:1: missing field "completion""#)
        }
    }

    /// The measurement fields are read past: the same examples as the two-field rows.
    func testMeasurementFieldsAreIgnoredByTheReaderAndTraining() throws {
        let generated = rows(200) { $0.noise = 0.5; $0.noiseKind = .token; $0.digits = 2...3 }
        let full = generated.map { $0.jsonLine(measurement: true) }.joined(separator: "\n")
        let plain = generated.map { $0.jsonLine(measurement: false) }.joined(separator: "\n")
        XCTAssertTrue(full.contains(#""kind":"#) && full.contains(#""digits":"#) && full.contains(#""corrupted":true"#)
                      && full.contains(#""corrupted_tokens":"#) && full.contains(#""variant":"standard""#))
        XCTAssertFalse(plain.contains(#""kind""#))
        let a = try JSONLReader.parse(Array(full.utf8), path: "d.jsonl")
        let b = try JSONLReader.parse(Array(plain.utf8), path: "d.jsonl")
        XCTAssertEqual(a, b)
        let tokenizer = ByteTokenizer()
        let da = try Dataset(records: a.records, path: "d.jsonl", tokenizer: tokenizer, maxLength: 64)
        let db = try Dataset(records: b.records, path: "d.jsonl", tokenizer: tokenizer, maxLength: 64)
        XCTAssertEqual(da.examples, db.examples)
        XCTAssertEqual(da.examples.count, 200)
    }

    func testFlagsAreCheckedAndNameTheFlag() {
        func refused(_ message: String, kinds: String? = nil, digits: String? = nil, variant: String = "standard",
                     template: String = "standard", noise: Double = 0, noiseKind: String = "completion",
                     unlabelled: Bool = false, line: UInt = #line) {
            XCTAssertThrowsError(try TaskOptions.parse(kinds: kinds, digits: digits, variant: variant, template: template,
                                                       noise: noise, noiseKind: noiseKind, unlabelled: unlabelled), line: line) {
                XCTAssertTrue("\($0)".hasPrefix(message), "\($0)", line: line)
            }
        }
        refused("--kinds: unknown kind div", kinds: "add,div")
        refused("--kinds: add given twice", kinds: "add,add")
        refused("--kinds: empty name in \"add,\"", kinds: "add,")
        refused("--kinds: empty; give kinds separated by commas (known: ", kinds: "")
        refused("--kinds: variant plus-1 has no rule for reverse", kinds: "reverse", variant: "plus-1")
        refused("--digits must be N or LOW-HIGH", digits: "0-3")
        refused("--digits must be N or LOW-HIGH", digits: "4-2")
        refused("--digits must be N or LOW-HIGH", digits: "10")
        refused("--digits must be N or LOW-HIGH", digits: "1-2-3")
        refused("--digits must be N or LOW-HIGH", digits: "x")
        refused("--variant must be one of standard, renamed, plus-1", variant: "plus-10")
        refused("--template-variant must be one of standard, arrow, question", template: "poem")
        refused("--noise must be a number in [0, 1]", noise: 1.5)
        refused("--noise must be a number in [0, 1]", noise: .nan)
        refused("--noise-kind must be one of completion, token", noiseKind: "row")
        refused("--noise: unlabelled rows have no completion", noise: 0.1, unlabelled: true)
        let ok = try? TaskOptions.parse(kinds: "mul,add", digits: "3", variant: "plus-2", template: "arrow",
                                        noise: 0.25, noiseKind: "token", unlabelled: false)
        XCTAssertEqual(ok?.kinds, ["mul", "add"])
        XCTAssertEqual(ok?.digits, 3...3)
        XCTAssertEqual(ok?.variant, .plus(2))
        XCTAssertEqual(ok?.template, .arrow)
        XCTAssertEqual(ok?.noiseKind, .token)
        // Any option given adds the measurement fields, even one that changes no row.
        let allKinds = try? TaskOptions.parse(kinds: TaskGenerator.kinds.joined(separator: ","), digits: nil, variant: "standard",
                                              template: "standard", noise: 0, noiseKind: "completion", unlabelled: false)
        XCTAssertEqual(allKinds?.isDefault, false)
        XCTAssertEqual(try? TaskOptions.parse(kinds: nil, digits: nil, variant: "standard", template: "standard", noise: 0,
                                              noiseKind: "completion", unlabelled: false).isDefault, true)
    }

    /// The `task` scorer checks against the rule in the prompt, not the row's reference.
    func testTaskScorerUsesThePromptsRule() throws {
        let scorer = try ScorerRegistry.make(name: "task", args: [:])
        func item(_ prompt: String, _ completion: String, reference: String? = nil) -> ScoringItem {
            ScoringItem(prompt: prompt, completion: completion, reference: reference, source: "t:1")
        }
        XCTAssertEqual(try scorer.score([
            item("add+1 23 45 =", " 69"), item("add+1 23 45 =", " 68"), item("what is sum 2 3 ?", "5"),
            item("tile ab 3 ->", " ababab "), item("add 2 2 =", " 4", reference: " 5"),
            item("<|begin_of_text|>mul+3 4 5 =", " 23"), item("<s>what is order 312 ?", " 123"),
        ]), [1, 0, 1, 1, 1, 1, 1])
        XCTAssertThrowsError(try scorer.score([item("what is 2+2?", "4")])) {
            XCTAssertTrue("\($0)".hasPrefix("t:1: the task scorer needs a built-in task prompt"), "\($0)")
        }
    }
}
