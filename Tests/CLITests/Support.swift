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

    /// `timeout -k 5 <seconds>`: SIGTERM at the limit, SIGKILL 5 s later.
    @discardableResult
    static func run(_ args: [String], seconds: Int = 120, cwd: String? = nil) -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        p.arguments = ["-k", "5", "\(seconds)"] + args
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = "1"
        env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { return Result(status: -1, stdout: "", stderr: "cannot start: \(error)") }
        // Drain both pipes concurrently so a chatty child never blocks on a full pipe.
        final class Box: @unchecked Sendable { var data = Data() }
        let outBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outBox.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let outData = outBox.data
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
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

    static func occurrences(of needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }
}
