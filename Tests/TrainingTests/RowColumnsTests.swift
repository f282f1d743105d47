import Foundation
import XCTest
@testable import Training

/// A row's other fields reach an external scorer as `"columns"` (TRL's reward kwargs), read
/// again from the rows' files by `file:line`; and Q-Tuning's budget cap ranks by binary search.
final class RowColumnsTests: XCTestCase {
    func testTheOtherFieldsOfEachRowByItsSource() throws {
        let path = NSTemporaryDirectory() + "columns-\(UUID().uuidString).jsonl"
        try """
        {"prompt": "a", "completion": "b", "task": "add", "solution": {"value": [1, 2]}}
        {"prompt": "c"}
        not json
        {"messages": [{"role": "user", "content": "hi"}], "id": 7}

        {"prompt": "d", "task": "skip"}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let got = RowColumns.of(["\(path):1", "\(path):2", "\(path):4", "\(path):6", "builtin:tasks:3", "/nonexistent.jsonl:1"])
        XCTAssertEqual(got, ["\(path):1": #"{"solution":{"value":[1,2]},"task":"add"}"#, "\(path):4": #"{"id":7}"#, "\(path):6": #"{"task":"skip"}"#])
        // Only the lines asked for.
        XCTAssertEqual(Array(RowColumns.of(["\(path):6"]).keys), ["\(path):6"])
    }

    /// The scorer's line carries them, `{}` when the row has none.
    func testTheScorersLineCarriesThem() throws {
        let log = NSTemporaryDirectory() + "columns-seen-\(UUID().uuidString)"
        let scorer = try ScorerRegistry.make(name: "command", args: ["cmd": "cat > \(log); echo 1; echo 1"])
        _ = try scorer.score([ScoringItem(prompt: "p", completion: "c", reference: nil, source: "f:1", columns: #"{"task":"add"}"#),
                              ScoringItem(prompt: "p", completion: "c", reference: nil, source: "f:2")])
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        XCTAssertEqual(lines[0]["columns"] as? [String: String], ["task": "add"])
        XCTAssertEqual((lines[1]["columns"] as? [String: Any])?.isEmpty, true)
    }

    /// rank(x) by binary search gives the scan's ranks: ties, inf and NaN included.
    func testTheBudgetCapRanksAsTheScanDid() {
        var rng = SystemRandomNumberGenerator()
        func scan(_ v: [Double], _ i: Int) -> Double { Double(v.filter { $0 < v[i] }.count) / Double(v.count) }
        for n in [1, 2, 7, 64, 257] {
            let pool = [0.5, 1, 2, .infinity, .nan, 3]
            let ppl = (0..<n).map { _ in Bool.random(using: &rng) ? pool.randomElement(using: &rng)! : Double.random(in: 0...4, using: &rng) }
            let ent = (0..<n).map { _ in Bool.random(using: &rng) ? pool.randomElement(using: &rng)! : Double.random(in: 0...4, using: &rng) }
            let rank = QTuningSelector.ranks(ppl)
            for i in 0..<n { XCTAssertEqual(rank(i), scan(ppl, i), "n \(n) i \(i): \(ppl[i])") }
            let quadrants = (0..<n).map { _ in Bool.random(using: &rng) ? QTuningSelector.Quadrant.q2 : .q4 }
            let depth = (0..<n).map { i in quadrants[i] == .q2 ? scan(ppl, i) - scan(ent, i) : scan(ent, i) - scan(ppl, i) }
            let keep = max(1, n / 3)
            XCTAssertEqual(QTuningSelector.deepest(Array(0..<n), quadrants: quadrants, ppl: ppl, ent: ent, keep: keep),
                           SelectionRanking.top(depth, k: keep).sorted())
        }
    }
}
