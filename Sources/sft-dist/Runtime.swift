import Distributed
import Foundation
import Models
import TensorCore
import Training

/// Process-level set-up shared by every subcommand: the communicator (MPI when launched by
/// mpirun or srun, the size-1 one otherwise), the fatal-error path, and OpenBLAS threads.
enum Runtime {
    nonisolated(unsafe) private static var mpi: MPICommunicator?

    /// Before anything else: when OpenBLAS fell back to a kernel below AVX2 on a CPU that has
    /// AVX2 (`BLASKernel`: a CPU newer than the library), the process replaces itself with the
    /// same command under OPENBLAS_CORETYPE, which OpenBLAS reads only as it loads. Every rank
    /// does it before MPI starts (the same process id, so mpirun and srun see nothing). A set
    /// OPENBLAS_CORETYPE is the user's choice and is kept; if exec fails the run goes on as it was.
    static func restartWithVectorBLASKernel() {
        let env = ProcessInfo.processInfo.environment
        if env[BLASKernel.replacedVariable] != nil { return BLASKernel.adoptRestart() }
        guard env["OPENBLAS_CORETYPE"] == nil, !startedByTheLoader,
              let kernel = BLASKernel.replacement(core: BLAS.coreName, cpuFlags: BLASKernel.cpuFlags()) else { return }
        setenv("OPENBLAS_CORETYPE", kernel, 1)
        setenv(BLASKernel.replacedVariable, BLAS.coreName, 1)
        // The raw argv: CommandLine.arguments has invalid UTF-8 repaired, which `tokenize` must see.
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(BLASKernel.replacedVariable)
    }

    /// Whether the process was started as `ld-linux-x86-64.so.2 sft-dist …`: then
    /// /proc/self/exe is the loader, which cannot be re-executed with sft-dist's own argv (the
    /// log's note says what to set instead). The loader run as a program has no interpreter:
    /// the auxiliary vector's AT_BASE is 0 (getauxval, which Swift's Glibc does not declare).
    static var startedByTheLoader: Bool {
        typealias GetAuxVal = @convention(c) (UInt) -> UInt
        guard let f = dlsym(nil, "getauxval") else { return true }
        return unsafeBitCast(f, to: GetAuxVal.self)(7 /* AT_BASE */) == 0
    }

    /// `watchdog`: seconds a collective may wait before the job is aborted (0: off); `train`
    /// replaces it with the recipe's `watchdog_seconds` once the recipe is read.
    static func start(threads: Int? = nil, watchdog: Double = 300) -> Communicator {
        if let threads { BLAS.threads = max(1, threads) }
        let comm: Communicator
        if MPICommunicator.launchedByMPI {
            let m = MPICommunicator()
            mpi = m
            comm = m
        } else {
            comm = LocalCommunicator()
        }
        Fatal.communicator = comm
        // A failed large allocation becomes one line and an aborted job, not a trap on one rank.
        CheckedAllocation.failureHandler = { Fatal.fail($0, code: Fatal.Code.outOfMemory) }
        setWatchdog(seconds: watchdog)
        SameInputs.checkCollectiveSettings(comm: comm)
        return comm
    }

    /// How messages name a model given as `--model` and, for LoRA, `--adapter`.
    static func modelLabel(_ model: String, adapter: String?) -> String {
        "--model \(model)" + (adapter.map { " --adapter \($0)" } ?? "")
    }

    /// Collective, after `score`, `eval` or `select` loaded `--data`: every rank read the same
    /// examples, and rank 0 says when truncation cut or left out rows (a left-out row is
    /// missing from the output, whose `index` counts the rows kept).
    /// With {messages} rows and `--chat-template auto`, it also says which template laid them out
    /// and why, as train's log does (a template it did not recognise fell back to plain silently).
    static func checkLoaded(_ set: Dataset, from data: String, comm: Communicator, chatTemplate: String, tokenizer: Tokenizer) {
        SameInputs.check("--data \(data)", examples: set.examples)
        // A template named for data without {messages} rows lays nothing out (train's is saved
        // with the model; these commands only read the data).
        Fatal.agree(chatTemplate == ChatTemplate.auto ? nil
                    : ChatTemplateRecord.unusedTemplate("--chat-template \(chatTemplate)", in: data, rows: "prompt/completion rows are text",
                                                        drop: "--chat-template", hasMessages: set.report.conversations > 0))
        if comm.isCoordinator && set.report.changedAnything {
            FileHandle.standardError.write(Data("sft-dist: note: \(set.report.summary)\n".utf8))
        }
        if comm.isCoordinator && set.report.conversations > 0 { noteChatTemplate(chatTemplate, tokenizer: tokenizer) }
    }

    /// On stderr: the template `--chat-template auto` chose and why (nothing for a named one).
    static func noteChatTemplate(_ name: String, tokenizer: Tokenizer) {
        guard name == ChatTemplate.auto, let chat = try? ChatTemplate.resolve(name, tokenizer: tokenizer) else { return }
        FileHandle.standardError.write(Data("sft-dist: note: chat template: \(chat.template.rawValue) (\(chat.reason))\n".utf8))
    }

    static func setWatchdog(seconds: Double) {
        mpi?.startWatchdog(seconds: seconds)
    }

    /// Ends the run: standard output flushed and checked — results written to a full disk or
    /// a closed pipe are an error (exit 6), not a silent success — then MPI finalized.
    static func finish() {
        let problem = standardOutputProblem()
        mpi?.finish()
        if let problem { exitForOutput(problem) }
    }

    /// Why standard output lost data (its stream's error flag, or the final flush), or nil.
    static func standardOutputProblem() -> String? {
        errno = 0
        guard fflush(stdout) != 0 || ferror(stdout) != 0 else { return nil }
        return "standard output: \(errno != 0 ? String(cString: strerror(errno)) : "a write failed"); the results printed are incomplete"
    }

    static func exitForOutput(_ problem: String) -> Never {
        printError("sft-dist: error: " + problem)
        Foundation.exit(Fatal.Code.output)
    }

    /// Commands that do one process's work and never start MPI (`export`, `merge`,
    /// `merge-lora`, `tokenize`, `make-data`): under mpirun every rank ran them, writing the
    /// same --out at once (one rank's rename over another's half-written copy) and printing
    /// each line once per rank. Only the launcher's rank 0 runs them; the others end here.
    static func singleProcess() {
        if launcherRank != 0 { Foundation.exit(0) }
    }

    /// The rank as the launcher sets it, readable before MPI is initialised (argument errors
    /// are reported by rank 0 only, so they print once).
    static var launcherRank: Int {
        let env = ProcessInfo.processInfo.environment
        return Int(env["OMPI_COMM_WORLD_RANK"] ?? env["PMIX_RANK"] ?? env["PMI_RANK"] ?? "0") ?? 0
    }
}

/// Writes to standard error (progress and results go to standard output).
func printError(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
