import Distributed
import Foundation
import Models
import TensorCore

/// Merging LoRA adapters into the base weights (Hu et al. 2021, arXiv 2106.09685, §4.1: no
/// inference latency once W ← W + s·B·A), as peft's `merge_and_unload`: a model of the base
/// architecture, without adapter tensors, that transformers loads as it is.
public enum LoRAMerge {
    /// A copy of `model`'s base weights with every adapter merged in: W += s·B·A for nn.Linear
    /// [out, in] weights, W += s·(B·A)ᵀ = s·Aᵀ·Bᵀ for Conv1D [in, out] (peft's fan_in_fan_out).
    public static func merged(_ model: LoRAAdaptable) -> LanguageModel {
        let base = model.makeBaseReplica(), p = model.parameters, q = base.parameters
        for e in q.entries {
            (q.values + e.offset).update(from: p.values + p.entry(e.name)!.offset, count: e.count)
        }
        guard let lora = model.lora else { return base }
        let layout = type(of: model).loraArchitecture.weightLayout
        for e in p.entries where e.name.hasSuffix(".lora_A.weight") {
            let module = String(e.name.dropLast(".lora_A.weight".count))
            let a = p[e.name], b = p[LoRAConfig.adapterNames(module).b], w = q[module + ".weight"]
            let r = lora.rank, ic = a.shape[1], oc = b.shape[0]
            switch layout {
            case .outIn:  // W[OC, IC] += s · B[OC, r] · A[r, IC]
                BLAS.gemm(transA: false, transB: false, m: oc, n: ic, k: r, alpha: lora.scaling, a: b.data, lda: r,
                          b: a.data, ldb: ic, beta: 1, c: w.data, ldc: ic)
            case .inOut:  // W[IC, OC] += s · Aᵀ[IC, r] · Bᵀ[r, OC]
                BLAS.gemm(transA: true, transB: true, m: ic, n: oc, k: r, alpha: lora.scaling, a: a.data, lda: ic,
                          b: b.data, ldb: r, beta: 1, c: w.data, ldc: oc)
            }
        }
        return base
    }

    /// W + (α/r)·B·A can overflow where each factor is finite (an adapter of 1e30s), or land
    /// past √(Float.max), where every product overflows: refused, not written as weights that
    /// every reader (sft-dist's own loader too) refuses.
    static func checkUsable(_ merged: LanguageModel, _ label: String, why: String) throws {
        let v = merged.parameters.values
        for e in merged.parameters.entries {
            guard let i = (e.offset..<(e.offset + e.count)).first(where: { !(abs(v[$0]) < TrainableSet.usableMagnitude) }) else { continue }
            let what = v[i].isFinite ? "reaches \(v[i]), past 1.8e19 where products overflow" : "is not finite"
            throw ModelError("\(label), \(e.name) \(what) (\(why)); nothing written")
        }
    }

    /// `sft-dist merge-lora --model BASE --adapter DIR --out OUT`: the merged model in HF format.
    @discardableResult
    public static func run(base: String, adapter: String, out: String) throws -> String {
        let (model, tokenizer) = try AdapterDirectory.loadModel(base: base, adapter: adapter, rewardModels: true)
        if let note = AdapterDirectory.fanInFanOutNote(adapter: adapter, base: base, model: model) { StandardError.write("sft-dist: note: \(note)\n") }
        let merged = merged(model as! LoRAAdaptable)
        try checkUsable(merged, "\(adapter): merged into \(base)", why: "the adapter's tensors or lora_alpha are too large")
        try ModelDirectory.save(merged, tokenizer: tokenizer, to: out, metadata: [mergedAdapterKey: resolvedPath(adapter)], format: .hf)
        return "merged the adapter \(adapter) into \(base) (\(merged.parameters.parameterCount) parameters) and wrote \(out)"
    }
}

/// What a LoRA run writes as its model (`TrainingJob.saveFinal`): `OUT/model/` is the adapter
/// in peft's format; a base that is not a directory (a preset, randomly initialised) is
/// written beside it as `OUT/model-base/` so the adapter has a base to load onto; with
/// `--merge-lora`, `OUT/model-merged/` holds the merged weights in HF format.
enum LoRAOutput {
    /// The adapter's base: the run's `--model` directory, or `OUT/model-base/` for a preset.
    static func baseDirectory(_ r: Recipe) -> String {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: r.model, isDirectory: &isDir) && isDir.boolValue ? r.model : RunOutputs(r.out).loraBase
    }

    static func save(_ setup: RunSetup, model: LoRAAdaptable, to dir: String, main: Bool, metadata: [String: String]) throws {
        let r = setup.recipe
        let base = baseDirectory(r)
        // --merge-lora: the merged weights checked before anything is written (a merge past
        // 1.8e19 was written, and every later command refused it).
        let merged = main && r.mergeLora ? LoRAMerge.merged(model) : nil
        if let merged {
            try LoRAMerge.checkUsable(merged, "--merge-lora: the trained adapter merged into \(base)", why: "the adapter's weights grew too large; the run's adapter is not written either")
        }
        if base != r.model {
            if main {
                let plain = model.makeBaseReplica()
                for e in plain.parameters.entries {
                    (plain.parameters.values + e.offset).update(from: model.parameters[e.name].data, count: e.count)
                }
                try ModelDirectory.save(plain, tokenizer: setup.tokenizer, to: base, metadata: metadata, format: .hf)
            }
        }
        try AdapterDirectory.save(model, base: base, to: dir, tokenizer: setup.tokenizer, metadata: metadata)
        if let merged {
            try ModelDirectory.save(merged, tokenizer: setup.tokenizer, to: RunOutputs(r.out).merged,
                                    metadata: metadata.merging([LoRAMerge.mergedAdapterKey: LoRAMerge.resolvedPath(dir)]) { $1 }, format: .hf)
        }
    }
}

extension LoRAMerge {
    /// The metadata key of merged weights that names the adapter merged into them (merge-lora,
    /// train's --merge-lora).
    public static let mergedAdapterKey = "sft_dist_merged_adapter"

    /// `path` absolute, symbolic links resolved: recorded so, a merge is recognised from any
    /// directory (a relative path was read against the reader's directory).
    static func resolvedPath(_ path: String) -> String { URL(fileURLWithPath: path).standardized.resolvingSymlinksInPath().path }

    /// `--model MERGED --adapter DIR` where MERGED's weights record DIR as merged into them:
    /// the update would be applied twice (peft does not check this either), so it is said.
    /// Only a single-file model is read; nil when unknown. (An adapter trained again into the
    /// same directory after the merge is taken for the merged one.)
    public static func alreadyMergedNote(base: String, adapter: String) -> String? {
        guard let file = try? SafeTensorsFile(path: base + "/model.safetensors"),
              let recorded = file.metadata[mergedAdapterKey] else { return nil }
        guard recorded == resolvedPath(adapter) else { return nil }
        return "\(base) has \(adapter) merged into it already (its weights record the merge): the adapter is applied a second time"
    }
}
