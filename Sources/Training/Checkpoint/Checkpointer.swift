import Distributed
import Foundation
import Models
import TensorCore

/// Periodic checkpoints and exact resume for a training run (README, "Failure and resume").
///
/// What is saved: the model's parameters, the step, what identifies the run (recipe, data,
/// reference model), and every stateful component of `components` (`Training/State/`) — the
/// checkpointer knows no component by name, so new state needs no edit here.
///
/// All disk work happens on rank 0 (the coordinator), so checkpoints need no shared file
/// system: on save every rank takes part in the components' `saveState` (which may gather
/// shards) and rank 0 writes; on resume rank 0 verifies and reads the checkpoint, restores it
/// (which validates every field), then broadcasts parameters and component states.
/// Every call here is collective, and every failure goes through `Fatal.agree`: one message,
/// the whole job ends.
public final class Checkpointer {
    public struct ResumePoint {
        /// Optimizer steps already done; the run continues with step index `step`.
        public var step: Int
        /// Training losses of steps 1...step, read back from metrics.jsonl (for the summary).
        public var losses: [Double]
        public var directory: String
        /// `elapsed_s` of the last training row kept (0 without one): the resumed run's rows
        /// continue from it, so the file reads as one run (it restarted from 0).
        public var elapsed: Double = 0
        /// TRL's `num_tokens` at the checkpoint's step (nil for a checkpoint from before it: the
        /// resumed rows then leave it out rather than count from 0).
        public var numTokens: Int? = nil
        /// (Rank 0 decides, every rank gets it) --out's own metrics rows were not the checkpoint's run's (another run's
        /// checkpoint, or one copied in), so --out's other records of a run are not this run's either.
        public var otherRun = false
    }

    let setup: RunSetup
    let components: StateRegistry
    let comm: Communicator
    let log: (String) -> Void
    let store: CheckpointStore
    var recipe: Recipe { setup.recipe }
    public var directory: String { store.directory }
    /// Where the checkpoint after `stepsDone` steps is saved.
    public func path(stepsDone: Int) -> String { store.directory + "/" + CheckpointStore.name(stepsDone) }

    public init(setup: RunSetup, components: StateRegistry, comm: Communicator, log: @escaping (String) -> Void) {
        self.setup = setup
        self.components = components
        self.comm = comm
        self.log = log
        store = CheckpointStore(directory: RunOutputs(setup.recipe.out).checkpoints)
        referenceChecksum = Self.checksum(setup.referenceModel)
    }

    /// The loss of the step just done (finite, else nil), recorded with a checkpoint saved now.
    public var lastLoss: Double?
    /// TRL's `num_tokens` after the step just done, recorded with a checkpoint saved now.
    public var numTokens: Int?

    /// A reference the run reads besides the objective's: learnability selection's `--ref-model`
    /// (`SelectionProducer`). Its checksum is the checkpoint's reference checksum as the
    /// objective's is, so a resume against other weights under the same path is refused — it
    /// resumed silently and selected other rows from the next step on.
    public var selectionReference: LanguageModel? { didSet { referenceChecksum = Self.checksum(reference) } }
    var reference: LanguageModel? { setup.referenceModel ?? selectionReference }
    /// The reference's checksum as the run started: `sync_ref_model` moves the reference during
    /// training (and restores the moved one from a checkpoint), so the checksum that proves a
    /// resumed run reads the same reference is the one taken before any step.
    private(set) var referenceChecksum: String?
    static func checksum(_ model: LanguageModel?) -> String? { model.map { XXHash64.hex($0.parameters.checksum()) } }

    /// The reward models the run reads (`--reward DIR`: the rollouts' reward functions,
    /// SuperHF's): their weights' checksums go into each checkpoint, so a resume that reads
    /// other weights under the same path is refused — it resumed and scored otherwise.
    public var rewardModels: [RewardModelScorer] = []
    /// Coordinator: `rewardModels`' checksums by metrics name (nil: none). Loads a model not
    /// loaded yet (SuperHF scores on the coordinator from its first round).
    func rewardModelChecksums() throws -> [String: String]? {
        rewardModels.isEmpty ? nil : Dictionary(try rewardModels.map { ($0.name, try $0.checksum()) }, uniquingKeysWith: { a, _ in a })
    }

