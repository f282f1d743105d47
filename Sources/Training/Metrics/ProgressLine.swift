import Foundation

/// The coordinator's one line of progress: step/total, loss, lr, tokens/s, elapsed, ETA.
/// On a terminal it is redrawn in place; in a log file (batch jobs) it is a plain line every
/// `every` steps, so cluster logs stay readable.
public final class ProgressLine {
    let total: Int
    let every: Int
    let interactive: Bool
    private var drawn = false

    /// Steps already done when this process started (a resumed run): the ETA divides the
    /// time elapsed by the steps run since then, not by the step number.
    let firstStep: Int
    /// The earlier sessions' training time (a resumed run's checkpoint): the line's elapsed
    /// counts the whole run, as metrics.jsonl's elapsed_s does.
    let elapsedBefore: Double

    public init(total: Int, every: Int, enabled: Bool, firstStep: Int = 0, elapsedBefore: Double = 0) {
        self.total = total
        self.firstStep = firstStep
        self.elapsedBefore = elapsedBefore
        self.every = every
        interactive = enabled && ProgressLine.stdoutIsTerminal()
        self.enabled = enabled
    }
    let enabled: Bool

    /// Under mpirun a rank's stdout is a pseudo-terminal that mpirun forwards, whatever
    /// mpirun's own stdout is; so ask about the launcher's stdout: the first ancestor whose
    /// stdout is not that pseudo-terminal (the parent, or past a wrapper such as `timeout` that
    /// shares it: asking the wrapper wrote a redraw per step into a log file). On another node
    /// that is the daemon, whose stdout is not a terminal, and the plain-line format is the
    /// right one for a batch log anyway.
    static func stdoutIsTerminal() -> Bool {
        guard isatty(STDOUT_FILENO) != 0 else { return false }
        let env = ProcessInfo.processInfo.environment
        guard env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil else { return true }
        var mine = stat()
        guard fstat(STDOUT_FILENO, &mine) == 0 else { return false }
        var pid = getppid()
        for _ in 0..<8 where pid > 1 {
            var theirs = stat()
            guard stat("/proc/\(pid)/fd/1", &theirs) == 0 else { return false }
            if theirs.st_rdev != mine.st_rdev || theirs.st_dev != mine.st_dev || theirs.st_ino != mine.st_ino {
                let fd = open("/proc/\(pid)/fd/1", O_WRONLY | O_NOCTTY)
                guard fd >= 0 else { return false }
                defer { close(fd) }
                return isatty(fd) != 0
            }
            pid = parent(of: pid)
        }
        return false
    }

    /// The parent of `pid` (field 4 of /proc/PID/stat, after the command name in parentheses).
    static func parent(of pid: pid_t) -> pid_t {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) ?? 0 : 0
    }

    /// `elapsed`: this process's seconds since its first step (the ETA's rate comes from them).
    public func update(step: Int, loss: Double, lr: Double, tokensPerSecond: Double, elapsed: Double, extra: String = "") {
        guard enabled else { return }
        let done = step + 1
        let eta = ProgressLine.eta(done: done, total: total, firstStep: firstStep, elapsed: elapsed)
        let line = String(format: "step %*d/%d | loss %@ | lr %.2e | %@ tok/s | %@ elapsed | ETA %@",
                          String(total).count, done, total, ProgressLine.value(loss), lr, ProgressLine.human(tokensPerSecond),
                          ProgressLine.clock(elapsedBefore + elapsed), ProgressLine.clock(eta)) + extra
        if interactive {
            print("\r\u{1B}[2K" + line, terminator: "")
            fflush(stdout)
            drawn = true
        } else if done % every == 0 || done == total || done == 1 {
            print(line)
            fflush(stdout)
        }
    }

    /// Seconds left: the time per step run in this process times the steps left.
    static func eta(done: Int, total: Int, firstStep: Int, elapsed: Double) -> Double {
        done < total ? elapsed / Double(max(done - firstStep, 1)) * Double(total - done) : 0
    }

    /// Ends the in-place line before anything else is printed.
    public func finishLine() {
        if drawn { print(""); drawn = false }
    }

    public static func clock(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60)
                         : String(format: "%02d:%02d", t / 60, t % 60)
    }

    /// A loss for a line of text: 4 decimals; one below 1e-3 in 3 significant digits (GRPO's
    /// 1e-8 losses read 0.0000); a non-finite one as nan or inf (printf wrote -nan).
    public static func value(_ x: Double) -> String {
        if x.isNaN { return "nan" }
        if x.isInfinite { return x > 0 ? "inf" : "-inf" }
        return x != 0 && abs(x) < 1e-3 ? String(format: "%.3g", x) : String(format: "%.4f", x)
    }

    public static func human(_ x: Double) -> String {
        x >= 1e6 ? String(format: "%.2fM", x / 1e6) : x >= 1e3 ? String(format: "%.1fk", x / 1e3) : String(format: "%.0f", x)
    }

    /// A one-line sparkline of a series, for the end-of-run summary.
    public static func sparkline(_ values: [Double], width: Int = 40) -> String {
        let v = values.filter(\.isFinite)
        guard let lo = v.min(), let hi = v.max() else { return "" }   // one value: one bar
        let blocks = Array("▁▂▃▄▅▆▇█")
        let n = min(width, v.count)
        return String((0..<n).map { i -> Character in
            let a = i * v.count / n, b = max(a + 1, (i + 1) * v.count / n)
            let mean = v[a..<b].reduce(0, +) / Double(b - a)
            let k = hi > lo ? Int((mean - lo) / (hi - lo) * 7.999) : 0
            return blocks[k]
        })
    }
}
