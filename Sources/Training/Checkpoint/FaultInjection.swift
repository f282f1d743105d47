import Distributed
import Foundation
import TensorCore

/// Test-only fault points: `SFT_DIST_FAULT=<point>:<step>` makes rank 0 send itself SIGKILL
/// when it reaches `point` at `step`, so tests can kill a run at an exact moment of a
/// checkpoint save (which takes milliseconds, too short to hit from outside reliably).
/// SIGKILL cannot be caught: the process dies exactly as under `kill -9`, with no cleanup.
///
/// Points: `perturb` (see `perturbReplica`), `mpi-error` (see `failMPICall`), `fail-all` (see
/// `failEveryRank`), `usr1` and `usr1-scoring` (see `raiseStopSignal`), `after-step` (the metrics row of the step
/// is written), `save-files` (every file of
/// the checkpoint written in its temporary directory, no manifest yet), `save-before-rename`
/// (complete and fsynced, not yet renamed into place), `save-renamed` (published, older
/// checkpoints not yet pruned). Unset in normal runs; reading it costs one lookup at start-up.
enum FaultInjection {
    static let spec: (point: String, step: Int)? = {
        guard let v = ProcessInfo.processInfo.environment["SFT_DIST_FAULT"] else { return nil }
        let parts = v.split(separator: ":")
        guard parts.count == 2, let step = Int(parts[1]) else { return nil }
        return (String(parts[0]), step)
    }()

    /// `perturb:<step>`: after that step the last rank nudges one parameter by one ulp — a
    /// diverged replica, which the cross-rank checksum must catch.
    static func perturbReplica(_ params: ParameterStore, step: Int, rank: Int, size: Int) {
        guard size > 1, rank == size - 1, let s = spec, s.point == "perturb", s.step == step else { return }
        params.values[0] = params.values[0].nextUp
    }

    /// `mpi-error:<step>`: after that step the last rank makes an MPI call that fails (a
    /// broadcast from a root that does not exist), the way a broken network or MPI library
    /// would, to test the "an MPI call failed" path (exit code 3).
    static func failMPICall(_ comm: Communicator, step: Int) {
        guard comm.size > 1, comm.rank == comm.size - 1, let s = spec, s.point == "mpi-error", s.step == step else { return }
        var bytes: [UInt8] = [0]
        comm.broadcast(&bytes, root: comm.size)
    }

    /// `fail-all:<step>`: after that step every rank fails at once (`Fatal.fail`), as a fault
    /// every rank meets at the same moment does (one allocation under one memory limit): the
    /// job's message must still appear once.
    static func failEveryRank(step: Int) {
        guard let s = spec, s.point == "fail-all", s.step == step else { return }
        Fatal.fail("injected fault after step \(step), on every rank", code: Fatal.Code.outOfMemory)
    }

    /// `usr1:<step>`: after that step the last rank sends itself SIGUSR1, as a batch system's
    /// warning before a time limit reaching one rank first (`StopSignal`): every rank must
    /// stop after that same step. `usr1:0`: before loading anything (the run stops after step 1).
    static func raiseStopSignal(step: Int, rank: Int, size: Int) {
        guard rank == size - 1, let s = spec, s.point == "usr1", s.step == step else { return }
        kill(getpid(), SIGUSR1)
    }

    /// `usr1-scoring:<round>`: after that round of a scoring pass before the first step
    /// (`Trainer.scoreInGroups`; rounds count from 1 in each set scored) the last rank sends
    /// itself SIGUSR1: every rank must end the pass at that same round.
    static func raiseStopSignal(scoringRound round: Int, rank: Int, size: Int) {
        guard rank == size - 1, let s = spec, s.point == "usr1-scoring", s.step == round else { return }
        kill(getpid(), SIGUSR1)
    }

    static func point(_ name: String, step: Int, rank: Int) {
        guard rank == 0, let s = spec, s.point == name, s.step == step else { return }
        fflush(stdout)
        kill(getpid(), SIGKILL)
    }
}
