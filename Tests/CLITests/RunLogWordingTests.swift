import Foundation
import XCTest

/// The run log as a person reads it: counts agree with their nouns, and sample answers are
/// quoted as they were typed (debugDescription showed "don't" as "don\'t").
final class RunLogWordingTests: XCTestCase {
    func testOneStepOfOneExampleAndApostrophesAsTyped() throws {
        let dir = CLI.tempDir("log-wording")
        let rows = (0..<20).map { #"{"prompt": "say don't \#($0) =", "completion": " it's"}"# }
        try rows.joined(separator: "\n").write(toFile: dir + "/d.jsonl", atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["train", "--model", "tiny", "--data", dir + "/d.jsonl", "--steps", "1", "--batch-size", "1",
                             "--eval-examples", "2", "--out", dir + "/out"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("objective: nll, 1 step of 1 example\n"), r.stdout)
        let samples = r.stdout.split(separator: "\n").filter { $0.contains("(expected ") }
        XCTAssertFalse(samples.isEmpty, r.stdout)
        for line in samples {
            XCTAssertTrue(line.hasPrefix("  \"say don't "), String(line))
            XCTAssertTrue(line.hasSuffix("(expected \" it's\")"), String(line))
        }
    }
}
