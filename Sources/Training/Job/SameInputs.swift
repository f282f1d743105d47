import Distributed
import Foundation
import Models
import TensorCore

/// Every rank reads its inputs itself (README "Cluster use"), so a node with a stale or
/// truncated copy of a data file would train or evaluate on other examples than rank 0 —
/// silently: the coordinator picks indices, every rank looks them up in its own copy, and an
/// evaluation averages over different sets. After loading, each input is hashed (tokenized
/// examples by `CheckpointState.dataHash`: ids and loss masks, in order; a model by its
/// parameters; other files by their bytes) and compared with rank 0's; a difference ends the
/// job naming the input and the rank. Every subcommand that runs on several ranks checks its
/// settings, its model and its data this way.
public enum SameInputs {
    /// Collective. `what` names the input as the user gave it (`--data FILE`).
    public static func check(_ what: String, examples: [Example], comm: Communicator = Fatal.communicator) {
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

    /// Collective: this rank's `digest` of an input against rank 0's; `differs` ends the
    /// message when they differ.
    static func check(_ what: String, digest: String, differs: String, comm: Communicator) {
        guard comm.size > 1 else { return }
        let root = comm.broadcast(digest, root: 0)
        Fatal.agree(root == digest ? nil : "\(what): \(differs)")
    }

    /// Collective: a file read as a whole (`--prompts`, `--unlabelled`) has the same bytes on
    /// every rank. A file no rank can read passes here, for its reader to name the problem.
    public static func check(_ what: String, file path: String, comm: Communicator = Fatal.communicator) {
        guard comm.size > 1 else { return }
        let digest = (try? XXHash64.hashFile(path)).map { "\($0.size) \(XXHash64.hex($0.hash))" } ?? "unreadable"
        check(what, digest: digest, differs: "this rank's copy has other bytes than rank 0's: every node must have the same file", comm: comm)
    }

    /// Collective: every rank loaded the same weights (a node with another copy of a model
    /// directory would otherwise train or score with them).
    public static func check(_ what: String, model parameters: ParameterStore, comm: Communicator = Fatal.communicator) {
        guard comm.size > 1 else { return }
        check(what, digest: "\(parameters.count) \(XXHash64.hex(parameters.checksum()))",
              differs: "this rank loaded other weights than rank 0: every node must have the same model files", comm: comm)
    }

    /// Collective: every rank loaded the same weights, the same generation_config.json stop ids
    /// (eval and generate stop at them on each rank's share of the prompts) and the same
    /// tokenizer — special tokens, end token, chat template: a LoRA adapter's own tokenizer
    /// (`AdapterDirectory`) present on one node only laid out other ranks' prompts another way.
    public static func check(_ what: String, model: LanguageModel, tokenizer: Tokenizer, comm: Communicator = Fatal.communicator) {
        check(what, architecture: model, comm: comm)
        check(what, model: model.parameters, comm: comm)
        check(what, generationConfig: model.generationConfig, comm: comm)
        check(what, tokenizer: tokenizer, comm: comm)
    }

    /// Collective: every rank built the same architecture — its config.json as the model saves
    /// it, the adapter's rank, alpha and targets, the parameter layout. `train` broadcasts rank
    /// 0's weights into every replica, so a node with another config.json (a stale copy) was
    /// not caught by the weights: with other shapes the broadcast overran a buffer (a segfault),
    /// with the same shapes (n_head, an epsilon, rope_theta) that rank computed other losses and
    /// gradients, silently. Checked before anything is exchanged, naming the first key.
    public static func check(_ what: String, architecture model: LanguageModel, comm: Communicator = Fatal.communicator) {
        guard comm.size > 1 else { return }
        let mine = architectureFields(model)
        let root = comm.broadcast(mine.map { "\($0.key)\u{1}\($0.value)" }.joined(separator: "\u{0}"), root: 0)
        var theirs: [String: String] = [:]
        for entry in root.split(separator: "\u{0}") {
            let parts = entry.split(separator: "\u{1}", maxSplits: 1, omittingEmptySubsequences: false)
            theirs[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        let here = Dictionary(uniqueKeysWithValues: mine.map { ($0.key, $0.value) })
        let key = Set(here.keys).union(theirs.keys).sorted().first { here[$0] != theirs[$0] }
        Fatal.agree(key.map { k in
            "\(what): this rank's model differs from rank 0's: \(k) is \(here[k] ?? "absent") here and \(theirs[k] ?? "absent") on rank 0 (every node must have the same model files)"
        })
    }

    /// (name, value) of what makes an architecture, sorted by name: the config.json keys the
    /// model interprets, as it writes them (JSON values), the adapter's settings, the parameter
    /// layout.
    static func architectureFields(_ model: LanguageModel) -> [(key: String, value: String)] {
        var fields: [(key: String, value: String)] = model.architectureJSON.map { k, v in
            let text = (try? JSONSerialization.data(withJSONObject: [v], options: [.sortedKeys, .fragmentsAllowed]))
                .flatMap { String(data: $0, encoding: .utf8) }.map { String($0.dropFirst().dropLast()) } ?? "\(v)"
            return ("config.json " + k, text)
        }
        if let lora = (model as? LoRAAdaptable)?.lora {
            fields += [("adapter r", "\(lora.rank)"), ("adapter lora_alpha", "\(lora.alpha)"),
                       ("adapter target_modules", lora.targets.joined(separator: ","))]
        }
        let layout = model.parameters.entries.map { "\($0.name):\($0.shape)@\($0.offset)" }.joined(separator: " ")
        fields.append(("the parameter layout", "\(model.parameters.count) floats, \(XXHash64.hex(XXHash64.hash(Array(layout.utf8))))"))
        return fields.sorted { $0.key < $1.key }
    }

    /// Collective: every rank loaded the same tokenizer (tokenizer.json — vocabulary, merges,
    /// pre-tokenizer —, special tokens, end token, chat template). A node whose tokenizer.json
    /// had other merges generated other tokens (`generate --prompts`, exit 0), and train, score
    /// and eval blamed the data file, whose tokenized rows then differed.
    public static func check(_ what: String, tokenizer: Tokenizer, comm: Communicator = Fatal.communicator) {
        guard comm.size > 1 else { return }
        check(what, digest: XXHash64.hex(XXHash64.hash(Array(describe(tokenizer).utf8))),
              differs: "this rank loaded another tokenizer than rank 0 (tokenizer.json's bytes, special tokens, end token or chat template): every node must have the same model and adapter files", comm: comm)
    }

    /// What a tokenizer's ids depend on: its size, end, pad and begin ids, special tokens, chat
    /// template and tokenizer.json's bytes.
    static func describe(_ tokenizer: Tokenizer) -> String {
        let specials = tokenizer.specialTokens.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{0}")
        let encoding = (tokenizer as? BPETokenizer)?.sourceFiles["tokenizer.json"].map { XXHash64.hex(XXHash64.hash(Array($0))) } ?? "built in"
        return "\(tokenizer.vocabSize) \(tokenizer.eosId) \(tokenizer.padId) \(tokenizer.bosId ?? -1)\u{0}\(specials)\u{0}\(tokenizer.chatTemplateText ?? "none")\u{0}\(encoding)"
    }

    /// Collective: `train` broadcasts rank 0's weights, but each rank generates (held-out
    /// accuracy, self-training, rollouts' evaluation) with its own generation_config.json.
    public static func check(_ what: String, generationConfig g: GenerationConfig?, comm: Communicator = Fatal.communicator) {
        guard comm.size > 1 else { return }
        let ids = g.map { "eos_token_id " + $0.eosTokenIds.map(String.init).joined(separator: ",") } ?? "no file"
        check(what, digest: ids, differs: "this rank's \(GenerationConfig.fileName) differs from rank 0's (\(ids) here): every node must have the same model files", comm: comm)
    }

    /// Collective: every rank runs the command with the same settings, given as (name, value)
    /// in a fixed order — the parsed options that change results, not paths (whose contents
    /// are compared by the checks above), threads or the watchdog: `--threads 2` on one node
    /// and 1 on another, or `r1/model` against `$PWD/r1/model`, run alike. `train` compares
    /// its recipe instead, naming the key.
    public static func check(settings: [(name: String, value: String)], comm: Communicator = Fatal.communicator) {
        guard comm.size > 1 else { return }
        // Values only: the names are the same list on every rank (one command's).
        let root = comm.broadcast(settings.map(\.value).joined(separator: "\u{0}"), root: 0)
            .split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
        let at = settings.indices.first { $0 >= root.count || root[$0] != settings[$0].value }
        Fatal.agree(at.map { i in
            "the command's settings differ between ranks: --\(settings[i].name) is \"\(settings[i].value)\" here and \(i < root.count ? "\"\(root[i])\"" : "nothing") on rank 0 (every rank must get the same arguments)"
        })
    }

    /// Collective: Open MPI's collective settings (`OMPI_MCA_coll_*`, from `mpirun -x` or
    /// `--mca`) are the same on every rank. Ranks that run different algorithms for one
    /// non-blocking allreduce corrupt each other's buffers (`free(): invalid next size`, a
    /// trap with no sft-dist line) or fail in a wait; checked before the first of them.
    /// Only broadcasts: with mismatched allreduce algorithms `Fatal.agree`'s allreduce itself
    /// stalled. Each rank compares with rank 0's and says whether it differs, in turn (one
    /// byte from each rank); the first that differs prints the one line, then all abort.
    public static func checkCollectiveSettings(comm: Communicator = Fatal.communicator) {
        guard comm.size > 1 else { return }
        // The values in effect are compared (sft-dist's own default for the iallreduce
        // algorithm included: a rank given that value explicitly runs the same); the message
        // says which side's value is that default rather than the user's.
        let settings = ProcessInfo.processInfo.environment.filter { $0.key.hasPrefix("OMPI_MCA_coll") }
        let defaulted = MPICommunicator.iallreduceDefaulted ? MPICommunicator.iallreduceAlgorithm.variable : ""
        // NUL cannot occur in an environment string: the one safe separator; after U+0001, the
        // key whose value is sft-dist's default (compared all the same; the message names it so).
        let mine = settings.keys.sorted().map { "\($0)=\(settings[$0]!)" }.joined(separator: "\u{0}")
        let root = comm.broadcast(mine + "\u{1}" + defaulted, root: 0)
        let rootParts = root.split(separator: "\u{1}", omittingEmptySubsequences: false)
        var problem: String? = nil
        if rootParts[0] != mine {
            var theirs: [String: String] = [:]
            for entry in rootParts[0].split(separator: "\u{0}") {
                guard let eq = entry.firstIndex(of: "=") else { continue }
                theirs[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
            }
            let rootDefaulted = rootParts.count > 1 ? String(rootParts[1]) : ""
            let key = Set(settings.keys).union(theirs.keys).sorted().first { settings[$0] != theirs[$0] } ?? "?"
            let shown = { (v: String?, isDefault: Bool) in
                isDefault ? "unset (sft-dist's default \"\(v ?? "")\")" : v.map { "\"\($0)\"" } ?? "unset"
            }
            problem = "Open MPI's collective settings differ between ranks: \(key) is \(shown(settings[key], key == defaulted)) here and \(shown(theirs[key], key == rootDefaulted)) on rank 0 (give every rank the same, with mpirun -x or --mca)"
        }
        guard let first = comm.firstFlaggedRank(problem != nil) else { return }
        if comm.rank == first, let problem {
            StandardError.write("sft-dist: error\(first == 0 ? "" : " (rank \(first))"): \(problem)\n")
        }
        Fatal.abort(afterPrinting: comm.rank == first, comm: comm, code: 1)
    }
}
