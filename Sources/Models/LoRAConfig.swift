import TensorCore

/// A LoRA adapter's shape (Hu et al. 2021, arXiv 2106.09685): rank r, α (the update is
/// scaled by α/r, §4.1), dropout on the adapter's input, and the modules it adapts, named as
/// peft names them — a module path or its last component (`c_attn`, `q_proj`, `attn.c_proj`).
public struct LoRAConfig: Equatable, Sendable {
    public var rank: Int
    public var alpha: Double
    public var dropout: Double
    /// Empty: the architecture's default (peft's: `c_attn` for GPT-2, `q_proj, v_proj` for
    /// the Llama family); `resolved` fills it in.
    public var targets: [String]

    /// The largest α a run or an adapter file may give (`--lora-alpha`'s bound).
    public static let maxAlpha = 1e6

    public init(rank: Int, alpha: Double, dropout: Double = 0, targets: [String] = []) {
        self.rank = rank; self.alpha = alpha; self.dropout = dropout; self.targets = targets
    }

    /// peft's `scaling` without rsLoRA: α / r.
    public var scaling: Float { Float(alpha / Double(rank)) }

    /// Adapter tensor names of a module (`<module>.lora_A.weight`, `<module>.lora_B.weight`),
    /// peft's names without its `base_model.model.` prefix.
    public static func adapterNames(_ module: String) -> (a: String, b: String) {
        (module + ".lora_A.weight", module + ".lora_B.weight")
    }

    public static func isAdapterName(_ name: String) -> Bool {
        name.hasSuffix(".lora_A.weight") || name.hasSuffix(".lora_B.weight")
    }

    /// peft's `target_modules="all-linear"`.
    public static let allLinear = "all-linear"

    /// Whether `target` names `module` (a full path): equal, or a suffix after a dot (peft's rule).
    static func matches(_ target: String, _ module: String) -> Bool {
        module == target || module.hasSuffix("." + target)
    }

    /// The block modules an adapter can attach to: every 2-D `.weight` of one block (linear
    /// projections; norms are 1-D), as (path inside the block, in features, out features).
    static func modules(ofBlock block: ParameterLayoutPlan.Layout, prefix: String, layout: WeightLayout)
        -> [(path: String, inFeatures: Int, outFeatures: Int)] {
        block.compactMap { name, shape in
            guard name.hasSuffix(".weight"), shape.count == 2, name.hasPrefix(prefix), !isAdapterName(name) else { return nil }
            let path = String(name.dropFirst(prefix.count).dropLast(".weight".count))
            return layout == .inOut ? (path, shape[0], shape[1]) : (path, shape[1], shape[0])
        }
    }

    /// This config with the default targets filled in, checked against the model: every
    /// target must name one of the model's modules (the error lists them).
    public func resolved(for arch: LoRAArchitecture, plan: ParameterLayoutPlan) throws -> LoRAConfig {
        guard plan.blocks > 0 else { throw ModelError("--lora-rank: the model has no transformer blocks to adapt") }
        var r = self
        if r.targets.isEmpty { r.targets = arch.defaultTargets }
        var seen = Set<String>()
        r.targets = r.targets.filter { seen.insert($0).inserted }   // peft keeps target_modules as a set
        let modules = Self.modules(ofBlock: plan.block(0), prefix: arch.blockPrefix(0), layout: arch.weightLayout)
        let paths = modules.map(\.path)
        var leaves: [String] = []
        for p in paths { let leaf = String(p.split(separator: ".").last!); if !leaves.contains(leaf) { leaves.append(leaf) } }
        // peft's "all-linear": every linear projection of the blocks (not the output head),
        // saved as their names, as peft saves target_modules once it has resolved them.
        if r.targets == [Self.allLinear] { r.targets = leaves }
        // peft matches a target against full module names (`transformer.h.0.attn.c_attn`), so
        // a target may name one layer's module. Adapters here go on a module in every layer:
        // per-layer names that cover every layer are that module; fewer layers are refused.
        var targets: [String] = [], layersNamed: [String: (target: String, layers: Set<Int>)] = [:]
        for t in r.targets {
            if paths.contains(where: { Self.matches(t, $0) }) { targets.append(t); continue }
            var hit = false
            for b in 0..<plan.blocks {
                for p in paths where Self.matches(t, arch.blockPrefix(b) + p) {
                    layersNamed[p, default: (t, [])].layers.insert(b)
                    hit = true
                }
            }
            if !hit { throw UnknownLoRATarget(modelType: arch.modelType, target: t, modules: leaves) }
        }
        for p in paths {
            guard let named = layersNamed[p] else { continue }
            guard named.layers.count == plan.blocks else {
                throw UnknownLoRATarget(modelType: arch.modelType, target: named.target, modules: leaves,
                                        onlyLayers: named.layers.sorted(), module: p, layers: plan.blocks)
            }
            if !targets.contains(where: { Self.matches($0, p) }) { targets.append(p) }
        }
        r.targets = targets
        // A rank above min(in, out) adds more parameters than the weight has and no more
        // directions than a full update (a rank of 65536 made a 1.3 M-parameter model 169 M).
        for m in modules where targets.contains(where: { Self.matches($0, m.path) }) && r.rank > min(m.inFeatures, m.outFeatures) {
            let (n, side) = m.inFeatures <= m.outFeatures ? (m.inFeatures, "input") : (m.outFeatures, "output")
            throw ModelError("LoRA rank \(r.rank) is more than \(m.path)'s \(n) \(side) features: an update of that rank has more parameters than the weight and is no longer low-rank; give a rank ≤ \(n)")
        }
        return r
    }
}

