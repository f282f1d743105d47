import Foundation
import XCTest
import TensorCore
@testable import Training

/// Seeded mutations of valid recipes through `Recipe.parse`: every case must give a recipe
/// whose every key is within its limits, or one `RecipeError` line under 300 characters that
/// names the source — never a trap, a stack overflow or a stall.
/// 2000 cases by default; more with SFT_DIST_FUZZ_CASES (seed: SFT_DIST_FUZZ_SEED).
final class RecipeFuzzTests: XCTestCase {
    static let corpus: [String] = [
        "model: tiny\nsteps: 50\nbatch_size: 4\nmicro_batch_size: 2\nlr: 3e-3\nschedule: cosine\n",
        "objective: otr\nobjective_args:\n  k: 4\n  temperature: 1.0\n  beta: -0.1\nseed: 7\nheldout: ~\n",
        "{steps: 10, optimizer: sgd, momentum: 0.9, objective_args: {label_smoothing: 0.1}, truncation: left}\n",
        "eval_every: &n 12\n# a comment\nsteps: &s 3\nwarmup_steps: *s\nmax_new_tokens: 12\npacking: true\nnan_policy: skip\n",
        "data: \"my data.jsonl\"\nout: 'runs/a'\nchat_template: chatml\nresume: latest\nwatchdog_seconds: 30.5\n",
    ]

    /// Pieces that tend to break YAML parsers or a reader of their output.
    static let interesting: [String] = [
        "{", "}", "[", "]", ":", ": ", "- ", "? ", ",", "&a ", "*a", "&b [*a, *a] ", "<<: ", "!!str ", "!!int ", "!custom ",
        "---\n", "...\n", "|\n  x\n", ">-\n  y\n", "\t", "\r", "\r\n", "\u{85}", "\u{2028}", "\u{FEFF}", "\0", "\"", "'", "#",
        "%YAML 1.1\n", "~", "null", ".nan", "-.inf", "0x7fffffffffffffff", "9223372036854775808", "1_000", "1:30", "0o17",
        "true", "yes", "on", "\\u00e9", "日本", "🙂", String(repeating: "{a: ", count: 40), String(repeating: "- ", count: 40),
        String(repeating: "[", count: 300), "? [a, b]\n: 1\n", "steps: 1\n", "objective_args: {k: 1, k: 2}\n",
    ]

    func testFuzzedRecipesParseOrFailWithOneShortLine() throws {
        let env = ProcessInfo.processInfo.environment
        let cases = env["SFT_DIST_FUZZ_CASES"].flatMap { Int($0) } ?? 2000
        var rng = SplitMix64(seed: env["SFT_DIST_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x5EC1_9E)
        var parsed = 0, rejected = 0
        let start = Date()
        for i in 0..<cases {
            var text = Array(Self.corpus[i % Self.corpus.count].utf8)
            for _ in 0...Int.random(in: 0...1, using: &rng) { mutate(&text, &rng) }
            let yaml = String(decoding: text, as: UTF8.self)
            do {
                let r = try Recipe.parse(yaml: yaml, source: "fuzz.yaml")
                for (_, key) in Recipe.keys { XCTAssertNoThrow(try key.check(r, prefix: ""), "case \(i)") }
                // What it wrote reads back to the same recipe (but a resume naming a checkpoint,
                // written as a comment: the file runs from step 0).
                let back = try Recipe.parse(yaml: r.yaml, source: "back.yaml")
                if r.resume == nil || r.resume == "latest" { XCTAssertEqual(back, r, "case \(i)") } else {
                    XCTAssertNil(back.firstDifference(from: r, only: { $0.name != "resume" }), "case \(i)")
                    XCTAssertNil(back.resume, "case \(i)")
                }
                parsed += 1
            } catch let e as RecipeError {
                XCTAssertTrue(e.description.hasPrefix("fuzz.yaml"), "case \(i): \(e)")
                XCTAssertLessThan(e.description.count, 300, "case \(i)")
                XCTAssertFalse(e.description.contains("\n"), "case \(i): \(e)")
                rejected += 1
            } catch {
                XCTFail("case \(i): unexpected error type \(type(of: error)): \(error)")
            }
        }
        XCTAssertEqual(parsed + rejected, cases)
        if cases >= 500 {
            XCTAssertGreaterThan(parsed, cases / 20, "too few mutated recipes still parse")
            XCTAssertGreaterThan(rejected, cases / 4, "too few mutated recipes are rejected")
        }
        print("recipe fuzz: \(cases) cases, \(parsed) parsed, \(rejected) rejected, 0 crashes, \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
    }

    private func mutate(_ b: inout [UInt8], _ rng: inout SplitMix64) {
        func at(_ extra: Int = 0) -> Int { Int.random(in: 0...max(0, b.count - 1 + extra), using: &rng) }
        switch Int.random(in: 0..<10, using: &rng) {
        case 0:  // bit flips
            guard !b.isEmpty else { return }
            for _ in 0..<Int.random(in: 1...4, using: &rng) { b[at()] ^= 1 << UInt8.random(in: 0..<8, using: &rng) }
        case 1, 2:  // insert an interesting piece
            b.insert(contentsOf: Array(Self.interesting.randomElement(using: &rng)!.utf8), at: min(at(1), b.count))
        case 3:  // delete a short range
            guard !b.isEmpty else { return }
            let s = at()
            b.removeSubrange(s..<min(b.count, s + Int.random(in: 1...8, using: &rng)))
        case 4:  // truncate
            b = Array(b.prefix(at()))
        case 5:  // duplicate a range elsewhere (duplicate keys, spliced lines)
            guard b.count > 2 else { return }
            let s = at(), e = min(b.count, s + Int.random(in: 1...40, using: &rng))
            b.insert(contentsOf: b[s..<e], at: min(at(1), b.count))
        case 6:  // indent a line further (block nesting)
            let starts = [0] + b.indices.filter { b[$0] == 0x0A }.map { $0 + 1 }
            b.insert(contentsOf: [UInt8](repeating: 0x20, count: Int.random(in: 1...12, using: &rng)), at: min(starts.randomElement(using: &rng)!, b.count))
        case 7:  // a random byte
            guard !b.isEmpty else { return }
            b[at()] = UInt8.random(in: 0...255, using: &rng)
        case 8:  // a long value
            b.insert(contentsOf: [UInt8](repeating: 0x39, count: Int.random(in: 20...2000, using: &rng)), at: min(at(1), b.count))
        default:  // a known key with an absurd or odd value
            let keys = ["steps", "batch_size", "micro_batch_size", "max_length", "lr", "seed", "schedule", "objective_args", "heldout"]
            let values = ["-1", "0", "9223372036854775807", "1e400", ".nan", "[1]", "{k: v}", "~", "\"\"", "x", "1099511627776"]
            b += Array("\n\(keys.randomElement(using: &rng)!): \(values.randomElement(using: &rng)!)\n".utf8)
        }
    }
}
