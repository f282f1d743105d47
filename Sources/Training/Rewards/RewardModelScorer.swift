import Distributed
import Foundation
import Models
import TensorCore

/// A reward model as a reward function: `--reward DIR` where DIR holds a reward model
/// (transformers' `*ForSequenceClassification` with one label, as `--objective reward` saves
/// it), as TRL's GRPOTrainer and RLOOTrainer take a model id in `reward_funcs`. Each completion's
/// reward is the model's score of its text — the prompt as the policy read it, the completion,
/// and the token that ended it (`ScoringItem.stop`) — tokenised by the reward model's own
/// tokenizer with no special token added, read at the last token that is not its config.json's
/// pad_token_id (`logits[:, 0]`). TRL's GRPOTrainer scores prompt + completion without the end
/// token (`reward_processing_class(text=prompts + completions, add_special_tokens=False)`),
/// though its RewardTrainer trained on answers ending with the eos: here the reward is read where
/// it was trained. Its metrics name is the directory's last component, as TRL names it.
///
/// Each distinct text is scored once (`Distinct`): a group's identical answers get one reward, to
/// the bit, as their group's advantages need — in a batched forward a row's bits may depend on
/// its place. The distinct texts go in fixed chunks of `chunk` consecutive ones, each chunk one
/// right-padded forward (causal attention: a position never reads the padding after it).
/// Rollouts are scored collectively (`score(_:comm:)`): the chunks dealt over the ranks, so a
/// reward's bits do not depend on the rank count. Through the `Scorer` protocol (a caller on one
/// rank) it scores every chunk itself, with the same bits.
public final class RewardModelScorer: Scorer {
    public let name: String
    public let path: String
    private var loaded: (model: LanguageModel, tokenizer: Tokenizer)?
    /// The loaded model's pad_token_id (`ModelDirectory.rewardPadId`), read once.
    private var pad: Int32?

    /// Checks that `path` holds a reward model (config.json only); the weights load on `load()`.
    public init(path: String) throws {
        guard ModelDirectory.holdsRewardModel(path) else {
            if FileManager.default.fileExists(atPath: path + "/" + AdapterDirectory.configFile), (try? AdapterDirectory.readConfig(path))?.scoresSequences == true {
                throw ScorerError("--reward \(path): holds a LoRA adapter, not a reward model; merge it into its base first: sft-dist merge-lora --model BASE --adapter \(path) --out DIR, then --reward DIR")
            }
            throw ScorerError("--reward \(path): not a reward model directory (its config.json names no *ForSequenceClassification; train one with --objective reward)")
        }
        self.path = path
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        name = URL(fileURLWithPath: trimmed).lastPathComponent
    }

    /// Reads the weights (each rank its own copy); collective callers wrap it in `Fatal.collective`.
    @discardableResult
    public func load() throws -> (model: LanguageModel, tokenizer: Tokenizer) {
        if let loaded { return loaded }
        let l = try ModelDirectory.load(path, use: .inference, kind: .rewardModel)
        loaded = l
        pad = ModelDirectory.rewardPadId(l.model)
        return l
    }

    /// XXH64 of what the rewards depend on — the weights, the tokenizer (`SameInputs.describe`)
    /// and the pad they are read past — loaded now if not yet, as a checkpoint records it.
    public func checksum() throws -> String {
        if let sum { return sum }
        let (model, tokenizer) = try load()
        let described = "\(XXHash64.hex(model.parameters.checksum()))\u{0}\(SameInputs.describe(tokenizer))\u{0}\(pad.map { String($0) } ?? "none")"
        let s = XXHash64.hex(XXHash64.hash(Array(described.utf8)))
        sum = s
        return s
    }
    private var sum: String?

    /// Collective, after `load()` on every rank: every rank read the same reward model (its
    /// config, weights and tokenizer), as a `--ref-model` is checked: each rank scores its own
    /// share of the rollouts, so a node with another copy would mix its rewards in silently.
    public func checkSameOnEveryRank() {
        guard let (model, tokenizer) = loaded else { preconditionFailure("RewardModelScorer: load() first") }
        SameInputs.check("--reward \(path)", model: model, tokenizer: tokenizer)
    }

    /// The ids the reward model reads for `item`, or the one-line problem.
    func ids(_ item: ScoringItem, tokenizer: Tokenizer, context: Int) -> Result<[Int32], ScorerError> {
        let ids = tokenizer.encode(item.prompt + item.completion + (item.stop ?? ""))
        if ids.isEmpty { return .failure(ScorerError("\(item.source): reward model \(path) gets no tokens for a rollout of this prompt")) }
        if ids.count > context {
            return .failure(ScorerError("\(item.source): a rollout of this prompt is \(ids.count) tokens for reward model \(path), beyond its context of \(context) (transformers would fail too): shorten max_completion_length or the prompts"))
        }
        return .success(ids)
    }

    /// Texts per forward: 16 short rollouts make one GEMM of a few hundred rows, where one text
    /// per forward is a poor one.
    public static let chunk = 16

    /// The rewards of one chunk of texts, from one forward right-padded to the longest; `pad` is
    /// the model's pad_token_id (`ModelDirectory.rewardPadId`). `score` reads its rows with it too.
    public static func rewards(_ texts: ArraySlice<[Int32]>, model: LanguageModel, pad: Int32?) -> [Float] {
        let T = texts.map(\.count).max() ?? 0
        // (Token 0 after each text: causal attention never reads it.)
        let inputs = texts.flatMap { $0 + [Int32](repeating: 0, count: T - $0.count) }
        let scores = model.forward(Tape(recording: false), inputs: inputs, batch: texts.count, seqLen: T)
        return texts.enumerated().map { b, ids in scores.data[b * T + SequenceScoreHead.rewardPosition(ids[...], pad: pad)] }
    }

    func chunks(_ count: Int) -> [Range<Int>] {
        stride(from: 0, to: count, by: Self.chunk).map { $0..<min($0 + Self.chunk, count) }
    }

    /// The distinct texts of a list in first-seen order, and where each text of the list is among them.
    struct Distinct {
        var texts: [[Int32]] = [], slot: [Int] = []
        init(_ all: [[Int32]]) {
            var seen: [[Int32]: Int] = [:]
            for t in all {
                if let s = seen[t] { slot.append(s) } else { seen[t] = texts.count; slot.append(texts.count); texts.append(t) }
            }
        }
    }

    public func score(_ items: [ScoringItem]) throws -> [Float] {
        try load()
        return try score(items, comm: LocalCommunicator()).get()
    }

    /// Every item's reward on every rank, the items dealt over the ranks. Collective; the
    /// weights must be loaded. A text too long for the model is the error (every rank finds it).
    public func score(_ items: [ScoringItem], comm: Communicator) -> Result<[Float], ScorerError> {
        guard let (model, tokenizer) = loaded else { preconditionFailure("RewardModelScorer.score: load() first") }
        var all: [[Int32]] = []
        for item in items {
            switch ids(item, tokenizer: tokenizer, context: model.maxSequenceLength) {
            case .success(let ids): all.append(ids)
            case .failure(let e): return .failure(e)
            }
        }
        let distinct = Distinct(all), chunks = chunks(distinct.texts.count)
        let local = comm.shard.indices(of: chunks.count).map { Self.rewards(distinct.texts[chunks[$0]], model: model, pad: pad) }
        let perRank = comm.allgather(ScoreRows(rows: local)).map(\.rows)
        let scored = comm.shard.interleave(perRank, count: chunks.count).flatMap { $0 }
        return .success(distinct.slot.map { scored[$0] })
    }
}
