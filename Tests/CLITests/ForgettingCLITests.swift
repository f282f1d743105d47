import Foundation
import XCTest

/// The forgetting controls through the CLI under real mpirun: `--freeze` leaves the frozen
/// tensors of the base model bit-identical at 1 and 2 ranks with the same losses (and
/// `--trainable` every tensor it does not match), `--ema`
/// writes `OUT/model-ema/` that `eval --model` loads, bad selections and merges are refused
/// in one line, and `merge` writes a model `eval` loads.
final class ForgettingCLITests: XCTestCase {
    static let frozen = "wte|^transformer\\.h\\.0\\."

    /// Tensors of a model.safetensors (or `file`) by name: raw bytes (the format: an 8-byte
    /// little-endian header length, a JSON header with `data_offsets`, then the data).
    static func tensors(_ dir: String, file name: String = "model.safetensors") -> [String: Data] {
        guard let file = FileManager.default.contents(atPath: dir + "/" + name), file.count >= 8 else { return [:] }
        let n = file.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard let header = try? JSONSerialization.jsonObject(with: file.subdata(in: 8..<(8 + n))) as? [String: Any] else { return [:] }
        var out: [String: Data] = [:]
        for (name, info) in header where name != "__metadata__" {
            guard let o = (info as? [String: Any])?["data_offsets"] as? [Int], o.count == 2 else { continue }
            out[name] = file.subdata(in: (8 + n + o[0])..<(8 + n + o[1]))
        }
        return out
    }

    /// A tensor's float32 values (the models save F32, little-endian).
    static func floats(_ data: Data?) -> [Float] {
        guard let data else { return [] }
        return data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }

