import Foundation
import XCTest

/// A run of `sft-dist` (alone or under mpirun) started in the background, under `timeout`
/// like every CLI test, so a test can watch its output directory and kill it — or one of its
/// ranks — from outside, the way a node failure or an operator would.
final class BackgroundJob {
    let process = Process()
    private let out = Pipe(), err = Pipe()
    private final class Box: @unchecked Sendable { var data = Data() }
    private let outBox = Box(), errBox = Box()
    private let group = DispatchGroup()
    let started = Date()

    /// `argv` under `timeout -k 5 <seconds>` (SIGTERM at the limit, SIGKILL 5 s later), in `cwd`
    /// if given; `environment` adds variables (e.g. SFT_DIST_FAULT). Both pipes are drained
    /// concurrently from the start, so a chatty child never blocks on a full pipe.
    init(_ argv: [String], seconds: Int, cwd: String? = nil, environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["-k", "5", "\(seconds)"] + argv
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = "1"
        env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = out
        process.standardError = err
        try process.run()
        for (pipe, box) in [(out, outBox), (err, errBox)] {
            group.enter()
            DispatchQueue.global().async { [group] in
                box.data = pipe.fileHandleForReading.readDataToEndOfFile()
                group.leave()
            }
        }
    }

    static func sftDist(_ args: [String], seconds: Int = 120, environment: [String: String] = [:]) throws -> BackgroundJob {
        try BackgroundJob([CLI.binary] + args, seconds: seconds, environment: environment)
    }

    static func mpirun(_ n: Int, _ args: [String], seconds: Int = 180, environment: [String: String] = [:]) throws -> BackgroundJob {
        try BackgroundJob(["mpirun"] + CLI.mpirunFlags + ["-n", "\(n)", CLI.binary] + args, seconds: seconds, environment: environment)
    }

    var isRunning: Bool { process.isRunning }

    /// Waits for the end; returns what `CLI.run` returns, and how long the job ran in total.
    func wait() -> (result: CLI.Result, seconds: Double) {
        process.waitUntilExit()
        group.wait()
        return (CLI.Result(status: process.terminationStatus, stdout: String(decoding: outBox.data, as: UTF8.self),
                           stderr: String(decoding: errBox.data, as: UTF8.self)), Date().timeIntervalSince(started))
    }

    /// Polls until `condition` holds (true) or `seconds` pass (false), or the job ends.
    func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            if !process.isRunning { return condition() }
            usleep(20_000)
        }
        return false
    }

    /// PIDs of this machine's `sft-dist` processes whose command line mentions `marker` (a
    /// unique output directory), with their MPI rank (0 when not under mpirun). Found
    /// through /proc, as an operator would with `ps`.
    static func ranks(marker: String) -> [(pid: Int32, rank: Int)] {
        let me = getpid()
        var found: [(Int32, Int)] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), pid != me,
                  let cmd = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let argv = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let exe = argv.first, exe.hasSuffix("sft-dist"), argv.contains(where: { $0.contains(marker) }) else { continue }
            let env = FileManager.default.contents(atPath: "/proc/\(entry)/environ") ?? Data()
            let rank = env.split(separator: 0).lazy.map { String(decoding: $0, as: UTF8.self) }
                .first { $0.hasPrefix("OMPI_COMM_WORLD_RANK=") }.flatMap { Int($0.dropFirst(21)) } ?? 0
            found.append((pid, rank))
        }
        return found.sorted { $0.1 < $1.1 }
    }

    /// SIGKILL to every process of the job: the launcher (`timeout`, mpirun) and the ranks.
    func killAll(marker: String) {
        let launcher = process.processIdentifier
        for child in Self.descendants(of: launcher) { kill(child, SIGKILL) }
        kill(launcher, SIGKILL)
        for r in Self.ranks(marker: marker) { kill(r.pid, SIGKILL) }
    }

    static func descendants(of pid: Int32) -> [Int32] {
        var children: [Int32: [Int32]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let p = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let parent = Int32(fields[1]) { children[parent, default: []].append(p) }
        }
        var out: [Int32] = [], stack = [pid]
        while let p = stack.popLast() { for c in children[p] ?? [] { out.append(c); stack.append(c) } }
        return out
    }
}

extension CLI {
    /// Training steps logged so far in `dir`/metrics.jsonl (rows with a "loss").
    static func stepsLogged(_ dir: String) -> Int {
        guard let text = try? String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8) else { return 0 }
        return text.split(separator: "\n").filter { $0.contains("\"loss\":") }.count
    }

    /// The `step` of every training row, in file order.
    static func loggedSteps(_ dir: String) -> [Int] {
        guard let text = try? String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], obj["loss"] != nil else { return nil }
            return (obj["step"] as? NSNumber)?.intValue
        }
    }

    /// Published checkpoints (`step-*`) and leftovers (`.tmp-*`) under `dir`/checkpoints.
    static func checkpoints(_ dir: String) -> (published: [String], temporary: [String]) {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/checkpoints")) ?? []).sorted()
        return (names.filter { $0.hasPrefix("step-") }, names.filter { $0.hasPrefix(".tmp-") })
    }
}