    /// Call after every optimizer step, with the number of steps done: saves when due.
    /// Saves a checkpoint when `save_every` asks for one after `stepsDone` steps; whether it did.
    @discardableResult
    public func afterStep(_ stepsDone: Int) -> Bool {
        FaultInjection.point("after-step", step: stepsDone, rank: comm.rank)
        guard recipe.saveEvery > 0 && stepsDone % recipe.saveEvery == 0 else { return false }
        save(stepsDone: stepsDone)
        return true
    }

    /// Collective: writes `OUT/checkpoints/step-<stepsDone>/`.
    public func save(stepsDone: Int) {
        var saved: [String: ComponentState] = [:]
        for c in components.components { saved[c.stateName] = c.saveState() }
        var problem: String? = nil
        if comm.isCoordinator {
            do {
                let state = CheckpointState(
                    step: stepsDone, ranks: comm.size, recipe: recipe, components: saved.mapValues(CheckpointState.SavedComponent.init),
                    parameterChecksum: XXHash64.hex(setup.model.parameters.checksum()),
                    referenceChecksum: referenceChecksum,
                    trainingDataHash: XXHash64.hex(dataHash), trainingExamples: setup.train.count, unlabelledHash: unlabelledHash,
                    promptsHash: promptsHash, evaluatedSetHashes: evaluatedSetHashes,
                    rewardModelChecksums: try rewardModelChecksums(), lastLoss: lastLoss, numTokens: numTokens,
                    semantics: CheckpointState.currentSemantics)
                try store.write(.init(model: setup.model, tokenizer: setup.tokenizer, components: saved, state: state), keepLast: recipe.keepLast)
            } catch {
                problem = "\(error)"
            }
        }
        Fatal.agree(problem, code: Fatal.Code.output)
    }

    private lazy var dataHash = CheckpointState.dataHash(setup.train.examples)
    private lazy var unlabelledHash: String? = recipe.unlabelled.flatMap(Self.fileHash)
    private lazy var promptsHash: String? = recipe.prompts.flatMap(Self.fileHash)
    /// The sets the run evaluates, by `--eval-data` name ("" for the held-out set); the job
    /// sets them once they are loaded.
    public var evaluatedSets: [(name: String, examples: [Example])] = []
    private lazy var evaluatedSetHashes: [String: String] = Dictionary(
        evaluatedSets.map { ($0.name, XXHash64.hex(CheckpointState.dataHash($0.examples))) }, uniquingKeysWith: { a, _ in a })
    static func fileHash(_ path: String) -> String? { (try? XXHash64.hashFile(path)).map { XXHash64.hex($0.hash) } }

    /// Collective. With `resume` set, verifies and loads the checkpoint on every rank, trims
    /// metrics.jsonl to its step, and returns where to continue; nil means start at step 0
    /// (no `resume`, or `resume: latest` and no checkpoint yet — so a job script can always
    /// pass `--resume latest`).
    /// A run without `--resume` into an OUT whose checkpoints/ holds a previous run's
    /// checkpoints: it would save its own beside them (keep_last pruning theirs, `--resume
    /// latest` later picking whichever step is higher) — refused, naming the way on. Rank 0.
    public func previousRunProblem() -> String? {
        guard recipe.resume == nil, let last = store.list().last else { return nil }
        return "\(store.directory)/ holds a previous run's checkpoints (last: \(URL(fileURLWithPath: last.path).lastPathComponent)); continue that run with --resume latest, or write to another --out (or remove them)"
    }

