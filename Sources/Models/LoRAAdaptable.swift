import TensorCore

/// A model family that takes LoRA adapters (GPT-2 and the Llama family): its projections go
/// through `project`, which adds the adapter's low-rank term when the layout holds
/// `<module>.lora_A/B.weight` (`ParameterLayoutPlan.addingLoRA`). Base weights are frozen by
/// the trainer's `TrainableSet`, not here.
public protocol LoRAAdaptable: LanguageModel {
    static var loraArchitecture: LoRAArchitecture { get }
    /// The adapter this model was built with (targets resolved), nil for none.
    var lora: LoRAConfig? { get }
    /// Set by the trainer around a training forward when `lora.dropout > 0`; nil otherwise
    /// (evaluation, reference models, decoding).
    var loraDropout: LoRADropoutContext? { get set }
    /// The same architecture without adapters.
    func makeBaseReplica() -> LanguageModel
    /// The base model's layout by parts (adapters are added to it by `addingLoRA`).
    var basePlan: ParameterLayoutPlan { get }
}

/// Dropout of the adapters' input for one training forward: each row (token) of the pass has
/// a key from its place in the global step batch, so the masks do not depend on the ranks.
public struct LoRADropoutContext {
    public var probability: Float
    public var salt: UInt64
    public var rowKeys: [UInt64]
    public init(probability: Float, salt: UInt64, rowKeys: [UInt64]) {
        self.probability = probability; self.salt = salt; self.rowKeys = rowKeys
    }

    /// The mask of one module: the salt mixed with the module's name (FNV-1a, stable across runs).
    func mask(module: String) -> DropoutMask {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in module.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return DropoutMask(probability: probability, salt: DropoutMask.key(salt, h), rowKeys: rowKeys)
    }
}

extension LoRAAdaptable {
    /// The adapter of `module` (a full path without `.weight`), if the layout has one.
    func adapter(_ module: String) -> LoRAAdapter? {
        guard let lora else { return nil }
        let names = LoRAConfig.adapterNames(module)
        guard parameters.entry(names.a) != nil else { return nil }
        return LoRAAdapter(a: parameters[names.a], b: parameters[names.b], scaling: lora.scaling)
    }

    /// x·op(W) + b (+ residual) for `module`, plus its adapter's term when it has one.
    func project(_ tape: Tape, _ module: String, _ x: Tensor, bias: Tensor?, residual: Tensor? = nil) -> Tensor {
        let weight = parameters[module + ".weight"], layout = Self.loraArchitecture.weightLayout
        guard let adapter = adapter(module) else {
            return tape.linear(x, weight: weight, bias: bias, layout: layout, residual: residual)
        }
        let input = loraDropout.flatMap { $0.probability > 0 ? tape.dropout(x, mask: $0.mask(module: module)) : nil }
        return tape.loraLinear(x, weight: weight, bias: bias, layout: layout, residual: residual,
                               adapter: adapter, adapterInput: input)
    }

    /// Decoding (no tape): adds `module`'s adapter term to `out` [n, OC] for input `x` [n, IC].
    func addAdapterTerm(_ module: String, out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, n: Int) {
        guard let adapter = adapter(module) else { return }
        let r = adapter.rank, ic = adapter.a.shape[1], oc = adapter.b.shape[0]
        var u = [Float](repeating: 0, count: n * r)
        u.withUnsafeMutableBufferPointer {
            LoRAKernels.addDelta(out: out, u: $0.baseAddress!, x: x, a: adapter.a.data, b: adapter.b.data,
                                 scaling: adapter.scaling, n: n, inFeatures: ic, outFeatures: oc, rank: r)
        }
    }

    /// Names of the adapter tensors in layout order (the trainable set of a LoRA run).
    public var adapterNames: [String] { parameters.entries.map(\.name).filter(LoRAConfig.isAdapterName) }

    /// The adapter tensors `config` (targets as given, empty for the default) would give this
    /// model, in layout order: two spellings of `--lora-targets` are the same adapters when
    /// these are equal (`c_attn`, `attn.c_attn`, the default spelled out).
    public func adapterNames(for config: LoRAConfig) throws -> [String] {
        let resolved = try config.resolved(for: Self.loraArchitecture, plan: basePlan)
        return basePlan.addingLoRA(resolved, Self.loraArchitecture).layout.map(\.name).filter(LoRAConfig.isAdapterName)
    }

    /// peft's initialisation: A ~ U(−1/√in, 1/√in) (kaiming_uniform with a = √5), B = 0, so
    /// the adapted model starts equal to the base.
    public func initializeAdapters(seed: UInt64) {
        var rng = RNG(seed: seed, stream: 3)
        for e in parameters.entries where LoRAConfig.isAdapterName(e.name) {
            let t = parameters[e.name]
            if e.name.hasSuffix(".lora_B.weight") {
                t.data.update(repeating: 0, count: e.count)
            } else {
                let bound = 1 / Float(e.shape[1]).squareRoot()
                for i in 0..<e.count { t.data[i] = (rng.uniform() * 2 - 1) * bound }
            }
        }
    }
}

extension GPT2 {
    /// The same architecture without adapters (merged and base outputs).
    public func makeBaseReplica() -> LanguageModel {
        let m = GPT2(config: config)
        m.generationConfig = generationConfig
        return m
    }
    public var basePlan: ParameterLayoutPlan { config.layoutPlan }
}

extension Llama {
    /// The same architecture without adapters (merged and base outputs).
    public func makeBaseReplica() -> LanguageModel {
        let m = Llama(config: config, extraConfig: extraConfig)
        m.generationConfig = generationConfig
        return m
    }
    public var basePlan: ParameterLayoutPlan { config.layoutPlan }
}
