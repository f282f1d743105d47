import Foundation
import Distributed
import Synchronization

/// SIGUSR1 asks `train` to checkpoint and stop at the end of the step it is in: the signal a
/// batch system sends ahead of a job's time limit (Slurm's `--signal=USR1@SECONDS`), which
/// Open MPI's mpirun passes on to every rank (its SIGTERM, by contrast, is followed by SIGKILL
/// within seconds, too soon for a step of a real model). Without a handler SIGUSR1 ended the
/// process, losing every step since the last `save_every` checkpoint.
///
/// The handler only sets a flag; the ranks agree on it after each step (one 8-byte
/// allreduce, max), so all of them stop after the same step even when the signal reaches
/// them at different moments, or only some of them.
public enum StopSignal {
    static let received = Atomic<Int>(0)
    /// The exit status of a run stopped this way: EX_TEMPFAIL (sysexits.h), "try again later" —
    /// a job script resubmits with `--resume latest`.
    public static let exitCode: Int32 = 75

    /// Installs the handler (SA_RESTART: a read or write it interrupts carries on). `sft-dist
    /// train` does so first thing, before MPI starts.
    public static func install() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in StopSignal.received.store(1, ordering: .relaxed) }
        action.sa_flags = SA_RESTART
        sigemptyset(&action.sa_mask)
        sigaction(SIGUSR1, &action, nil)
    }

    /// Collective: whether any rank has received the signal.
    public static func agreed(_ comm: Communicator) -> Bool {
        comm.allreduce(Int64(received.load(ordering: .relaxed)), op: .max) != 0
    }
}