    public func resume() -> ResumePoint? {
        guard let spec = recipe.resume else { return nil }
        var stateBytes: [UInt8] = []
        var saved: [String: ComponentState] = [:]
        var directory = ""
        var problem: String? = nil
        if comm.isCoordinator {
            do {
                if let loaded = try load(spec) {
                    (saved, directory) = (loaded.components, loaded.directory)
                    stateBytes = loaded.state.encoded
                }
            } catch {
                problem = "\(error)"
            }
        }
        Fatal.agree(problem)
        comm.broadcast(&stateBytes, root: 0)
        if stateBytes.isEmpty {
            log("resume: no checkpoint in \(store.directory)/ yet; starting at step 0")
            return nil
        }
        let state = Fatal.collective { try CheckpointState.decode(Data(stateBytes), path: "broadcast state") }
        directory = comm.broadcast(directory, root: 0)
        comm.broadcast(setup.model.parameters.valueBuffer, root: 0)
        if !comm.isCoordinator { saved = state.components.mapValues(Self.placeholder) }
        for name in saved.keys.sorted() {
            for key in saved[name]!.tensors.keys.sorted() {
                saved[name]!.tensors[key]!.values.withUnsafeMutableBufferPointer { comm.broadcast($0, root: 0) }
            }
        }
        Fatal.collective { if !comm.isCoordinator { try restoreComponents(saved, step: state.step, dir: directory) } }

        var losses: [Double] = [], elapsed = 0.0, otherRun = false
        problem = nil
        if comm.isCoordinator {
            let source = Self.metricsSource(checkpoint: directory, out: recipe.out, step: state.step, lastLoss: state.lastLoss)
            let own = RunOutputs(recipe.out).metrics
            otherRun = source.path.map { ReplaceableOutput.resolved($0) != ReplaceableOutput.resolved(own) } ?? true
            if let note = source.note { log(note) }
            do {
                (losses, elapsed) = try trimMetrics(toStep: state.step, from: source.path)
                if let note = try store.setAside(after: state.step, resumed: directory) { log(note) }
            } catch { problem = "\(error)" }
        }
        Fatal.agree(problem, code: Fatal.Code.output)
        // Every rank decides on it (a self-training run clears --out's round files, collectively):
        // only rank 0 read the metrics, so its answer is sent; the rest had said false and hung.
        otherRun = comm.broadcast(otherRun ? "1" : "0", root: 0) == "1"
        let micro = state.recipe.microBatchSize == recipe.microBatchSize ? "" : "; micro_batch_size \(state.recipe.microBatchSize) there, \(recipe.microBatchSize) here: the losses agree up to float summation order"
        log("resume: continuing after step \(state.step) of \(recipe.steps) from \(directory) (saved by \(state.ranks) rank\(state.ranks == 1 ? "" : "s")\(micro))")
        return ResumePoint(step: state.step, losses: losses, directory: directory, elapsed: elapsed,
                           numTokens: state.numTokens, otherRun: otherRun)
    }

    /// Coordinator only: verifies the checkpoint `spec` names (manifest, every field, that it
    /// belongs to this run) and restores it into this rank's model and components, which
    /// validates every component's fields; nil when `latest` finds no checkpoint. Throws the
    /// first problem as one line naming the file and field.
    func load(_ spec: String) throws -> (state: CheckpointState, components: [String: ComponentState], directory: String)? {
        guard let dir = try store.resolve(spec) else { return nil }
        let state = try CheckpointStore.readState(dir)
        try check(state, dir: dir)
        try CheckpointStore.readParameters(dir, into: setup.model.parameters)
        let sum = XXHash64.hex(setup.model.parameters.checksum())
        guard sum == state.parameterChecksum else {
            throw CheckpointError("\(dir): loaded parameters have checksum \(sum), the checkpoint recorded \(state.parameterChecksum)")
        }
        let saved = try CheckpointStore.readComponents(dir, state)
        try restoreComponents(saved, step: state.step, dir: dir)
        return (state, saved, dir)
    }

