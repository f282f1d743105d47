import Foundation
import XCTest

/// The selection flags given more than once: `--lora-targets`, `--freeze`, `--trainable` join.
final class SelectionFlagsCLITests: XCTestCase {
    /// `--lora-targets` given more than once adapts every module any of them names (the last
    /// alone counted), as does `--freeze`: the recipe saved holds the union, and resumes.
    func testRepeatedSelectionFlagsJoin() throws {
        let out = CLI.tempDir("lora-repeated")
        let run = ["train", "--model", "tiny", "--steps", "2", "--batch-size", "4", "--micro-batch-size", "2", "--eval-every", "0",
                   "--eval-examples", "0", "--quiet", "--lora-rank", "2", "--save-every", "1", "--out", out,
                   "--lora-targets", "c_attn", "--lora-targets", "c_fc", "--lora-targets", "c_attn"]
        let t = CLI.sftDist(run)
        XCTAssertEqual(t.status, 0, t.all)
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/model/adapter_config.json"))) as? [String: Any])
        XCTAssertEqual(Set(try XCTUnwrap(config["target_modules"] as? [String])), ["c_attn", "c_fc"])
        XCTAssertTrue(try String(contentsOfFile: out + "/recipe.yaml", encoding: .utf8).contains("lora_targets: c_attn,c_fc\n"))
        let resumed = CLI.sftDist(run + ["--resume", out + "/checkpoints/step-000001"])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        let all = CLI.sftDist(run + ["--lora-targets", "all-linear", "--out", out + "/all", "--save-every", "0"])
        XCTAssertEqual(all.status, 0, all.all)
        XCTAssertTrue(try String(contentsOfFile: out + "/all/recipe.yaml", encoding: .utf8).contains("lora_targets: all-linear\n"))
        // Each --freeze is checked as given; together they freeze what either matches.
        let freeze = ["train", "--model", "tiny", "--steps", "1", "--batch-size", "4", "--eval-every", "0", "--eval-examples", "0", "--quiet"]
        let bad = CLI.sftDist(freeze + ["--freeze", "wte", "--freeze", "(", "--out", out + "/bad"])
        XCTAssertEqual(bad.status, 1, bad.all)
        XCTAssertTrue(bad.stderr.contains("--freeze must be a regular expression (got ()"), bad.all)
        let both = CLI.sftDist(freeze + ["--freeze", "wte", "--freeze", "(?i)LN_F", "--out", out + "/both"])
        XCTAssertEqual(both.status, 0, both.all)
        XCTAssertTrue(try String(contentsOfFile: out + "/both/recipe.yaml", encoding: .utf8).contains("freeze: (?:wte)|(?:(?i)LN_F)\n"))
        let every = CLI.sftDist(freeze + ["--freeze", "wte|ln_f", "--freeze", ".", "--out", out + "/every"])
        XCTAssertEqual(every.status, 1, every.all)
        XCTAssertTrue(every.stderr.contains("--freeze \"(?:wte|ln_f)|(?:.)\" matches every one"), every.all)
    }
}