/// A LoRA target the model does not have. It reads as the `--lora-targets` flag's error; an
/// adapter directory's loader names its own `adapter_config.json` instead (`described(as:)`).
/// Or one that names a module of some layers only (`h.0.attn.c_attn` in a 2-layer model).
public struct UnknownLoRATarget: Error, CustomStringConvertible {
    public let modelType: String, target: String, modules: [String]
    /// Set when `target` names `module` in these layers only, of `layers`.
    public var onlyLayers: [Int]? = nil, module = "", layers = 0
    public func described(as source: String) -> String {
        if let only = onlyLayers {
            return "\(source): \(JSONText.brief(target)) names \(module) in layer\(only.count == 1 ? "" : "s") \(only.map(String.init).joined(separator: ", ")) of \(layers) only; sft-dist adapts a module in every layer (name it \"\(module)\")"
        }
        return "\(source): the \(modelType) model has no adaptable module \(JSONText.brief(target)) (LoRA adapts its block projections: \(modules.joined(separator: ", ")))"
    }
    /// What the message names: the flag, or the recipe line that set `lora_targets`.
    public var source = "--lora-targets"
    public var description: String { described(as: source) }
}

/// What LoRA needs to know of an architecture: how its projection weights are stored (GPT-2
/// Conv1D [in, out] is peft's `fan_in_fan_out`), where its blocks live, peft's default targets.
public struct LoRAArchitecture: Sendable {
    public let modelType: String
    public let weightLayout: WeightLayout
    public let defaultTargets: [String]
    let blockPrefixFormat: @Sendable (Int) -> String
    public func blockPrefix(_ i: Int) -> String { blockPrefixFormat(i) }

    public static let gpt2 = LoRAArchitecture(modelType: "gpt2", weightLayout: .inOut, defaultTargets: ["c_attn"],
                                              blockPrefixFormat: { "transformer.h.\($0)." })
    public static func llama(_ modelType: String) -> LoRAArchitecture {
        LoRAArchitecture(modelType: modelType, weightLayout: .outIn, defaultTargets: ["q_proj", "v_proj"],
                         blockPrefixFormat: { "model.layers.\($0)." })
    }

    /// peft's `fan_in_fan_out`: true for Conv1D weights stored [in, out].
    public var fanInFanOut: Bool { weightLayout == .inOut }
}

extension ParameterLayoutPlan {
    /// This layout with `<module>.lora_A.weight` [r, in] and `<module>.lora_B.weight` [out, r]
    /// after each block's own tensors for every targeted module (inside the block's range, so
    /// its gradient bucket covers them). `lora` must be `resolved`.
    public func addingLoRA(_ lora: LoRAConfig?, _ arch: LoRAArchitecture) -> ParameterLayoutPlan {
        guard let lora else { return self }
        var plan = self
        let base = block
        plan.block = { i in
            let entries = base(i), prefix = arch.blockPrefix(i)
            var adapters: Layout = []
            for m in LoRAConfig.modules(ofBlock: entries, prefix: prefix, layout: arch.weightLayout)
            where lora.targets.contains(where: { LoRAConfig.matches($0, m.path) }) {
                let names = LoRAConfig.adapterNames(prefix + m.path)
                adapters.append((names.a, [lora.rank, m.inFeatures]))
                adapters.append((names.b, [m.outFeatures, lora.rank]))
            }
            return entries + adapters
        }
        return plan
    }
}
