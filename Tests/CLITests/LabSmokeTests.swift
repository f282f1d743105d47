import Foundation
import XCTest

/// `scripts/lab` at its tiny size on one claim: the base model is pretrained and reused, every
/// rule part's numbers are there for every seed, the verdict follows from them by the written
/// rule (recomputed here), and `--reverdict` decides planted clear-cut numbers the right way round.
final class LabSmokeTests: XCTestCase, LabRunning {
    static let claim = "dft-generalisation"

    func testTinyClaimHasNumbersAndTheRulesVerdict() throws {
        let dir = CLI.tempDir("lab")
        let r = lab(["--size", "tiny", "--only", Self.claim, "--out", dir, "-n", "1"])
        XCTAssertEqual(r.status, 0, r.all)
        let doc = try labJSON(dir)
        let claims = try XCTUnwrap(doc["claims"] as? [[String: Any]])
        XCTAssertEqual(claims.map { $0["id"] as? String }, [Self.claim])
        let claim = claims[0]
        for key in ["paper", "claim", "rule", "experiment"] {
            XCTAssertFalse((claim[key] as? String ?? "").isEmpty, key)
        }
        XCTAssertEqual(claim["verdict"] as? String, try expectedVerdict(claim))
        let html = try String(contentsOfFile: dir + "/report.html", encoding: .utf8)
        XCTAssertTrue(html.contains("id=\"\(Self.claim)\"") && html.contains("class=\"lab-chart\"") && html.contains("class=\"mark\""))
        for reference in ["src=", "href=\"http", "url(", "@import", "<script"] {
            XCTAssertFalse(html.contains(reference), "the report loads nothing: \(reference)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/charts/\(Self.claim).svg"))

        // The base model is cached: a second run trains nothing new and gives the same numbers.
        let again = lab(["--size", "tiny", "--only", Self.claim, "--out", dir, "-n", "1"])
        XCTAssertEqual(again.status, 0, again.all)
        XCTAssertFalse(again.stderr.contains(" train "), again.stderr)
        let second = try XCTUnwrap((try labJSON(dir)["claims"] as? [[String: Any]])?.first)
        XCTAssertEqual(second["numbers"] as? NSDictionary, claim["numbers"] as? NSDictionary)

        // Planted numbers: dft far above nll on every seed must be reproduced, far below not reproduced.
        for (shift, verdict) in [(0.5, "reproduced"), (-0.5, "not reproduced"), (0.0, "inconclusive")] {
            var planted = doc
            var c = claim
            var numbers = try XCTUnwrap(c["numbers"] as? [String: [String: Any]])
            guard numbers["nll.hard"] != nil, numbers["dft.hard"] != nil else {
                return XCTFail("lab.json lacks nll.hard or dft.hard: \(numbers.keys.sorted())")
            }
            numbers["nll.hard"]!["values"] = [0.20, 0.30, 0.25]
            numbers["dft.hard"]!["values"] = [0.20 + shift, 0.31 + shift, 0.24 + shift]
            c["numbers"] = numbers
            planted["claims"] = [c]
            try JSONSerialization.data(withJSONObject: planted).write(to: URL(fileURLWithPath: dir + "/lab.json"))
            let re = lab(["--reverdict", dir], seconds: 60)
            XCTAssertEqual(re.status, 0, re.all)
            let decided = try XCTUnwrap((try labJSON(dir)["claims"] as? [[String: Any]])?.first)
            XCTAssertEqual(decided["verdict"] as? String, verdict, "shift \(shift)")
            XCTAssertEqual(decided["verdict"] as? String, try expectedVerdict(decided))
        }
    }
}
