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

    /// Every other command keeps no checkpoint: SIGUSR1 (a batch system's warning, which mpirun
    /// passes on to every rank) ended it without a word (exit 138), losing the work so far. It
    /// goes on instead, rank 0 saying so once (`sayIt`); the time limit's SIGTERM still ends it.
    public static func installNote(sayIt: Bool) {
        // Set (and so initialised) before the handler can read them.
        note = nil
        noted.store(0, ordering: .relaxed)
        if sayIt {
            let text = Array("sft-dist: note: SIGUSR1 received: only train checkpoints and stops on it; this command goes on\n".utf8)
            let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: text.count)
            buffer.initialize(from: text, count: text.count)
            note = (UnsafePointer(buffer), text.count)
        }
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in
            // Only write(2) here: it is async-signal-safe, as Swift's printing is not.
            guard let (text, count) = StopSignal.note, StopSignal.noted.exchange(1, ordering: .relaxed) == 0 else { return }
            _ = write(2, text, count)
        }
        action.sa_flags = SA_RESTART
        sigemptyset(&action.sa_mask)
        sigaction(SIGUSR1, &action, nil)
    }
    nonisolated(unsafe) static var note: (UnsafePointer<UInt8>, Int)? = nil
    /// Whether the note was written (train's `received` says whether to stop).
    static let noted = Atomic<Int>(0)

    /// Collective: whether any rank has received the signal.
    public static func agreed(_ comm: Communicator) -> Bool {
        comm.allreduce(Int64(received.load(ordering: .relaxed)), op: .max) != 0
    }
}
