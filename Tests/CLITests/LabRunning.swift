import Foundation
import XCTest

/// Running `scripts/lab` from a test, and its verdict rule written again in Swift.
protocol LabRunning {}

extension LabRunning {
    static var repo: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    func lab(_ args: [String], seconds: Int = 900) -> CLI.Result {
        CLI.run(["env", "SFT_DIST_BIN=\(CLI.binary)", "OPENBLAS_NUM_THREADS=1", Self.repo + "/scripts/lab"] + args,
                seconds: seconds)
    }

    func labJSON(_ dir: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/lab.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The rule of scripts/lab_lib/rules.py, written again: paired differences, 2 SE (or the rule's z).
    func expectedVerdict(_ claim: [String: Any]) throws -> String {
        let rule = try XCTUnwrap(claim["rule_spec"] as? [String: Any])
        let z = (rule["z"] as? Double) ?? 2
        let numbers = try XCTUnwrap(claim["numbers"] as? [String: [String: Any]])
        var statuses: [String] = []
        for part in try XCTUnwrap(rule["parts"] as? [[String: Any]]) {
            let a = try XCTUnwrap(numbers[part["a"] as! String]?["values"] as? [Double], "numbers for \(part["a"]!)")
            let b = try XCTUnwrap(numbers[part["b"] as! String]?["values"] as? [Double], "numbers for \(part["b"]!)")
            XCTAssertEqual(a.count, 3); XCTAssertEqual(b.count, 3)
            let d = zip(a, b).map { $0 - $1 }
            let mean = d.reduce(0, +) / Double(d.count)
            let sd = (d.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(d.count - 1)).squareRoot()
            let se = sd / Double(d.count).squareRoot()
            if part["expect"] as? String == "greater" {
                statuses.append(mean > z * se && mean > 0 ? "holds" : mean < -z * se && mean < 0 ? "contradicted" : "undecided")
            } else {
                let m = (part["margin"] as? Double) ?? 0
                statuses.append(mean - z * se > -m ? "holds" : mean + z * se < -m ? "contradicted" : "undecided")
            }
        }
        if statuses.allSatisfy({ $0 == "holds" }) { return "reproduced" }
        return statuses.contains("contradicted") ? "not reproduced" : "inconclusive"
    }
}