    /// Zeroed tensors of the listed shapes, to receive the coordinator's broadcast.
    private static func placeholder(_ saved: CheckpointState.SavedComponent) -> ComponentState {
        ComponentState(values: saved.values, tensors: saved.tensors.mapValues {
            StateTensor(shape: $0, values: [Float](repeating: 0, count: $0.reduce(1, *)))
        })
    }

    /// Restores every registered component, naming the file and field of the first that
    /// cannot be restored.
    func restoreComponents(_ saved: [String: ComponentState], step: Int, dir: String) throws {
        for c in components.components {
            let name = c.stateName
            do {
                try c.restoreState(saved[name]!, step: step)
                // A value this version does not keep (from a newer sft-dist, or a typo) was read
                // past and the run resumed without it: what the restored component saves again
                // names every value it reads. Components with values only (an optimizer's
                // tensors would be copied whole).
                if !saved[name]!.values.isEmpty, case let again = c.saveState().values,
                   let extra = saved[name]!.values.keys.sorted().first(where: { again[$0] == nil }) {
                    throw StateError(.value, "values.\(extra)", "is not a value this version of sft-dist keeps (written by another version, or by hand): resuming without it would not continue the run exactly")
                }
            } catch let e as StateError {
                switch e.place {
                case .value: throw CheckpointError("\(dir)/\(CheckpointState.fileName): components.\(name).\(e.field) \(e.problem)")
                case .tensor: throw CheckpointError("\(dir)/\(CheckpointState.tensorFile(name)): \"\(e.field)\" \(e.problem)")
                }
            } catch {
                throw CheckpointError("\(dir): the state of \(name) cannot be restored (\(error))")
            }
        }
    }

