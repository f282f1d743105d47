import Distributed
import Foundation
import Models
import TensorCore

/// The model `sft-dist bench` trains: the built-in gpt2-mini (default), a public model's shape
/// with random weights (`--shape`, `ModelPresets.shape`), or a Hugging Face model directory
/// (`--model DIR`, its own weights). Carries what the FLOP count and the computed memory need.
extension Benchmark {
    public struct BenchModel {
        public var name: String
        public var model: LanguageModel
        public var layers: Int
        /// Width of q (heads × head dim): the attention FLOPs per token and layer scale with it.
        public var attentionWidth: Int
        /// Floats held for backward for (batch, seqLen), without and with `--recompute`.
        public var activationFloats: (Int, Int) -> Int
        public var recomputedActivationFloats: (Int, Int) -> Int

        /// The benchmark's gpt2-mini (13.9 M parameters with `vocab` 8192).
        /// `lora`: adapters on it (`bench --lora-rank`), the base frozen.
        public static func gpt2Mini(vocab: Int, seed: UInt64, lora: LoRAConfig? = nil) -> BenchModel {
            let config = ModelPresets.gpt2("gpt2-mini", vocabSize: vocab)!
            let model = GPT2(config: config, seed: seed, lora: lora)
            model.initializeAdapters(seed: seed)
            return gpt2(name: "gpt2-mini", model)
        }

        static func gpt2(name: String, _ model: GPT2) -> BenchModel {
            let c = model.config
            return BenchModel(name: name, model: model, layers: c.layers, attentionWidth: c.embedDim,
                              activationFloats: { Benchmark.activationFloats(c, batch: $0, seqLen: $1) },
                              recomputedActivationFloats: { Benchmark.recomputedActivationFloats(c, $0, $1) })
        }

        /// A Llama-family model. Floats held per layer and token: RMSNorm outputs and the
        /// residual stream after attention and after the MLP (4·C), q and k before and after
        /// rotary and v (2·q + 3·kv), softmax probabilities (H·T), attention output (q), gate,
        /// up and SwiGLU output (3·I), two RMS statistics; outside the layers the embedding
        /// output and the final RMSNorm (2·C + 1). Logits are not counted (fused loss). Qwen3's
        /// QK-Norm keeps q and k before it and one statistic per head (q + kv + H + H_kv).
        static func llama(name: String, _ model: Llama) -> BenchModel {
            let c = model.config
            let C = c.hiddenSize, q = c.heads * c.headDim, kv = c.kvHeads * c.headDim, I = c.intermediateSize
            let qkNorm = c.qkNorm ? q + kv + c.heads + c.kvHeads : 0
            let perLayer = { (t: Int) in 4 * C + 3 * q + 3 * kv + 3 * I + c.heads * t + 2 + qkNorm }
            return BenchModel(name: name, model: model, layers: c.layers, attentionWidth: q,
                              activationFloats: { b, t in b * t * (c.layers * perLayer(t) + 2 * C + 1) },
                              recomputedActivationFloats: { b, t in b * t * (c.layers * C + perLayer(t) + 2 * C + 1) })
        }

        /// `--shape NAME`: the public config's architecture, N(0, 0.02) weights from `seed`.
        /// `bench --lora-rank r`: adapters on every linear layer with α = 2r (nil for r = 0).
        public static func lora(rank: Int, llama: Bool) -> LoRAConfig? {
            guard rank > 0 else { return nil }
            let targets = llama ? ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] : ["c_attn", "c_proj", "c_fc"]
            return LoRAConfig(rank: rank, alpha: Double(2 * rank), targets: targets)
        }

        /// `lora`: adapters on it (`bench --lora-rank`), the base frozen.
        public static func shape(_ name: String, seed: UInt64, lora: LoRAConfig? = nil) throws -> BenchModel {
            guard let config = ModelPresets.shape(name) else { throw unknownShape(name) }
            try ModelMemoryCheck.check(config.layoutPlan, path: "--shape \(name)")
            let model = Llama(config: config, seed: seed, lora: lora)
            model.initializeAdapters(seed: seed)
            return llama(name: name, model)
        }

        /// `--model DIR`: a Hugging Face model directory, loaded as training loads it.
        public static func directory(_ dir: String) throws -> BenchModel {
            // The loader's "(or a preset: …)" named presets that bench refuses.
            guard FileManager.default.fileExists(atPath: dir) else { throw ModelError("\(dir): no such model directory") }
            let model = try ModelDirectory.load(dir).model
            let name = URL(fileURLWithPath: dir).lastPathComponent
            if let m = model as? Llama { return llama(name: name, m) }
            if let m = model as? GPT2 { return gpt2(name: name, m) }
            throw ModelError("\(dir): sft-dist bench supports gpt2 and Llama-family models")
        }

        public static func unknownShape(_ name: String) -> ModelError {
            ModelError("--shape: unknown shape \(JSONText.brief(name)) (known: \(ModelPresets.shapeNames.joined(separator: ", ")))")
        }
    }
}

extension Benchmark {
    /// The number of a /proc/self/status line such as "VmHWM:\t 3790640 kB". The kernel pads it
    /// to 8 columns after the tab, so from 10,000,000 kB (9.5 GiB) on no space separates it from
    /// the tab: splitting on spaces alone read the 0.5B shape's peak as 0.
    static func statusKilobytes<S: StringProtocol>(_ line: S) -> Int {
        line.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int($0) }.first ?? 0
    }
}
