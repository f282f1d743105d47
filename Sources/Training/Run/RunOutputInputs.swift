import Foundation
import Models

/// A run writes what `RunOutputs` names. An input inside one of them would be replaced by the run that reads it:
/// `sft-dist train --model sft-dist-out/model --objective grpo` without `--out` wrote its
/// result over the warm start it had loaded, and every later recipe started from that.
public enum RunOutputInputs {
    /// The first input (as given) that lies in what the run writes, with that output, or nil.
    public static func problem(_ recipe: Recipe) -> String? {
        let written = RunOutputs(ReplaceableOutput.trimmed(recipe.out)).written(by: recipe)
        let outputs = written.map { (shown: $0, path: ReplaceableOutput.resolved($0)) }
        var inputs: [(flag: String, path: String)] = [("--model", recipe.model)]
        if let r = recipe.refModel { inputs.append(("--ref-model", r)) }
        if recipe.data != RunSetup.builtinData { inputs.append(("--data", recipe.data)) }
        for (flag, value) in [("--heldout", recipe.heldout), ("--prompts", recipe.prompts), ("--unlabelled", recipe.unlabelled)] {
            if let value { inputs.append((flag, value)) }
        }
        for name in recipe.evalData.names { inputs.append(("--eval-data \(name)=", recipe.evalData.files[name]!)) }
        for input in inputs {
            // A preset name (`tiny`) is no path; anything else is compared as the file system resolves it.
            if input.flag == "--model" && ModelPresets.names.contains(input.path) { continue }
            let i = ReplaceableOutput.resolved(input.path)
            if let o = outputs.first(where: { i == $0.path || i.hasPrefix($0.path + "/") }) {
                let given = input.flag.hasSuffix("=") ? input.flag + input.path : input.flag + " " + input.path
                return "\(given) is in \(o.shown), which this run writes (--out \(recipe.out)): give the run another --out, or copy the input elsewhere first"
            }
        }
        return nil
    }

    /// A model directory given as --out (`--out run/model`) took data/, model/, metrics.jsonl
    /// and the rest, and was no longer a model directory (`export` then refused it). A look at
    /// the file system only, so `train --dry-run` checks it too.
    public static func modelDirectoryAsOutput(_ out: String) -> String? {
        for marker in ["config.json", "adapter_config.json"] where FileManager.default.fileExists(atPath: out + "/" + marker) {
            return "\(out): holds \(marker), so it is a model directory, not a run's output; the run would write data/, model/, metrics.jsonl and the rest into it: choose another --out"
        }
        return nil
    }

    /// What the run would find unwritable only at its end, after all its steps: a model
    /// directory it saves (`model/`, and `model-ema/`, `model-base/`, `model-merged/` as the
    /// recipe has them) that is a file, another directory, a symbolic link or not writable
    /// (`ReplaceableOutput.replaceProblem`), a `checkpoints` that is a file, a dangling link or
    /// not writable.
    /// The final save refuses those (`ReplaceableOutput.check`), so a 2,000-step run lost its
    /// weights; checked before the first step instead. Rank 0.
    /// Its files too: a directory in place of one (the final loss.svg was silently not
    /// written; metrics.jsonl was refused only after recipe.yaml had been written), or a
    /// metrics.jsonl that is a symbolic link (appended through it, to a file outside OUT;
    /// the others are replaced by a rename, which replaces the link).
    public static func unwritable(_ recipe: Recipe) -> String? {
        let outputs = RunOutputs(recipe.out)
        if let problem = modelDirectoryAsOutput(recipe.out) { return problem }
        for (file, what) in [(outputs.metrics, "appends its metrics"), (outputs.recipe, "writes its recipe"), (outputs.plot, "writes its plot")] {
            var st = stat()
            guard lstat(file, &st) == 0 else { continue }
            let type = st.st_mode & S_IFMT
            if type == S_IFDIR { return "\(file): is a directory, where this run \(what); remove it or choose another --out" }
            if type == S_IFLNK && file == outputs.metrics {
                return "\(file): is a symbolic link, and this run \(what) to that file (outside what it writes); remove the link or choose another --out"
            }
        }
        for dir in [outputs.model] + outputs.otherModels(of: recipe) {
            do { try ReplaceableOutput.check(dir) } catch { return "\(error)" }
            if let problem = ReplaceableOutput.replaceProblem(dir) { return problem }
        }
        guard recipe.saveEvery > 0 else { return nil }
        let checkpoints = outputs.checkpoints
        var st = stat()
        if lstat(checkpoints, &st) == 0 {
            var isDir: ObjCBool = false
            if !FileManager.default.fileExists(atPath: checkpoints, isDirectory: &isDir) || !isDir.boolValue {
                return "\(checkpoints): exists and is not a directory, where this run saves its checkpoints (save_every \(recipe.saveEvery)); remove it or choose another --out"
            }
            if access(checkpoints, W_OK | X_OK) != 0 {
                return "\(checkpoints): is not writable (\(String(cString: strerror(errno)))), where this run saves its checkpoints (save_every \(recipe.saveEvery)); fix its permissions or choose another --out"
            }
        }
        return nil
    }
}
