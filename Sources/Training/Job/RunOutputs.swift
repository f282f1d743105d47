import Foundation
import Models

/// What a run writes under `--out`, named once: the run's writers, the check that no input lies
/// inside an output (`RunOutputInputs`), and the done line all read these names.
public struct RunOutputs {
    public let out: String
    /// Trailing slashes dropped (`--out S4/` named S4//data/train.jsonl in messages).
    public init(_ out: String) { self.out = ReplaceableOutput.trimmed(out) }

    /// The trained model (full weights, or a LoRA adapter in peft's format).
    public var model: String { out + "/model" }
    /// `--ema`'s averaged weights.
    public var ema: String { out + "/model-ema" }
    /// `--bema`'s bias-corrected average (TRL's BEMACallback saves `output_dir/bema`).
    public var bema: String { out + "/bema" }
    /// A LoRA adapter's base when `--model` is a preset (randomly initialised, so saved for the adapter).
    public var loraBase: String { out + "/model-base" }
    /// `--merge-lora`'s merged weights.
    public var merged: String { out + "/model-merged" }
    public var checkpoints: String { out + "/checkpoints" }
    public var metrics: String { out + "/metrics.jsonl" }
    public var recipe: String { out + "/recipe.yaml" }
    public var plot: String { out + "/loss.svg" }
    /// Self-training's per-round pseudo-labelled rows.
    public var selfTrain: String { out + "/self-train" }
    /// The built-in data's training and held-out rows (`--data builtin:tasks`).
    public var builtinTrain: String { out + "/data/train.jsonl" }
    public var builtinHeldout: String { out + "/data/heldout.jsonl" }

    /// Every path a run of `r` may write. Model directories are listed whatever the recipe
    /// (a previous run's may be there, and `--resume` may change what this one writes).
    func written(by r: Recipe) -> [String] {
        var paths = [model, ema, bema, loraBase, merged, checkpoints, metrics, recipe, plot]
        if r.data == RunSetup.builtinData {
            paths.append(builtinTrain)
            if r.heldout == nil { paths.append(builtinHeldout) }
        }
        if r.selfTrain != "none" { paths.append(selfTrain) }
        return paths
    }

    /// The model directories besides `model` that a run of `r` writes, as the recipe has them
    /// written (not as found on disk: a previous run's may be there).
    func otherModels(of r: Recipe) -> [String] {
        var dirs: [String] = []
        if r.ema > 0 { dirs.append(ema) }
        if r.bema { dirs.append(bema) }
        if r.loraRank > 0 && LoRAOutput.baseDirectory(r) == loraBase { dirs.append(loraBase) }
        // merge_lora with lora_rank 0 (a recipe's LoRA switched off by --lora-rank 0) merges nothing.
        if r.mergeLora && r.loraRank > 0 { dirs.append(merged) }
        return dirs
    }

    /// Model directories an earlier run left in OUT that this one will not replace (a LoRA run's
    /// model-merged beside a later full fine-tune's model): they do not match OUT/model.
    public func staleModels(of r: Recipe) -> [String] {
        let mine = Set(otherModels(of: r))
        return [ema, bema, loraBase, merged].filter { !mine.contains($0) && FileManager.default.fileExists(atPath: $0) }
    }

    /// Other outputs an earlier run left that this one will not write: self-training's round
    /// files and the built-in data's copy (a run on another --data kept OUT/data/train.jsonl).
    public func staleFiles(of r: Recipe) -> [String] {
        let fm = FileManager.default
        var stale: [String] = []
        if r.selfTrain == "none" && fm.fileExists(atPath: selfTrain) { stale.append(selfTrain) }
        if r.data != RunSetup.builtinData { stale += [builtinTrain, builtinHeldout].filter { fm.fileExists(atPath: $0) } }
        else if r.heldout != nil && fm.fileExists(atPath: builtinHeldout) { stale.append(builtinHeldout) }
        // An earlier run's file read as this one's input (compared resolved: ./OUT/data/train.jsonl).
        let inputs = Set(([r.data] + [r.heldout].compactMap { $0 } + Array(r.evalData.files.values)).map(ReplaceableOutput.resolved))
        return stale.filter { !inputs.contains(ReplaceableOutput.resolved($0)) }
    }

    /// A name a round writes: round-<R>.jsonl, R a decimal number without leading zeros.
    static func isRoundFile(_ name: String) -> Bool {
        guard name.hasPrefix("round-"), name.hasSuffix(".jsonl") else { return false }
        let r = name.dropFirst(6).dropLast(6)
        return !r.isEmpty && r.allSatisfy(\.isASCII) && r.allSatisfy(\.isNumber) && Int(r).map { "\($0)" == String(r) } == true
    }

    /// A fresh self-training run's round files replace an earlier run's: rounds beyond this
    /// run's (an earlier run's round-3.jsonl beside this one's round-1 and round-2) are removed
    /// before the first round, so the directory holds this run's rounds only.
    public func clearRounds() throws {
        let fm = FileManager.default
        // Only the names a round writes (round-<R>.jsonl), and only files: a user's round-mine.jsonl
        // or a directory of that name was removed too.
        for name in (try? fm.contentsOfDirectory(atPath: selfTrain)) ?? [] where Self.isRoundFile(name) {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: selfTrain + "/" + name, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            try fm.removeItem(atPath: selfTrain + "/" + name)
        }
    }
}
