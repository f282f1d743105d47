import Foundation
import XCTest
@testable import Training

/// Hostile YAML, one class at a time: refused with one short line naming the file, line and
/// key, never a trap or a hang.
final class HostileRecipeTests: XCTestCase, RecipeRefusalChecks {
    func testDeepNestingIsRefusedBeforeParsing() {
        let flow = "x: " + String(repeating: "{a: ", count: 3000) + "1" + String(repeating: "}", count: 3000) + "\n"
        assertRefused(flow, "nested too deeply for a recipe")
        let brackets = "x: " + String(repeating: "[", count: 100_000) + "\n"
        assertRefused(brackets, "nested too deeply for a recipe")
        var block = ""
        for i in 0..<1000 { block += String(repeating: " ", count: i) + "a:\n" }
        assertRefused(block, "nested too deeply for a recipe")
        // (3,000 indented levels are 4.5 MB: refused for their size before their depth.)
        let dashes = "x:\n" + String(repeating: "- ", count: 3000) + "1\n"
        assertRefused(dashes, "nested too deeply for a recipe")
        let crLines = (0..<1000).map { String(repeating: " ", count: $0) + "a:" }.joined(separator: "\r")
        assertRefused(crLines, "nested too deeply for a recipe")
        // A comment's brackets open nothing (300 lines of `# {[` were refused as 906 levels),
        // but a `#` inside quotes does not hide what follows the quoted scalar's end.
        XCTAssertEqual(RecipeYAML.nestingBound("model: tiny\n" + String(repeating: "# {[ a: b: - c\n", count: 300)), 6)
        XCTAssertEqual(try Recipe.parse(yaml: "steps: 3 # {[{[\n" + String(repeating: "  # {[{[\n", count: 300), source: "r.yaml").steps, 3)
        let deep = String(repeating: "[", count: 3000) + "1" + String(repeating: "]", count: 3000)
        for hidden in ["x: [\"a #\", \(deep)]\n", "x: ['a #', \(deep)]\n", "x: [\"a\n  #\", \(deep)]\n", "x: |\n  #'\ny: \(deep)\n"] {
            XCTAssertGreaterThan(RecipeYAML.nestingBound(hidden), 3000, hidden.prefix(20).description)
            assertRefused(hidden, "nested too deeply for a recipe")
        }
        // A JSONL file given as the recipe is named as such (it was "nested too deeply" at 300 rows).
        let jsonl = String(repeating: "{\"prompt\": \"a\", \"completion\": \" b\"}\n", count: 300)
        assertRefused(jsonl, "r.yaml: one JSON object per line is JSONL data, not a recipe (a YAML mapping of keys): give it as --data")
        assertRefused(String(jsonl.prefix(72)), "JSONL data, not a recipe")   // two rows
        XCTAssertEqual(try Recipe.parse(yaml: "{model: tiny,\n steps: 3}\n", source: "r.yaml").steps, 3)
        // Lines that only look like objects are YAML's to judge (a flow mapping over two lines).
        XCTAssertEqual(try Recipe.parse(yaml: "{objective_args: # the args }\n  {label_smoothing: 0.1}}\n", source: "r.yaml").objectiveArgs,
                       ["label_smoothing": "0.1"])
        // Through aliases the tree can be deeper than the text; the walk bounds that too.
        var aliased = "a0: &a0 [[[[[[1]]]]]]\n"
        for i in 1..<8 { aliased += "a\(i): &a\(i) [[[[[[*a\(i - 1)]]]]]]\n" }
        assertRefused(aliased, "levels deep")
    }

    func testComplexAndMergeKeysAreRefused() {
        assertRefused("? [a, b]\n: 1\n", "r.yaml:1: a mapping key must be a plain name, not a sequence")
        assertRefused("? {a: 1}\n: 1\n", "a mapping key must be a plain name, not a mapping")
        assertRefused("objective_args:\n  ? [k]\n  : 1\n", "a mapping key must be a plain name")
        assertRefused("base: &b {steps: 5}\n<<: *b\n", "r.yaml:2: merge keys (<<) are not supported")
    }

    func testAliasBombsStopAtTheExpansionBudget() {
        var bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
        for i in 1..<9 { bomb += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ", ") + "]\n" }
        XCTAssertLessThan(bomb.utf8.count, 600)
        let start = Date()
        assertRefused(bomb, "more than 10000 values once aliases are expanded")
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        var merges = "m0: &m0 {a: 1, b: 2}\n"
        for i in 1..<30 { merges += "m\(i): &m\(i) {<<: [*m\(i - 1), *m\(i - 1)]}\n" }
        assertRefused(merges, "r.yaml:")
        // A few aliases inside the budget are fine (and then the keys decide).
        assertRefused("x: &v 5\nsteps: *v\nbatch_size: *v\n", "unknown key \"x\"")
        XCTAssertEqual(try Recipe.parse(yaml: "steps: &v 5\nbatch_size: *v\n", source: "r.yaml").batchSize, 5)
    }

    func testDuplicateEmptyAndNonMappingRecipes() {
        assertRefused("steps: 5\nlr: 0.1\nsteps: 6\n", "r.yaml:3: duplicate key \"steps\"")
        assertRefused("objective_args: {k: 1, k: 2}\n", "duplicate key \"k\"")
        assertRefused("", "the recipe is empty")
        assertRefused("# only a comment\n\n", "the recipe is empty")
        assertRefused("{}\n", "the recipe is empty")
        assertRefused("- steps: 5\n", "a recipe must be a mapping")
        assertRefused("steps: 5\n---\nsteps: 6\n", "invalid YAML")
        // The problem itself, at its line and column (the context came first and the problem was cut).
        assertRefused("model: tiny\n\tsteps: 2\n", "r.yaml:2:1: invalid YAML: found a tab character that violates indentation (while scanning a plain scalar at line 1, column 8)")
    }

    func testHugeValuesAreNotEchoedWhole() {
        let big = String(repeating: "z", count: 1_000_000)
        assertRefused("schedule: " + big + "\n", "r.yaml:1: schedule must be one of cosine, linear, constant (got zzzz")
        assertRefused("? " + big + "\n: 1\n", "unknown key \"zzzz")  // (an implicit key is at most 1024 characters)
        assertRefused("schedule: " + String(repeating: "z", count: 50_000_000) + "\n", "r.yaml: 50000011 bytes; a recipe may have at most 1048576")
        assertRefused("steps: \"" + String(repeating: "\n", count: 500) + "\"\n", "steps must be an integer")
        XCTAssertEqual(RecipeError.quote("a\nb"), "a\\nb")
        XCTAssertEqual(RecipeError.quote(String(repeating: "y", count: 100)), String(repeating: "y", count: 40) + "… (100 bytes)")
    }

    func testRecipeFilesMustBeSmallRegularFiles() throws {
        func loadError(_ path: String) -> String {
            do { _ = try Recipe.load(path: path); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertEqual(loadError("/dev/zero"), "/dev/zero: not a regular file (a recipe is a YAML file)")
        XCTAssertEqual(loadError("/tmp"), "/tmp: not a regular file (a recipe is a YAML file)")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sft-dist-big-recipe-\(getpid()).yaml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(repeating: 0x20, count: RecipeYAML.maxBytes + 1).write(to: URL(fileURLWithPath: path))
        XCTAssertTrue(loadError(path).hasSuffix("larger than 1048576 bytes; that is not a recipe"), loadError(path))
    }
}
