import Distributed
import Foundation
import TensorCore

/// Process-level set-up shared by every subcommand: the communicator (MPI when launched by
/// mpirun or srun, the size-1 one otherwise), the fatal-error path, and OpenBLAS threads.
enum Runtime {
    nonisolated(unsafe) private static var mpi: MPICommunicator?

    static func start(threads: Int? = nil) -> Communicator {
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
        return comm
    }

    static func finish() {
        fflush(stdout)
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
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
