import Foundation
import XCTest

/// A model directory's generation_config.json through the CLI: `generate` (and eval, whose
/// generation shares `Evaluator.stopIds`) stops at its `eos_token_id`, and every model a run
/// writes — the fine-tuned model, LoRA's merged model, export — keeps the file, as
/// transformers' save_pretrained does.
final class GenerationConfigCLITests: XCTestCase {
    func generated(_ model: String, cwd: String) throws -> (ids: [Int], finish: String) {
        let g = CLI.sftDist(["generate", "--model", model, "--prompt", "add 12 34 =", "--max-new-tokens", "8", "--json"], cwd: cwd)
        XCTAssertEqual(g.status, 0, g.all)
        let line = try XCTUnwrap(g.stdout.split(separator: "\n").first.map(String.init), g.all)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
        return (try XCTUnwrap(obj["ids"] as? [Int], line), try XCTUnwrap(obj["finish"] as? String, line))
    }

    func testGenerateStopsAtItsEosAndEverySavedModelKeepsIt() throws {
        let dir = CLI.tempDir("generation-config")
        let t = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--eval-examples", "0", "--quiet", "--out", "run"], cwd: dir)
        XCTAssertEqual(t.status, 0, t.all)
        let before = try generated("run/model", cwd: dir)
        let stopAt = try XCTUnwrap(before.ids.first, "the untrained model generated nothing: \(before)")
        let file = #"{"eos_token_id": [\#(stopAt), 99999], "max_new_tokens": 40}"#
        try file.write(toFile: dir + "/run/model/generation_config.json", atomically: true, encoding: .utf8)
        let after = try generated("run/model", cwd: dir)
        XCTAssertEqual(after.ids, Array(before.ids.prefix { $0 != stopAt }), "stops before its eos_token_id \(stopAt)")
        XCTAssertEqual(after.finish, "stop")

        let original = try JSONSerialization.jsonObject(with: Data(file.utf8)) as! NSDictionary
        func kept(_ path: String, file: StaticString = #filePath, line: UInt = #line) {
            let data = FileManager.default.contents(atPath: dir + "/" + path + "/generation_config.json")
            let json = data.flatMap { try? JSONSerialization.jsonObject(with: $0) as? NSDictionary }
            XCTAssertEqual(json, original, path, file: file, line: line)
        }
        let fineTuned = CLI.sftDist(["train", "--model", "run/model", "--steps", "1", "--eval-examples", "0", "--quiet", "--out", "ft"], cwd: dir)
        XCTAssertEqual(fineTuned.status, 0, fineTuned.all)
        kept("ft/model")
        let lora = CLI.sftDist(["train", "--model", "run/model", "--lora-rank", "4", "--merge-lora", "--steps", "1", "--eval-examples", "0",
                                "--quiet", "--out", "lora"], cwd: dir)
        XCTAssertEqual(lora.status, 0, lora.all)
        kept("lora/model-merged")
        XCTAssertEqual(CLI.sftDist(["export", "--model", "ft/model", "--out", "hf"], cwd: dir).status, 0)
        kept("hf")
        // The fine-tuned model generates with the same stops.
        XCTAssertEqual(try generated("ft/model", cwd: dir).finish, "stop")
    }

