import Foundation
import XCTest

/// Runs the built `sft-dist` binary, alone or under real mpirun, always under `timeout` so a
/// hung job fails the test instead of hanging CI.
enum CLI {
    /// SFT_DIST_BIN, else the binary built next to this test bundle.
    static var binary: String {
        if let b = ProcessInfo.processInfo.environment["SFT_DIST_BIN"] { return b }
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var url = dir.appendingPathComponent("sft-dist")
        // Under `swift test` argv[0] may be the xctest helper; search upwards.
        if !FileManager.default.fileExists(atPath: url.path) {
            url = dir.deletingLastPathComponent().appendingPathComponent("sft-dist")
        }
        return url.path
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var all: String { stdout + stderr }
    }

    /// `timeout -k 5 <seconds>`: SIGTERM at the limit, SIGKILL 5 s later (see `BackgroundJob`,
    /// which starts every process of the tests; this waits for it).
    @discardableResult
    static func run(_ args: [String], seconds: Int = 120, cwd: String? = nil) -> Result {
        do { return try BackgroundJob(args, seconds: seconds, cwd: cwd).wait().result } catch {
            return Result(status: -1, stdout: "", stderr: "cannot start: \(error)")
        }
    }

    static func sftDist(_ args: [String], seconds: Int = 120, cwd: String? = nil) -> Result {
        run([binary] + args, seconds: seconds, cwd: cwd)
    }

    static let mpirunFlags = ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
                              "-x", "OPENBLAS_NUM_THREADS=1"]

    /// `mpirun -n N sft-dist args…`
    static func mpirun(_ n: Int, _ args: [String], seconds: Int = 180, cwd: String? = nil) -> Result {
        run(["mpirun"] + mpirunFlags + ["-n", "\(n)", binary] + args, seconds: seconds, cwd: cwd)
    }

    /// MPMD: one rank per argument list (`mpirun -n 1 a : -n 1 b`), each with its own cwd.
    static func mpirunEach(_ ranks: [(args: [String], cwd: String)], seconds: Int = 120) -> Result {
        var argv = ["mpirun"] + mpirunFlags
        for (i, r) in ranks.enumerated() {
            if i > 0 { argv.append(":") }
            argv += ["-n", "1", "-wdir", r.cwd, binary] + r.args
        }
        return run(argv, seconds: seconds)
    }

    /// `rows` as a JSONL file, one JSON object a line.
    static func writeJSONL(_ path: String, _ rows: [[String: Any]]) {
        let lines = rows.map { String(data: try! JSONSerialization.data(withJSONObject: $0), encoding: .utf8)! }
        FileManager.default.createFile(atPath: path, contents: Data(lines.joined(separator: "\n").utf8))
    }

    static func tempDir(_ name: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("sft-dist-tests-\(getpid())/\(name)").path
        try? FileManager.default.removeItem(atPath: d)
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// The per-step training losses in a metrics.jsonl.
    static func losses(_ dir: String) -> [Double] {
        guard let text = try? String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return (obj["loss"] as? NSNumber)?.doubleValue
        }
    }

    /// The numeric fields of every training row (with a "loss") of a metrics.jsonl, in order.
    static func trainingRows(_ dir: String) -> [[String: Double]] {
        guard let text = try? String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], obj["loss"] != nil else { return nil }
            return obj.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }

    /// The evaluation rows (no "loss": not a training step) of a metrics.jsonl, numeric fields, in order.
    static func evalRows(_ dir: String) -> [[String: Double]] {
        guard let text = try? String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], obj["loss"] == nil else { return nil }
            return obj.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }

    /// `args` run under mpirun at each of `ranks` (each into a fresh `label-<n>` directory,
    /// which must exit 0): the training rows of each run, in the order of `ranks`.
    static func trainingRows(atRanks ranks: [Int], _ args: [String], label: String, seconds: Int = 120,
                             file: StaticString = #filePath, line: UInt = #line) -> [[[String: Double]]] {
        ranks.map { n in
            let out = tempDir("\(label)-\(n)")
            let r = mpirun(n, args + ["--out", out], seconds: seconds)
            XCTAssertEqual(r.status, 0, r.all, file: file, line: line)
            return trainingRows(out)
        }
    }

    /// `args` (a run of `steps` steps, without --out) checkpointed every `every` steps, then run
    /// again resumed from step `every`'s checkpoint: the same losses to the bit.
    static func assertResumesBitExact(_ args: [String], every: Int, label: String,
                                      file: StaticString = #filePath, line: UInt = #line) {
        let out = tempDir(label)
        XCTAssertEqual(sftDist(args + ["--save-every", "\(every)", "--out", out + "/a"]).status, 0, file: file, line: line)
        let r = sftDist(args + ["--out", out + "/b", "--resume", out + "/a/checkpoints/step-" + String(format: "%06d", every)])
        XCTAssertEqual(r.status, 0, r.all, file: file, line: line)
        XCTAssertEqual(losses(out + "/b").map(\.bitPattern), losses(out + "/a").map(\.bitPattern), file: file, line: line)
    }

    static func occurrences(of needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }
}