    /// Everything that must hold for the checkpoint to continue *this* run exactly.
    func check(_ state: CheckpointState, dir: String) throws {
        let configPath = dir + "/model/config.json"
        if let diff = CheckpointState.configDifference(saved: FileManager.default.contents(atPath: configPath) ?? Data(),
                                                       current: ModelDirectory.configJSON(setup.model, tokenizer: setup.tokenizer),
                                                       mayBeAbsent: ModelDirectory.tokenIdFields) {
            throw CheckpointError("\(dir): checkpoint is from a different model config (\(diff)); resume with the model it was trained from, or start a new run")
        }
        let savedRecipe = state.semantics == nil ? CheckpointState.withDefaultsOfItsTime(sameSpelling(state.recipe)) : sameSpelling(state.recipe)
        if let d = CheckpointState.recipeDifference(saved: savedRecipe, current: recipe) {
            throw CheckpointError("\(dir): checkpoint was made with a different recipe: \(d.key) is \(d.saved) there but \(d.current) here (its recipe: \(dir)/recipe.yaml; resume with the same settings or start a new run)")
        }
        if let why = CheckpointState.meaningChanged(since: state.semantics, recipe: recipe, objective: setup.objective,
                                                    evaluatesPairs: (setup.heldOutPairs?.count ?? 0) > 0, moreRolloutStops: RolloutProducer.stopsBeyondTheData(setup),
                                                    evaluatesRollouts: RolloutProducer.evaluatesRollouts(setup))
            ?? CheckpointState.evaluationChanged(since: state.semantics, saved: savedRecipe, current: recipe, objective: setup.objective) {
            throw CheckpointError("\(dir): \(why)")
        }
        guard state.trainingDataHash == XXHash64.hex(dataHash) else {
            throw CheckpointError("\(dir): the training data differs from the checkpoint's (\(state.trainingExamples) examples then, \(setup.train.count) now, or their content changed)")
        }
        // Compared by content, as --data is: the same bytes under another path (a copy, a
        // relative path) resume; a file given or dropped since is refused.
        // A checkpoint from before the hashes (prompts: 2026-12-03, unlabelled: 12-02) has only
        // the path it read: compared as the path, as it was then.
        func dropped(_ flag: String) -> CheckpointError {
            CheckpointError("\(dir): the checkpoint's run read a \(flag) file (see \(dir)/recipe.yaml), and this one none; resume with that file or start a new run")
        }
        for (flag, saved, savedPath, path, current) in [
            ("--unlabelled", state.unlabelledHash, state.recipe.unlabelled, recipe.unlabelled, unlabelledHash),
            ("--prompts", state.promptsHash, state.recipe.prompts, recipe.prompts, promptsHash)] {
            switch (saved, path) {
            case (nil, nil):
                // A checkpoint from before the hashes whose run read the file.
                if savedPath != nil { throw dropped(flag) }
            case (nil, let path?):
                guard let savedPath else {
                    throw CheckpointError("\(dir): the checkpoint's run read no \(flag) file, and this one reads \(path); resume without \(flag) or start a new run")
                }
                if savedPath != path {
                    throw CheckpointError("\(dir): the checkpoint's run read \(flag) \(savedPath) (a checkpoint that predates content hashes, so compared by path), and this one \(path)")
                }
            case (_?, nil):
                throw dropped(flag)
            case (let saved?, let path?):
                if saved != current {
                    throw CheckpointError("\(dir): \(flag) \(path) differs from the file the checkpoint's run read (its content changed); resume with that file or start a new run")
                }
            }
        }
        for (name, saved) in (state.evaluatedSetHashes ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let current = evaluatedSetHashes[name], current != saved else { continue }
            let set = name.isEmpty ? "the held-out set (--heldout, or the split of --data)" : "--eval-data \(name)"
            let series = name.isEmpty ? "eval_loss" : "eval_\(name)_*"
            throw CheckpointError("\(dir): \(set) differs from the set the checkpoint's run evaluated under that name (the \(series) metrics and the retention table would mix two sets); resume with the same set\(name.isEmpty ? "" : ", or give this one another name")\(recipe.scoredData ? " (with --scored-data, sft-dist since 2026-12-04 evaluates only the rows with a positive score; a checkpoint written before evaluated every row: resume it with the binary that wrote it, or start a new run)" : "")")
        }
        // `ref_model` may name another path: the weights are compared. A learnability checkpoint
        // from before its reference was checksummed (2026-12-05) has none: its path is compared.
        let uncheckedSelectionReference = state.referenceChecksum == nil && setup.referenceModel == nil
        if uncheckedSelectionReference, reference != nil, state.recipe.refModel != recipe.refModel {
            throw CheckpointError("\(dir): the checkpoint's run read --ref-model \(state.recipe.refModel ?? "none") (a checkpoint that predates the reference's checksum, so compared by path), and this one \(recipe.refModel ?? "none")")
        }
        if reference != nil, !uncheckedSelectionReference, state.referenceChecksum != referenceChecksum {
            throw CheckpointError("\(dir): the reference model differs from the one the checkpoint was trained against")
        }
        // The recipe's `rewards` compared their paths; a checkpoint from before 2026-12-07 has only those.
        if let saved = state.rewardModelChecksums, let current = try rewardModelChecksums() {
            for model in rewardModels where saved[model.name] != current[model.name] {
                throw CheckpointError("\(dir): --reward \(model.path) holds another reward model (weights, tokenizer or pad_token_id) than the one the checkpoint's run read under that name; resume with that one or start a new run")
            }
        }
        let saved = Set(state.components.keys), live = Set(components.names)
        guard saved == live else {
            throw CheckpointError("\(dir)/\(CheckpointState.fileName): holds state of \(saved.sorted()), this run keeps \(live.sorted()) (a checkpoint of another objective, optimizer or producer)")
        }
        guard state.step <= recipe.steps else {
            throw CheckpointError("\(dir): checkpoint is at step \(state.step), past this run's \(recipe.steps) steps")
        }
    }

