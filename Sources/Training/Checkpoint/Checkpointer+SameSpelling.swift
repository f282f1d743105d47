import Foundation
import Models

/// A resumed run's keys that name the same thing as the checkpoint's, spelled otherwise.
extension Checkpointer {
    /// The checkpoint's recipe with this run's values where both name the same thing spelled
    /// otherwise: the same LoRA modules (`sameAdapters`), and `model` as another path to the
    /// same directory (`./base` for `base`, a symlink) — not another model. Another directory,
    /// even a copy, stays a difference: a LoRA run's adapters name their base by this path.
    func sameSpelling(_ saved: Recipe) -> Recipe {
        var same = sameAdapters(saved)
        if same.model != recipe.model, Self.sameDirectory(same.model, recipe.model) { same.model = recipe.model }
        return same
    }

    /// Whether both paths are directories and resolve (symlinks, `.`, `..`) to the same one.
    static func sameDirectory(_ a: String, _ b: String) -> Bool {
        func isDirectory(_ p: String) -> Bool {
            var d: ObjCBool = false
            return FileManager.default.fileExists(atPath: p, isDirectory: &d) && d.boolValue
        }
        return isDirectory(a) && isDirectory(b) && ReplaceableOutput.resolved(a) == ReplaceableOutput.resolved(b)
    }

    /// `saved` with this run's `lora_targets` when both spellings give this model the same
    /// adapters (the default spelled out, `c_attn` for `attn.c_attn`): the same run.
    func sameAdapters(_ saved: Recipe) -> Recipe {
        guard saved.loraTargets != recipe.loraTargets, let model = setup.model as? LoRAAdaptable,
              let a = try? model.adapterNames(for: LoRATraining.config(saved) ?? LoRAConfig(rank: 1, alpha: 1)),
              let b = try? model.adapterNames(for: LoRATraining.config(recipe) ?? LoRAConfig(rank: 1, alpha: 1)),
              a == b else { return saved }
        var same = saved
        same.loraTargets = recipe.loraTargets
        return same
    }
}
