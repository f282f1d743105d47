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
            agreeOnLaunch(m, "runs `\(command)`")
            comm = m
        } else {
            comm = LocalCommunicator()
        }
        Fatal.communicator = comm
        // A failed large allocation becomes one line and an aborted job, not a trap on one rank.
        CheckedAllocation.failureHandler = { Fatal.fail($0, code: Fatal.Code.outOfMemory) }
        setWatchdog(seconds: watchdog)   // also BLASStallGuard's limit
        SameInputs.checkCollectiveSettings(comm: comm)
        // Collective (after the check above, which agree's allreduce needs): every rank under
        // the same limit says so once.
        Fatal.agree(BLAS.takeWorkBuffers(), code: Fatal.Code.outOfMemory)
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
    static func checkLoaded(_ set: Dataset, from data: String, comm: Communicator, chatTemplate: String, tokenizer: Tokenizer,
                            completionOnlyLoss: Bool, assistantOnlyLoss: Bool, textField: String) {
        SameInputs.check("--data \(data)", examples: set.examples)
        // A switch for a kind of row the data does not have would do nothing, as train refuses it.
        let r = set.report
        Fatal.agree(!assistantOnlyLoss && r.conversations == 0
                    ? "--no-assistant-only-loss sets which tokens of {messages} rows are scored, and \(data) has none: drop it"
                    : !completionOnlyLoss && r.promptCompletionRows == 0
                    ? "--no-completion-only-loss sets which tokens of {prompt, completion} rows are scored, and \(data) has none: drop it"
                    : textField != JSONLReader.defaultTextField && r.textRows == 0
                    ? "--dataset-text-field \(textField) names the field of plain-text rows, and \(data) has none: drop it" : nil)
        // A template named for data without {messages} rows lays nothing out (train's is saved
        // with the model; these commands only read the data).
        Fatal.agree(chatTemplate == ChatTemplate.auto ? nil
                    : ChatTemplateRecord.unusedTemplate("--chat-template \(chatTemplate)", in: data, rows: "prompt/completion rows are text",
                                                        drop: "--chat-template", hasMessages: set.report.conversations > 0))
        if comm.isCoordinator && set.report.changedAnything {
            StandardError.write("sft-dist: note: \(set.report.summary)\n")
        }
        if comm.isCoordinator && set.report.conversations > 0 { noteChatTemplate(chatTemplate, tokenizer: tokenizer) }
    }

    /// On stderr (rank 0): a model whose generation_config.json asks for sampling, which
    /// transformers' generate would apply and sft-dist does not — its flags decide.
    static func noteGenerationDefaults(_ m: LanguageModel, label: String, sampling: String, comm: Communicator) {
        guard comm.isCoordinator, let asked = m.generationConfig?.unappliedSampling else { return }
        printError("sft-dist: note: \(label)'s generation_config.json asks for sampling (\(asked)), which transformers' generate applies; sft-dist's flags decide instead: \(sampling)")
    }

    /// On stderr (rank 0): what `--model BASE --adapter DIR` read otherwise than it says — a
    /// `fan_in_fan_out` that peft too sets from the layer — and an adapter already merged into BASE.
    static func noteAdapter(model: String, adapter: String?, loaded: LanguageModel, comm: Communicator) {
        guard comm.isCoordinator, let adapter else { return }
        let notes = [AdapterDirectory.fanInFanOutNote(adapter: adapter, base: model, model: loaded),
                     LoRAMerge.alreadyMergedNote(base: model, adapter: adapter)]
        for note in notes.compactMap({ $0 }) { printError("sft-dist: note: \(note)") }
    }

    /// On stderr (rank 0): `--max-length` above a context that a sliding window sets — the
    /// truncation notes that follow would otherwise say only "to 8 tokens".
    static func noteSlidingWindow(_ m: LanguageModel, maxLength: Int, comm: Communicator) {
        guard comm.isCoordinator, maxLength > m.maxSequenceLength, let why = m.contextReason else { return }
        printError("sft-dist: note: sequences are cut at the model's context of \(m.maxSequenceLength) tokens, below --max-length \(maxLength): \(why)")
    }

    /// On stderr: the template `--chat-template auto` chose and why (nothing for a named one).
    static func noteChatTemplate(_ name: String, tokenizer: Tokenizer) {
        guard name == ChatTemplate.auto, let chat = try? ChatTemplate.resolve(name, tokenizer: tokenizer) else { return }
        StandardError.write("sft-dist: note: chat template: \(chat.template.rawValue) (\(chat.reason))\n")
    }

    static func setWatchdog(seconds: Double) {
        mpi?.startWatchdog(seconds: seconds)
        Fatal.watchdogSeconds = seconds
        BLASStallGuard.start(watchdog: seconds) { Fatal.failNow($0, code: Fatal.Code.outOfMemory) }
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
        exit(Fatal.Code.output)
    }

    /// Ends the process with `code` once C's output streams are flushed, without `exit`'s
    /// handlers: among them OpenBLAS's finalizer joins OpenBLAS's own threads, and under an
    /// address-space limit (`ulimit -v`, SGE's h_vmem) such a thread, started when the library
    /// loaded, retries its work-buffer mapping for ever — `export`, `merge` and argument errors
    /// printed their line and then never ended. MPI, where started, is finalized before.
    static func exit(_ code: Int32) -> Never {
        GEMMProfile.reportIfEnabled()
        fflush(nil)
        _exit(code)
    }

    /// Commands that do one process's work (`export`, `merge`, `merge-lora`, `tokenize`,
    /// `make-data`, `train --dry-run`): under mpirun every rank ran them, writing the same
    /// --out at once (one rank's rename over another's half-written copy) and printing each
    /// line once per rank. Only rank 0 runs them. Every rank still starts MPI for the launch
    /// agreement, so a rank of another command (an mpirun `A : B` whose parts differ) is
    /// refused rather than left waiting in MPI_Init; rank 0 keeps MPI open to its end
    /// (`finishMPI`) with a local `Fatal.communicator`, the others finalize and leave.
    static func singleProcess(_ what: String? = nil) {
        guard MPICommunicator.launchedByMPI else { return }
        let m = MPICommunicator()
        agreeOnLaunch(m, "runs `\(what ?? command)`")
        if m.rank != 0 {
            m.finish()
            exit(0)
        }
        mpi = m
    }

    /// For a single-process command that multiplies matrices (`merge-lora`), what `start` does
    /// for the others: OpenBLAS's work buffer mapped before the model takes the address space,
    /// or one line (exit 5) when a limit leaves no room; an allocation that fails is one line;
    /// a product stalled on a buffer it maps later ends the process (`BLASStallGuard`, after
    /// half of `watchdog`). Under `ulimit -v` merge-lora otherwise spun at 100 % CPU inside its
    /// first product, for ever. One thread: its products (r = 4–64 rows per module) take well
    /// under a second even for a 0.5 B model, and a second thread's buffer and malloc arena
    /// (≈ 190 MiB of address space) were what did not fit.
    static func takeMatrixProductBuffers(watchdog: Double = 60) {
        BLAS.threads = 1
        CheckedAllocation.failureHandler = { Fatal.fail($0, code: Fatal.Code.outOfMemory) }
        BLASStallGuard.start(watchdog: watchdog) { Fatal.failNow($0, code: Fatal.Code.outOfMemory) }
        if let problem = BLAS.takeWorkBuffers() { Fatal.fail(problem, code: Fatal.Code.outOfMemory) }
    }

    /// The subcommand being run (`sft-dist train`), set once the arguments are parsed.
    nonisolated(unsafe) static var command = "sft-dist"

    /// Under mpirun every rank starts MPI and, as its first collective, says what it is about
    /// to do: run a subcommand, print help, or stop at its arguments. A rank that did otherwise
    /// — an mpirun `-n 1 A : -n 1 B` of different commands, a flag one rank's binary does not
    /// know, `--dry-run` or `--help` on one rank — left the others waiting in MPI_Init for
    /// ever (it exited without MPI), or stopped with its error unprinted (only rank 0 prints
    /// argument errors), or was compared setting by setting with another command's. Now the
    /// job ends at once with one line naming both (exit 1).
    /// Broadcasts only, as the collective-settings check that follows (`SameInputs`): ranks
    /// given different Open MPI algorithms can stall in an allgather or allreduce. The first
    /// rank that differs from rank 0 prints the line.
    static func agreeOnLaunch(_ comm: MPICommunicator, _ what: String) {
        guard comm.size > 1 else { return }
        let root = comm.broadcast(what, root: 0)
        guard let differs = comm.firstFlaggedRank(what != root) else { return }
        if comm.rank == differs {
            printError("sft-dist: error (rank \(differs)): the ranks were started with different command lines: rank \(differs) \(what), rank 0 \(root); every rank must get the same command and flags")
        }
        // The printing rank waits too (its line was lost in about 1 run of 45 when it aborted
        // straight after writing it).
        Fatal.abort(afterPrinting: comm.rank == differs, comm: comm, code: Fatal.Code.input)
    }

    /// For a process launched by mpirun that ends before running a command (help, an
    /// argument error): the launch agreement, then MPI finalized, so every rank ends alike.
    static func agreeBeforeExit(_ what: String) {
        guard MPICommunicator.launchedByMPI, mpi == nil else { return }
        let m = MPICommunicator()
        agreeOnLaunch(m, what)
        m.finish()
    }

    /// MPI finalized if this process started it (commands that end without `finish`).
    static func finishMPI() {
        mpi?.finish()
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
    StandardError.write(s + "\n")
}