    /// The metrics.jsonl whose rows up to `step` the resumed run continues (nil: none), and a
    /// note for the log when the rows are not --out's own. With the checkpoint's recorded loss,
    /// the file whose row at `step` has it: the checkpoint's run directory's (resolved through
    /// symlinks: OUT/checkpoints/step-N), else --out's — so a checkpoint resumed into another
    /// --out, copied elsewhere or forked into another run's checkpoints/ never splices two runs'
    /// rows into one series; when neither has it, none (the series starts after `step`). A
    /// checkpoint from before the record: the run directory's file when the checkpoint is in
    /// another run's checkpoints/, else --out's own.
    static func metricsSource(checkpoint: String, out: String, step: Int, lastLoss: Double?) -> (path: String?, note: String?) {
        let own = RunOutputs(out).metrics
        let real = ReplaceableOutput.resolved
        let resolved = URL(fileURLWithPath: real(checkpoint))
        let parent = resolved.deletingLastPathComponent()
        let runMetrics: String? = parent.lastPathComponent == URL(fileURLWithPath: RunOutputs(out).checkpoints).lastPathComponent
            ? RunOutputs(parent.deletingLastPathComponent().path).metrics : nil
        let isOwn = runMetrics.map(real) == real(own)
        guard let lastLoss else {
            if let runMetrics, !isOwn, FileManager.default.fileExists(atPath: runMetrics) {
                return (runMetrics, "resume: metrics.jsonl continues \(runMetrics) up to step \(step)")
            }
            return (own, nil)
        }
        for candidate in [runMetrics, own].compactMap({ $0 }) where holds(candidate, loss: lastLoss, at: step) {
            return (candidate, real(candidate) == real(own) ? nil : "resume: metrics.jsonl continues \(candidate) up to step \(step)")
        }
        return (nil, "resume: no metrics.jsonl holds the checkpoint's run up to step \(step) (\(own) holds another run's rows, or none): the series starts after it")
    }

    /// Whether the training row of `step` in the metrics file at `path` logged `loss`.
    static func holds(_ path: String, loss: Double, at step: Int) -> Bool {
        guard let data = FileManager.default.contents(atPath: path) else { return false }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let row = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  (row["step"] as? NSNumber)?.intValue == step, let l = (row["loss"] as? NSNumber)?.doubleValue else { continue }
            return l == loss || abs(l - loss) <= 1e-12 * abs(loss)
        }
        return false
    }

    /// Rewrites `out`'s metrics.jsonl, atomically, as the rows the checkpoint's run had written
    /// by its step — those of `source` (none when nil or missing), dropping rows of steps the
    /// resumed run will redo and a line torn by the kill; returns the training losses kept and
    /// the last one's `elapsed_s`.
    func trimMetrics(toStep step: Int, from source: String?) throws -> (losses: [Double], elapsed: Double) {
        let path = RunOutputs(recipe.out).metrics
        guard FileManager.default.fileExists(atPath: path) || source.map({ FileManager.default.fileExists(atPath: $0) }) == true else { return ([], 0) }
        let data = source.flatMap { FileManager.default.contents(atPath: $0) } ?? Data()
        // A new --out (the run's directory is otherwise made after resume, once the checkpoint is accepted).
        try FileManager.default.createDirectory(atPath: recipe.out, withIntermediateDirectories: true)
        var kept: [String] = [], losses: [Double] = [], elapsed = 0.0
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let row = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  let s = (row["step"] as? NSNumber)?.intValue, s <= step else { continue }
            let training = row["loss"] != nil
            // An evaluation at the checkpoint's step is the final one when that step is the last:
            // the resumed run redoes it.
            if !training && s == step && step == recipe.steps { continue }
            kept.append(String(line))
            if training {
                losses.append((row["loss"] as? NSNumber)?.doubleValue ?? .nan)
                if let e = (row["elapsed_s"] as? NSNumber)?.doubleValue, e.isFinite { elapsed = e }
            }
        }
        let tmp = path + ".tmp-\(getpid())"
        do {
            try DurableFiles.write(Array(kept.map { $0 + "\n" }.joined().utf8), to: tmp)
            try DurableFiles.rename(tmp, path)
        } catch {
            // A full disk left the partial copy beside metrics.jsonl for good.
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
        try DurableFiles.sync(recipe.out, directory: true)
        return (losses, elapsed)
    }
}
