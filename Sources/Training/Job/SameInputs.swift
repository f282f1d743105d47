import Distributed
import TensorCore

/// Every rank reads its inputs itself (README "Cluster use"), so a node with a stale or
/// truncated copy of a data file would train or evaluate on other examples than rank 0 —
/// silently: the coordinator picks indices, every rank looks them up in its own copy, and an
/// evaluation averages over different sets. After loading, each input's tokenized examples
/// are hashed (`CheckpointState.dataHash`: ids and loss masks, in order) and compared with
/// rank 0's; a difference ends the job naming the input and the rank.
enum SameInputs {
    /// Collective. `what` names the input as the user gave it (`--data FILE`).
    static func check(_ what: String, examples: [Example], comm: Communicator = Fatal.communicator) {
        guard comm.size > 1 else { return }
        let mine = "\(examples.count) \(CheckpointState.dataHash(examples))"
        let root = comm.broadcast(mine, root: 0)
        var problem: String? = nil
        if root != mine {
            let theirs = root.split(separator: " ").first.map(String.init) ?? "?"
            let how = theirs == "\(examples.count)" ? "the same number, \(theirs), with other tokens" : "\(examples.count) examples here, \(theirs) on rank 0, counted as loaded: after the held-out split and any dropped lines"
            problem = "\(what): this rank read other examples than rank 0 (\(how)): every node must have the same file"
        }
        Fatal.agree(problem)
    }
}
