import Foundation

/// One place where a fatal error becomes a message and an ended job.
///
/// Errors that every rank detects identically (a bad recipe, a malformed data file every rank
/// reads) go through `agree(_:)`: the ranks exchange their errors and only the lowest failing
/// rank prints, so the message appears once. An error only one rank can see (a NaN in its
/// shard, a broken allocation) goes through `fail(_:)`: that rank prints and aborts the job.
public enum Fatal {
    /// Exit codes, one per class of failure, so a job script can tell them apart.
    public enum Code {
        /// Bad input: data, recipe, flags, model or checkpoint files.
        public static let input: Int32 = 1
        /// Training went wrong: a non-finite loss or gradient, replicas that diverged.
        public static let training: Int32 = 2
        /// An MPI call returned an error.
        public static let mpi: Int32 = 3
        /// A collective made no progress for `--watchdog` seconds (a rank died or hung).
        public static let watchdog: Int32 = 4
        /// An allocation failed.
        public static let outOfMemory: Int32 = 5
        /// Writing output (checkpoint, model, metrics) failed.
        public static let output: Int32 = 6
    }

    /// Run on each rank just before a job ends for a training failure (`Code.training`: a
    /// non-finite loss, diverged replicas): the run's plot is written then, so the run a user
    /// most wants to look at has one. Set by the training loop; must not itself fail.
    nonisolated(unsafe) public static var beforeTrainingAbort: (() -> Void)?

    /// Microseconds a rank waits after printing a fatal line and before MPI_Abort: the launcher
    /// forwards a rank's standard error asynchronously, and a line written just before the
    /// abort was sometimes lost (the others wait twice as long).
    public static let printedLineGrace: UInt32 = 200_000

    /// Ends the job once a fatal line has had time to reach the launcher: the rank that printed
    /// it waits `printedLineGrace`, the others twice that, whichever calls MPI_Abort first.
    public static func abort(afterPrinting printed: Bool, comm: Communicator, code: Int32) -> Never {
        usleep(printed ? printedLineGrace : 2 * printedLineGrace)
        comm.abortJob(code: code)
    }

    /// Set once at start-up; `fail` uses it to bring down every rank.
    nonisolated(unsafe) public static var communicator: Communicator = LocalCommunicator()

    /// A message as the one line it must print as: a line break inside it (a path named
    /// `a\nb`) is written `\n`, so the line is not split in two, and then a backslash `\\`,
    /// so a path holding the two characters `\n` still reads differently.
    public static func singleLine(_ message: String) -> String {
        guard message.contains(where: \.isNewline) else { return message }
        var out = ""
        for c in message.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\u{0B}", "\u{0C}", "\u{85}", "\u{2028}", "\u{2029}": out += "\\u{\(String(c.value, radix: 16))}"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Prints `sft-dist: error: <message>` (with the rank when there are several) and ends
    /// the whole job with a non-zero exit code.
    ///
    /// A fault every rank meets at once (the same allocation under the same memory limit)
    /// reached `fail` on each of them, and each printed before the first abort landed: the
    /// job's one message appeared once per rank. Rank r > 0 now waits `rankDelay(r)` first —
    /// long enough for rank 0 (or a lower rank) that failed too to print and abort the job,
    /// which ends this process before it prints — and a fault only rank r meets is said that
    /// much later.
    public static func fail(_ message: String, code: Int32 = 1) -> Never {
        let comm = communicator
        if comm.size > 1 && comm.rank > 0 { usleep(rankDelay(comm.rank)) }
        failNow(message, code: code)
    }

    /// `fail` without the wait, for a fault only this rank can meet whose line must come before
    /// the other ranks' watchdog (a stalled matrix product, `BLASStallGuard`); callable from
    /// any thread. Alone, the process ends with `_exit` once standard output is flushed:
    /// `exit`'s handlers could wait on a stalled thread, and under an address-space limit one
    /// was seen to hang after the line was printed.
    public static func failNow(_ message: String, code: Int32 = 1) -> Never {
        let comm = communicator
        let prefix = comm.size > 1 ? "sft-dist: error (rank \(comm.rank)): " : "sft-dist: error: "
        StandardError.write(prefix + singleLine(message) + "\n")
        if code == Code.training { beforeTrainingAbort?() }
        if comm.size > 1 { abort(afterPrinting: true, comm: comm, code: code) }
        fflush(stdout)
        _exit(code)
    }

    /// Microseconds rank r > 0 waits before printing a fatal line: rank 0's grace before its
    /// abort plus the launcher's time to kill the others (well under the 0.5 s margin), then
    /// 0.3 s per rank so that of two failing ranks the lower prints first (up to rank 10).
    /// Never more than a quarter of the `--watchdog` limit, so that the rank's own line still
    /// comes before the others' watchdog fires.
    static func rankDelay(_ rank: Int) -> UInt32 {
        let wanted = Double(printedLineGrace + 500_000 + 300_000 * UInt32(min(max(rank, 1), 10)))
        return UInt32(watchdogSeconds > 0 ? min(wanted, watchdogSeconds * 250_000) : wanted)
    }

    /// The job's `--watchdog` limit (0: off), set with it; bounds `rankDelay`.
    nonisolated(unsafe) public static var watchdogSeconds: Double = 300

    /// Collective: every rank passes its error (or nil). If any rank failed, the lowest
    /// failing rank prints its message and the job ends; otherwise returns normally.
    public static func agree(_ error: String?, code: Int32 = 1) {
        let comm = communicator
        if comm.size == 1 {
            if let error { fail(error, code: code) }
            return
        }
        var flags = [Int64](repeating: 0, count: comm.size)
        if error != nil { flags[comm.rank] = 1 }
        comm.allreduce(&flags, op: .sum)
        guard let first = flags.firstIndex(where: { $0 != 0 }) else { return }
        if comm.rank == first, let error {
            // Only this rank saw it (its files, its memory): say which, unless rank 0.
            let rank = first == 0 ? "" : " (rank \(first))"
            StandardError.write("sft-dist: error\(rank): \(singleLine(error))\n")
        }
        if code == Code.training { beforeTrainingAbort?() }
        abort(afterPrinting: comm.rank == first, comm: comm, code: code)
    }

    /// Runs `body`; a thrown error becomes a collective failure (see `agree`), with the exit
    /// code the error names (`FatalExitCode`), else `code`.
    public static func collective<T>(code: Int32 = Code.input, _ body: () throws -> T) -> T {
        do {
            let value = try body()
            agree(nil)
            return value
        } catch {
            agree(describe(error), code: (error as? FatalExitCode)?.fatalExitCode ?? code)
            fatalError("unreachable")
        }
    }

    public static func describe(_ error: Error) -> String {
        String(describing: error)
    }
}

/// An error that ends the job with its own exit code (`Fatal.Code`) rather than `input`.
public protocol FatalExitCode: Error {
    var fatalExitCode: Int32 { get }
}