    /// Frozen tensors stay put at 1 and 2 ranks; the losses, gradient norms, penalties and the
    /// `--ema` average (model-ema/) agree between the rank counts up to float summation order.
    func testFrozenTensorsStayBitIdenticalAtOneAndTwoRanksWithEMAAndL2Init() throws {
        let base = CLI.tempDir("forget-base")
        let quiet = ["--eval-every", "0", "--eval-examples", "0", "--quiet", "--batch-size", "8", "--micro-batch-size", "2"]
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--out", base] + quiet).status, 0)
        let before = Self.tensors(base + "/model")
        XCTAssertFalse(before.isEmpty)
        var runs: [[[String: Double]]] = []
        var averages: [[String: Data]] = []
        for n in [1, 2] {
            let out = CLI.tempDir("forget-\(n)")
            let r = CLI.mpirun(n, ["train", "--model", base + "/model", "--steps", "4", "--freeze", Self.frozen,
                                   "--ema", "0.8", "--l2-init", "5", "--optimizer", "sgd", "--lr", "0.1", "--warmup-steps", "1", "--checksum-every", "2", "--out", out] + quiet, seconds: 120)
            XCTAssertEqual(r.status, 0, r.all)
            let after = Self.tensors(out + "/model"), ema = Self.tensors(out + "/model-ema")
            XCTAssertEqual(Set(after.keys), Set(before.keys))
            XCTAssertEqual(Set(ema.keys), Set(before.keys), "model-ema/ has the same tensors")
            let frozen = before.keys.filter { $0.range(of: Self.frozen, options: .regularExpression) != nil }
            XCTAssertTrue(frozen.contains("transformer.wte.weight") && frozen.count < before.count / 2, "\(frozen)")
            for name in before.keys.sorted() {
                if frozen.contains(name) {
                    XCTAssertEqual(after[name], before[name], "-n \(n): frozen \(name) changed")
                    XCTAssertEqual(ema[name], before[name], "-n \(n): the average of frozen \(name) changed")
                } else if name.hasSuffix("weight") && name.contains(".h.1.") {
                    XCTAssertNotEqual(after[name], before[name], "-n \(n): trainable \(name) did not move")
                    XCTAssertNotEqual(ema[name], after[name], "-n \(n): the average of \(name) equals the weights")
                }
            }
            let rows = CLI.trainingRows(out)
            XCTAssertEqual(rows.count, 4)
            XCTAssertTrue(rows.dropFirst().allSatisfy { ($0["l2_init_penalty"] ?? 0) > 0 }, "\(rows)")
            runs.append(rows)
            averages.append(ema)
            if n == 2 {
                let e = CLI.sftDist(["eval", "--model", out + "/model-ema", "--data", base + "/data/heldout.jsonl", "--examples", "8"])
                XCTAssertEqual(e.status, 0, e.all)
            }
        }
        // The same losses, gradient norms (data + λ(θ − θ₀)) and penalties at 1 and 2 ranks. SGD:
        // Adam's m/√v would turn float-summation noise in near-zero gradients into ±lr steps.
        for (i, (one, two)) in zip(runs[0], runs[1]).enumerated() {
            for key in ["loss", "grad_norm", "l2_init_penalty"] {
                let a = one[key] ?? .nan, b = two[key] ?? .nan
                XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a), "step \(i + 1) \(key): -n 1 \(a) vs -n 2 \(b)")
            }
        }
        // The same average at 1 and 2 ranks: every trained tensor's -n 1 / -n 2 difference is
        // within 1e-5 of how far its average moved from the base (the weights differ only in
        // the last bits of summed gradients; an average updated differently per rank count
        // differs by a share of that distance).
        XCTAssertEqual(averages.count, 2)
        guard averages.count == 2 else { return }
        var moved = 0
        for name in before.keys.sorted() {
            let b = Self.floats(before[name]), one = Self.floats(averages[0][name]), two = Self.floats(averages[1][name])
            XCTAssertEqual(one.count, b.count, name); XCTAssertEqual(two.count, b.count, name)
            guard one.count == b.count && two.count == b.count else { continue }
            var distance = 0.0, difference = 0.0
            for i in b.indices {
                distance += pow(Double(one[i]) - Double(b[i]), 2)
                difference += pow(Double(one[i]) - Double(two[i]), 2)
            }
            (distance, difference) = (distance.squareRoot(), difference.squareRoot())
            if distance > 0 { moved += 1 }
            XCTAssertLessThanOrEqual(difference, 1e-5 * distance, "the average of \(name): -n 1 vs -n 2 differ by \(difference), it moved \(distance)")
        }
        XCTAssertGreaterThan(moved, before.count / 2, "the average moved")
    }

    /// `--trainable` alone (no `--freeze`) under real mpirun, given once as an alternation and
    /// at 2 ranks as two flags: only the tensors it matches train,
    /// every other tensor of the base is bit-identical after training at 1 and 2 ranks, and the
    /// losses and gradient norms agree between the rank counts up to float summation order.
    func testTrainableTrainsOnlyItsMatchesAtOneAndTwoRanks() throws {
        let trainable = "mlp|ln_f"
        let base = CLI.tempDir("trainable-base")
        let quiet = ["--eval-every", "0", "--eval-examples", "0", "--quiet", "--batch-size", "8", "--micro-batch-size", "2"]
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--out", base] + quiet).status, 0)
        let before = Self.tensors(base + "/model")
        let chosen = Set(before.keys.filter { $0.range(of: trainable, options: .regularExpression) != nil })
        XCTAssertTrue(chosen.contains("transformer.h.0.mlp.c_fc.weight") && chosen.contains("transformer.ln_f.bias") && chosen.count < before.count / 2, "\(chosen)")
        var runs: [[[String: Double]]] = []
        for n in [1, 2] {
            let out = CLI.tempDir("trainable-\(n)")
            // At 2 ranks as two flags, which select what either matches (the last alone trained only ln_f).
            let selection = n == 1 ? ["--trainable", trainable] : ["--trainable", "mlp", "--trainable", "ln_f"]
            let r = CLI.mpirun(n, ["train", "--model", base + "/model", "--steps", "3"] + selection + ["--optimizer", "sgd",
                                   "--lr", "0.1", "--warmup-steps", "1", "--checksum-every", "2", "--out", out] + quiet, seconds: 120)
            XCTAssertEqual(r.status, 0, r.all)
            let after = Self.tensors(out + "/model")
            XCTAssertEqual(Set(after.keys), Set(before.keys))
            for name in before.keys.sorted() {
                if chosen.contains(name) {
                    XCTAssertNotEqual(after[name], before[name], "-n \(n): trainable \(name) did not move")
                } else {
                    XCTAssertEqual(after[name], before[name], "-n \(n): \(name), outside --trainable, changed")
                }
            }
            runs.append(CLI.trainingRows(out))
        }
        XCTAssertEqual(runs.map(\.count), [3, 3])
        for (i, (one, two)) in zip(runs[0], runs[1]).enumerated() {
            for key in ["loss", "grad_norm"] {
                let a = one[key] ?? .nan, b = two[key] ?? .nan
                XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a), "step \(i + 1) \(key): -n 1 \(a) vs -n 2 \(b)")
            }
        }
    }

    func testBadSelectionsAndMergesAreOneLineErrors() throws {
        let out = CLI.tempDir("forget-bad")
        for (flags, needle) in [(["--freeze", "no_such_tensor"], "--freeze \"no_such_tensor\" matches none"),
                                (["--freeze", "."], "--freeze \".\" matches every one"),
                                (["--trainable", "("], "--trainable must be a regular expression")] {
            let r = CLI.mpirun(2, ["train", "--model", "tiny", "--steps", "1", "--out", out + "/run"] + flags, seconds: 60)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains(needle), r.all)
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error", in: r.stderr), 1, r.all)
        }
        // Two models of one config merge; a different depth is refused naming the field.
        let quiet = ["--steps", "1", "--eval-every", "0", "--eval-examples", "0", "--quiet", "--batch-size", "4", "--micro-batch-size", "2"]
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--out", out + "/a"] + quiet).status, 0)
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--seed", "9", "--out", out + "/b"] + quiet).status, 0)
        XCTAssertEqual(CLI.sftDist(["train", "--model", "small", "--out", out + "/c"] + quiet).status, 0)
        let ok = CLI.sftDist(["merge", out + "/a/model", out + "/b/model", "--weights", "0.25,0.75", "--out", out + "/m"])
        XCTAssertEqual(ok.status, 0, ok.all)
        let e = CLI.sftDist(["eval", "--model", out + "/m", "--data", out + "/a/data/heldout.jsonl", "--examples", "4"])
        XCTAssertEqual(e.status, 0, e.all)
        let bad = CLI.sftDist(["merge", out + "/a/model", out + "/c/model", "--out", out + "/m2"])
        XCTAssertEqual(bad.status, 1, bad.all)
        XCTAssertTrue(bad.stderr.contains("config.json: field \""), bad.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/m2"))
        let weights = CLI.sftDist(["merge", out + "/a/model", out + "/b/model", "--weights", "0.5,x", "--out", out + "/m3"])
        XCTAssertEqual(weights.status, 1, weights.all)
        XCTAssertTrue(weights.stderr.contains("--weights: \"x\" is not a number"), weights.all)
        // A negative first weight (extrapolation) is the value, not an unknown flag.
        let negative = CLI.sftDist(["merge", out + "/a/model", out + "/b/model", "--weights", "-1,2", "--out", out + "/m4"])
        XCTAssertEqual(negative.status, 0, negative.all)
        // Set in a recipe file, the same problems name the file and line, not a flag not given.
        let frozen = out + "/frozen.yaml", evals = out + "/evals.yaml", lora = out + "/lora.yaml"
        try "model: tiny\nsteps: 1\nfreeze: no_such_tensor\n".write(toFile: frozen, atomically: true, encoding: .utf8)
        try "model: tiny\nsteps: 1\nlora_rank: 4\nlora_targets: q_proj\n".write(toFile: lora, atomically: true, encoding: .utf8)
        try "model: tiny\nsteps: 1\neval_data:\n  kept: \(out)/a/data/heldout.jsonl\n  gone: \(out)/gone.jsonl\n".write(toFile: evals, atomically: true, encoding: .utf8)
        for (recipe, flags, needle) in [(frozen, [String](), "\(frozen):3: freeze \"no_such_tensor\" matches none"),
                                        (frozen, ["--freeze", "nor_this"], "--freeze \"nor_this\" matches none"),
                                        (evals, [], "\(evals):5: eval_data gone=\(out)/gone.jsonl: "),  // the entry's own line
                                        // a flag adds a set: the file's entries keep their lines
                                        (evals, ["--eval-data", "extra=\(out)/a/data/heldout.jsonl"], "\(evals):5: eval_data gone=\(out)/gone.jsonl: "),
                                        (evals, ["--eval-data", "gone=\(out)/gone2.jsonl"], "--eval-data gone=\(out)/gone2.jsonl: "),
                                        (lora, [], "\(lora):4: lora_targets: the gpt2 model has no adaptable module \"q_proj\""),
                                        (lora, ["--lora-targets", "k_proj"], "--lora-targets: the gpt2 model has no adaptable module \"k_proj\"")] {
            let r = CLI.sftDist(["train", "--config", recipe, "--out", out + "/run"] + flags, seconds: 60)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains(needle), r.all)
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error", in: r.stderr), 1, r.all)
        }
    }

    /// WiSE-FT through the CLI: a Hugging Face base (the transformers-made Llama and GPT-2
    /// fixtures) merged with an sft-dist fine-tune of it, which `eval` then loads.
    func testMergeOfAHuggingFaceBaseWithItsFineTune() {
        let out = CLI.tempDir("forget-wise")
        for name in ["llama", "gpt2"] {
            let base = HFModelCLITests.model(name)
            let t = CLI.sftDist(["train", "--model", base, "--data", HFModelCLITests.data, "--steps", "2", "--batch-size", "2",
                                 "--eval-every", "0", "--eval-examples", "0", "--quiet", "--out", out + "/" + name])
            XCTAssertEqual(t.status, 0, t.all)
            let m = CLI.sftDist(["merge", base, out + "/\(name)/model", "--weights", "0.5,0.5", "--out", out + "/\(name)-wise"])
            XCTAssertEqual(m.status, 0, "\(name): \(m.all)")
            let e = CLI.sftDist(["eval", "--model", out + "/\(name)-wise", "--data", HFModelCLITests.data, "--examples", "4"])
            XCTAssertEqual(e.status, 0, "\(name): \(e.all)")
        }
    }

    /// `kill -9` of a 2-rank job with a frozen set, `--l2-init` and `--ema`, then `--resume
    /// latest`: the losses and the saved average are those of a run never interrupted, bit
    /// for bit (the average and θ₀ come back from the checkpoint).
    func testKillNineThenResumeWithFreezeL2InitAndEMAIsBitExact() throws {
        let args = ["train", "--model", "tiny", "--steps", "16", "--batch-size", "8", "--micro-batch-size", "2",
                    "--warmup-steps", "2", "--eval-examples", "0", "--eval-every", "0", "--quiet",
                    "--freeze", "wpe|ln_f", "--l2-init", "0.5", "--ema", "0.9", "--save-every", "3"]
        let reference = CLI.tempDir("forget-reference")
        XCTAssertEqual(CLI.mpirun(2, args + ["--out", reference]).status, 0)
        let out = CLI.tempDir("forget-killed")
        let job = try BackgroundJob.mpirun(2, args + ["--out", out], seconds: 120)
        XCTAssertTrue(job.waitUntil(seconds: 100) { CLI.stepsLogged(out) >= 7 }, "the job never got to step 7")
        job.killAll(marker: out)
        let (killed, _) = job.wait()
        XCTAssertNotEqual(killed.status, 0, "the job finished before it could be killed")
        XCTAssertFalse(CLI.checkpoints(out).published.isEmpty, "no checkpoint before the kill")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model-ema"))
        let resumed = CLI.mpirun(2, args.filter { $0 != "--quiet" } + ["--out", out, "--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        XCTAssertTrue(resumed.stdout.contains("resume: continuing after step "), resumed.all)
        XCTAssertEqual(CLI.losses(out).map(\.bitPattern), CLI.losses(reference).map(\.bitPattern))
        XCTAssertEqual(CLI.losses(out).count, 16)
        let ema = Self.tensors(out + "/model-ema"), expected = Self.tensors(reference + "/model-ema")
        XCTAssertFalse(expected.isEmpty)
        XCTAssertEqual(ema, expected, "the average after resuming")
    }
}