    /// A file that asks for sampling (an Instruct model's do_sample, temperature, top_p …):
    /// transformers would sample with it, sft-dist's flags decide — said once on stderr by
    /// generate and eval, where the output silently differed from transformers'.
    func testSamplingTheFileAsksForIsSaidNotApplied() throws {
        let dir = CLI.tempDir("generation-config-sampling")
        let t = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--eval-examples", "0", "--quiet", "--out", "run"], cwd: dir)
        XCTAssertEqual(t.status, 0, t.all)
        let plain = CLI.sftDist(["generate", "--model", "run/model", "--prompt", "add 1 2 =", "--max-new-tokens", "2"], cwd: dir)
        XCTAssertFalse(plain.stderr.contains("generation_config"), plain.all)
        try #"{"do_sample": true, "temperature": 0.7, "top_p": 0.8}"#.write(toFile: dir + "/run/model/generation_config.json", atomically: true, encoding: .utf8)
        let asked = "run/model's generation_config.json asks for sampling (do_sample true, temperature 0.7, top_p 0.8)"
        let g = CLI.sftDist(["generate", "--model", "run/model", "--prompt", "add 1 2 =", "--max-new-tokens", "2"], cwd: dir)
        XCTAssertEqual(g.status, 0, g.all)
        XCTAssertEqual(CLI.occurrences(of: asked, in: g.stderr), 1, g.all)
        XCTAssertTrue(g.stderr.contains("this run decodes greedily (--temperature 0)"), g.all)
        try "{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\"}\n".write(toFile: dir + "/d.jsonl", atomically: true, encoding: .utf8)
        let e = CLI.mpirun(2, ["eval", "--model", dir + "/run/model", "--data", dir + "/d.jsonl", "--samples", "2"])
        XCTAssertEqual(e.status, 0, e.all)
        XCTAssertEqual(CLI.occurrences(of: "generation_config.json asks for sampling", in: e.stderr), 1, e.all)
        XCTAssertTrue(e.stderr.contains("eval's answers are greedy and its --samples draw at --temperature 1.0"), e.all)
        try #"{"do_sample": false, "temperature": 0.7}"#.write(toFile: dir + "/run/model/generation_config.json", atomically: true, encoding: .utf8)
        let off = CLI.sftDist(["generate", "--model", "run/model", "--prompt", "add 1 2 =", "--max-new-tokens", "2"], cwd: dir)
        XCTAssertFalse(off.stderr.contains("generation_config"), off.all)
        // do_sample as Python reads it (transformers' `if do_sample:`), values as the file has them.
        try #"{"do_sample": "yes", "temperature": -1, "top_k": "5"}"#.write(toFile: dir + "/run/model/generation_config.json", atomically: true, encoding: .utf8)
        let yes = CLI.sftDist(["generate", "--model", "run/model", "--prompt", "add 1 2 =", "--max-new-tokens", "2"], cwd: dir)
        XCTAssertEqual(yes.status, 0, yes.all)
        XCTAssertEqual(CLI.occurrences(of: #"asks for sampling (do_sample "yes", temperature -1, top_k "5")"#, in: yes.stderr), 1, yes.all)
        for no in ["0", "\"\"", "[]", "null"] {
            try "{\"do_sample\": \(no), \"temperature\": 0.7}".write(toFile: dir + "/run/model/generation_config.json", atomically: true, encoding: .utf8)
            let r = CLI.sftDist(["generate", "--model", "run/model", "--prompt", "add 1 2 =", "--max-new-tokens", "2"], cwd: dir)
            XCTAssertFalse(r.stderr.contains("generation_config"), no + ": " + r.all)
        }
    }

    func testABrokenFileIsOneLineNamingIt() throws {
        let dir = CLI.tempDir("generation-config-bad")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--eval-examples", "0", "--quiet", "--out", "run"], cwd: dir).status, 0)
        try #"{"eos_token_id": "</s>"}"#.write(toFile: dir + "/run/model/generation_config.json", atomically: true, encoding: .utf8)
        for args in [["generate", "--model", "run/model", "--prompt", "x"], ["train", "--model", "run/model", "--steps", "1", "--out", "again"]] {
            let r = CLI.sftDist(args, cwd: dir)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertEqual(CLI.occurrences(of: #"run/model/generation_config.json: field "eos_token_id" must be an integer, got "</s>""#, in: r.stderr), 1, r.all)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/again/model"))
    }

    /// merge takes the first generation_config.json given, and says so when the models differ.
    func testMergeKeepsTheFirstGenerationConfigGivenAndSaysSo() throws {
        let dir = CLI.tempDir("generation-config-merge")
        for (out, seed) in [("a", "1"), ("b", "2")] {
            XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--eval-examples", "0", "--seed", seed, "--quiet", "--out", out], cwd: dir).status, 0)
        }
        try #"{"eos_token_id": 61}"#.write(toFile: dir + "/b/model/generation_config.json", atomically: true, encoding: .utf8)
        let m = CLI.sftDist(["merge", "a/model", "b/model", "--out", "m"], cwd: dir)
        XCTAssertEqual(m.status, 0, m.all)
        XCTAssertTrue(m.stdout.contains("note: the models' generation_config.json differ; the merged model has b/model's"), m.all)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/m/generation_config.json").flatMap { try? JSONSerialization.jsonObject(with: $0) as? NSDictionary },
                       ["eos_token_id": 61] as NSDictionary)
        try FileManager.default.copyItem(atPath: dir + "/b/model", toPath: dir + "/b-copy")
        let same = CLI.sftDist(["merge", "b/model", "b-copy", "--out", "m2"], cwd: dir)
        XCTAssertEqual(same.status, 0, same.all)
        XCTAssertFalse(same.stdout.contains("note:"), same.all)
    }
}
