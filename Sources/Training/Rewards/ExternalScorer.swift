import Foundation

/// Any program as a reward: started once per batch with `/bin/sh -c COMMAND`, it reads one
/// JSON object per line on stdin (`{"prompt", "completion", "reference", "source"}`) and
/// must write one number per line on stdout, in order. A crash, a timeout, a wrong number of
/// lines or a line that is not a number is an error naming the example it concerns.
public final class ExternalScorer: Scorer {
    public let name = "command"
    public let command: String
    public let timeout: Double

    public init(command: String, timeout: Double) { self.command = command; self.timeout = timeout }

    public func score(_ items: [ScoringItem]) throws -> [Float] {
        if items.isEmpty { return [] }
        let input = items.map { item -> String in
            var obj: [String: Any] = ["prompt": item.prompt, "completion": item.completion, "source": item.source]
            obj["reference"] = item.reference ?? NSNull()
            let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data("{}".utf8)
            return String(decoding: data, as: UTF8.self)
        }.joined(separator: "\n") + "\n"

        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        p.standardInput = stdin; p.standardOutput = stdout; p.standardError = stderr
        do { try p.run() } catch { throw ScorerError("scorer command \(command.debugDescription) could not start: \(error.localizedDescription)") }

        // Feed stdin and drain both outputs concurrently so no pipe fills up and blocks.
        final class Box: @unchecked Sendable { var out = Data(), err = Data() }
        let box = Box()
        let group = DispatchGroup()
        group.enter(); DispatchQueue.global().async { box.out = stdout.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter(); DispatchQueue.global().async { box.err = stderr.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        // A scorer that exits without reading its input must not kill us with SIGPIPE: ignore
        // the signal and write with plain write(2), which then just reports EPIPE.
        signal(SIGPIPE, SIG_IGN)
        let fd = stdin.fileHandleForWriting.fileDescriptor
        DispatchQueue.global().async {
            let bytes = Array(input.utf8)
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                sent += n
            }
            try? stdin.fileHandleForWriting.close()
        }
        if group.wait(timeout: .now() + timeout) == .timedOut {
            p.terminate()
            usleep(200_000)
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            throw ScorerError("scorer command \(command.debugDescription) timed out after \(Int(timeout)) s on a batch of \(items.count) (first: \(items[0].source))")
        }
        p.waitUntilExit()
        let errText = String(decoding: box.err, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        if p.terminationStatus != 0 || p.terminationReason == .uncaughtSignal {
            throw ScorerError("scorer command \(command.debugDescription) failed with status \(p.terminationStatus) on a batch starting at \(items[0].source)\(errText.isEmpty ? "" : " (stderr: \(errText))")")
        }
        let lines = String(decoding: box.out, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        let values = lines.last == "" ? Array(lines.dropLast()) : lines
        guard values.count == items.count else {
            throw ScorerError("scorer command \(command.debugDescription) wrote \(values.count) scores for \(items.count) completions (first: \(items[0].source))")
        }
        return try values.enumerated().map { i, s in
            guard let v = Float(s), v.isFinite else {
                throw ScorerError("scorer command \(command.debugDescription): line \(i + 1) of its output is \(s.debugDescription), not a number (for \(items[i].source))")
            }
            return v
        }
    }
}
