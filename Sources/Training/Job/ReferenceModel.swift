import Foundation
import Models

/// `--ref-model`: a frozen model beside the trained one — the reference of DPO and of the
/// objectives anchored to a model, learnability's scorer (LoBaSS, arXiv 2310.13008 §3.2).
/// It must read the same token ids as the trained model and share its architecture; without
/// `--ref-model` the reference is a copy of the initial weights.
public enum ReferenceModel {
    /// Loads `path` for `model`. With LoRA, the reference gets the same (zero) adapters, so
    /// the layouts match and it is its base (without them a LoRA run was refused, the
    /// adapters counted as parameters the reference lacked). A `teacher` (gkd's) only has to
    /// read the same token ids: it may be larger or smaller, and takes no adapters.
    public static func load(_ path: String, like model: LanguageModel, tokenizer: Tokenizer, teacher: Bool = false) throws -> LanguageModel {
        // A preset name said "no such model directory (or a preset: default, tiny, …)".
        if ModelPresets.isOnlyPreset(path) {
            throw ModelError("--ref-model \(path): names a preset (random weights), not a saved model; a reference is a model directory")
        }
        let lora = teacher ? nil : (model as? LoRAAdaptable)?.lora
        // An adapter directory: the loader's advice (--model BASE --adapter) names flags train lacks.
        if !FileManager.default.fileExists(atPath: path + "/config.json"), FileManager.default.fileExists(atPath: path + "/adapter_config.json") {
            if (try? AdapterDirectory.readConfig(path))?.scoresSequences == true {
                throw ModelError("--ref-model \(path): holds a reward model's LoRA adapter; a reference is a causal language model")
            }
            throw ModelError("--ref-model \(path): holds a LoRA adapter (adapter_config.json), not a model; a reference is a full model: merge the adapter into its base first (sft-dist merge-lora --model BASE --adapter \(path) --out DIR)")
        }
        // A teacher loads without adapters, so the loader would meet a LoRA checkpoint's first.
        if teacher, let adapter = try? SafeTensorsCheckpoint(directory: path).names.first(where: LoRAConfig.isAdapterName) {
            throw ModelError("\(path): holds LoRA adapter tensors (\"\(adapter)\"), a checkpoint of a LoRA run; a teacher is a full model: the adapter merged into its base (sft-dist merge-lora, or train --merge-lora's OUT/model-merged)")
        }
        let m: LanguageModel, own: Tokenizer
        do {
            (m, own) = try ModelDirectory.load(path, lora: lora, use: .inference)
        } catch let e as UnknownLoRATarget where e.onlyLayers == nil {
            // The trained model's targets are its own modules: a reference without one is
            // another architecture, which --lora-targets (perhaps never given) did not cause.
            throw ModelError("\(path): the reference model (\(e.modelType)) has no module \"\(e.target)\" that the trained model's LoRA adapters target; a reference must share the trained model's architecture")
        }
        // A LoRA run's checkpoint: loaded with zero adapters its training was dropped (without
        // LoRA the loader refuses it, as for --model).
        if lora != nil, let adapter = try SafeTensorsCheckpoint(directory: path).names.first(where: LoRAConfig.isAdapterName) {
            throw ModelError("\(path): holds LoRA adapter tensors (\"\(adapter)\"), a checkpoint of a LoRA run; a reference is a full model: its base (OUT/model-base), or the adapter merged into it (sft-dist merge-lora)")
        }
        if let problem = mismatch(m, model, teacher: teacher) { throw ModelError("\(path): \(problem)") }
        // Another tokenizer of the same size (ids swapped) scored other token sequences than
        // the trained model's, with exit 0; merge refused it.
        if let difference = AdapterDirectory.vocabularyDifference(own, tokenizer) {
            throw ModelError("\(path): the reference model's tokenizer differs from the trained model's (\(difference)); a reference must read the same token ids")
        }
        return m
    }

    /// Why `reference` cannot stand beside `model` (vocabulary, then parameter count), or nil;
    /// a teacher's size is its own.
    public static func mismatch(_ reference: LanguageModel, _ model: LanguageModel, teacher: Bool = false) -> String? {
        if reference.vocabSize != model.vocabSize {
            return teacher ? "the teacher's vocab_size is \(reference.vocabSize), the student's (--model) \(model.vocabSize); a teacher must read the same token ids"
                : "the reference model's vocab_size is \(reference.vocabSize), the model's (--model) \(model.vocabSize); a reference must share its architecture"
        }
        if teacher { return nil }
        if reference.parameters.count != model.parameters.count {
            return "the reference model has \(reference.parameters.count) parameters, the model (--model) \(model.parameters.count); a reference must share its architecture"
        }
        return nil
    }
}
