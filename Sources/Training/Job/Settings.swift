import Foundation

/// Settings that more than one subcommand takes, declared once: `train` (as recipe keys, see
/// `RecipeKeys`), `eval`, `score`, `generate`, `bench` and `make-data` read their names, limits
/// and help from here, so `--micro-batch-size 0` is refused the same way everywhere.
///
/// The upper bounds are far above any real use on a CPU cluster and far below what would
/// overflow a size computation or ask for more memory than a machine has.
public enum Settings {
    public static let steps = Setting<Int>("steps", .within(1...100_000_000), "Optimizer steps.")
    public static let warmupSteps = Setting<Int>("warmup_steps", .within(0...100_000_000), "Linear warmup steps.")
    public static let batchSize = Setting<Int>("batch_size", .within(1...1_048_576), "Global batch size in examples (all ranks together).")
    public static let microBatchSize = Setting<Int>("micro_batch_size", .within(1...65_536), "Examples per forward pass on one rank.")
    public static let maxLength = Setting<Int>("max_length", .within(2...1_048_576), "Maximum tokens per example.")
    public static let maxNewTokens = Setting<Int>("max_new_tokens", .within(1...65_536), "Tokens to generate.")
    public static let generationExamples = Setting<Int>("eval_examples", .within(0...10_000_000), "Held-out examples used for generation accuracy (0: none).")
    public static let samples = Setting<Int>("samples", .within(0...4096), "Sampled completions per prompt for pass@k (0: greedy only).")
    public static let numReturnSequences = Setting<Int>("num_return_sequences", .within(1...4096), "Sampled completions per prompt (transformers' num_return_sequences; each from its own seeded stream).")
    public static let temperature = Setting<Float>("temperature", .within(0, 1000), "Sampling temperature; 0 = greedy.")
    public static let topP = Setting<Float>("top_p", .within(0, 1, openLow: true), "Nucleus sampling mass.")
    public static let topK = Setting<Int>("top_k", .within(0...16_777_216), "Sample from the k most likely tokens (0 = all).")
    public static let seed = Setting<UInt64>("seed", .any, "Seed for initialisation, data order and sampling.")
    /// train's is the recipe key watchdog_seconds (same limits); the other subcommands take this.
    public static let watchdog = Setting<Double>("watchdog", .within(0, 1e7), "Abort the job when a collective (one rank waiting for the others) waits this many seconds (0: off); under an address-space limit, also when a matrix product makes no progress for half of it.")
    public static let threads = Setting<Int>("threads", .within(1...1024), "Threads per rank: sft-dist's pool splits each GEMM and kernel over them, each OpenBLAS call single-threaded (default: OPENBLAS_NUM_THREADS, else the cores).")
    public static let scorerTimeout = Setting<Double>("scorer_timeout", .within(0, ExternalScorer.maxTimeout, openLow: true), "Seconds an external scorer may take per batch.")
    public static let exampleCount = Setting<Int>("count", .within(1...10_000_000), "Number of examples.")
    /// "Every N steps" settings; 0 means never (or what each one's help says).
    public static let everySteps = Setting<Int>("every", .within(0...100_000_000), "Every N steps.")
}
