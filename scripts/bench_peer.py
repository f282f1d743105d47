"""PyTorch side of scripts/bench-peer: the gpt2-mini configuration of `sft-dist bench`
(GPT-2, 6 layers, d=384, 6 heads, context 256, vocabulary 8192) as transformers'
GPT2LMHeadModel, batch 8x256 synthetic tokens, AdamW, fp32, dropout off, same thread count.
Prints one JSON line: tokens/s over the median timed step (after warm-up), peak RSS.

With --generate, the side of `sft-dist bench --rollouts` instead: the same model (random
weights, eval mode) runs `generate` on --prompts prompts of 16 random ids, --new-tokens
sampled tokens each (temperature 1, top-k off, top-p 1, no early stop), KV cache;
tokens/s of generated tokens over the median timed call (prefill included).

With --shape smollm2-135m|qwen2.5-0.5b|qwen3-0.6b, the side of `sft-dist bench --shape`: transformers'
LlamaForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM built from the public config.json's values (random
init, no download; the same numbers as Sources/Models/Presets+Shapes.swift), --batch-size x
--seq-len synthetic tokens (default 4x256), same AdamW and clipping.

With --shape and --lora-rank R, the side of `sft-dist bench --shape ... --lora-rank R`: peft's
LoRA (r = R, lora_alpha = 2R, dropout 0) on every linear layer of the shape (q/k/v/o,
gate/up/down), the base frozen; AdamW and clipping over the adapters only."""
import argparse, json, resource, statistics, sys, time

import torch
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM)

# HuggingFaceTB/SmolLM2-135M, Qwen/Qwen2.5-0.5B and Qwen/Qwen3-0.6B config.json (architecture fields).
SHAPES = {
    "smollm2-135m": (LlamaConfig, LlamaForCausalLM, dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0}, tie_word_embeddings=True,
        attention_bias=False, mlp_bias=False)),
    "qwen2.5-0.5b": (Qwen2Config, Qwen2ForCausalLM, dict(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, tie_word_embeddings=True,
        use_sliding_window=False)),
    "qwen3-0.6b": (Qwen3Config, Qwen3ForCausalLM, dict(
        vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, tie_word_embeddings=True,
        attention_bias=False, use_sliding_window=False)),
}

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, required=True)
p.add_argument("--steps", type=int, default=6)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--generate", action="store_true", help="benchmark generate() instead of training")
p.add_argument("--prompts", type=int, default=32)
p.add_argument("--new-tokens", type=int, default=64)
p.add_argument("--shape", choices=sorted(SHAPES), help="a public model's shape instead of gpt2-mini")
p.add_argument("--batch-size", type=int, help="sequences per step (default 8, 4 with --shape)")
p.add_argument("--seq-len", type=int, default=256)
p.add_argument("--lora-rank", type=int, default=0, help="with --shape: peft LoRA adapters of this rank (alpha = 2r)")
a = p.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(1234)
B, T, V = 8, 256, 8192
cfg = GPT2Config(vocab_size=V, n_positions=T, n_embd=384, n_layer=6, n_head=6,
                 activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                 layer_norm_epsilon=1e-5, tie_word_embeddings=True)
if a.shape:
    assert not a.generate, "--generate runs gpt2-mini only"
    config_class, model_class, fields = SHAPES[a.shape]
    cfg = config_class(**fields, attention_dropout=0.0, dtype="float32")
    model = model_class(cfg)
    B, T, V = a.batch_size or 4, a.seq_len, cfg.vocab_size
else:
    model = GPT2LMHeadModel(cfg)
    B = a.batch_size or B
if a.generate:
    model.eval()
    # No end-of-sequence id: every row runs the full --new-tokens, as in sft-dist's rollouts.
    model.generation_config.eos_token_id = None
    model.generation_config.bos_token_id = None
    g = torch.Generator().manual_seed(1234)
    prompts = torch.randint(0, V, (a.prompts, 16), generator=g)
    times, cpu, tokens = [], [], 0
    for run in range(a.warmup + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            out = model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=True, temperature=1.0,
                                 top_k=0, top_p=1.0, max_new_tokens=a.new_tokens,
                                 pad_token_id=0)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        tokens = (out.shape[1] - prompts.shape[1]) * out.shape[0]
        if run >= a.warmup:
            times.append(dt)
            cpu.append(dc)
        print(f"torch generate {run + 1}: {dt * 1e3:.1f} ms, {tokens} tokens", file=sys.stderr)
    med = statistics.median(times)
    print(json.dumps({"impl": "pytorch", "bench": "rollouts", "torch": torch.__version__, "threads": a.threads,
                      "prompts": a.prompts, "new_tokens": a.new_tokens, "tokens": tokens, "median_run_s": med,
                      "run_s": times, "tokens_per_s": tokens / med, "median_run_cpu_s": statistics.median(cpu),
                      "run_cpu_s": cpu, "tokens_per_cpu_s": tokens / statistics.median(cpu)}))
    sys.exit(0)
if a.lora_rank:
    assert a.shape, "--lora-rank needs --shape"
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(model, LoraConfig(
        r=a.lora_rank, lora_alpha=2 * a.lora_rank, lora_dropout=0.0, bias="none",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
model.train()
params = sum(p.numel() for p in model.parameters())
trained = [p for p in model.parameters() if p.requires_grad]
# Same optimizer settings as the sft-dist bench: lr 3e-4, betas (0.9, 0.999), eps 1e-8,
# weight decay 0.01, gradient clipping at 1.0 (over the trainable parameters: all, or peft's adapters).
opt = torch.optim.AdamW(trained, lr=3e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
g = torch.Generator().manual_seed(1234)
times, cpu, losses = [], [], []
for step in range(a.warmup + a.steps):
    ids = torch.randint(0, V, (B, T + 1), generator=g)
    x, y = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    t0, c0 = time.perf_counter(), time.process_time()
    opt.zero_grad(set_to_none=True)
    logits = model(input_ids=x).logits
    loss = torch.nn.functional.cross_entropy(logits.view(-1, V), y.view(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trained, 1.0)
    opt.step()
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    losses.append(loss.item())
    if step >= a.warmup:
        times.append(dt)
        cpu.append(dc)
    print(f"torch step {step + 1}: {dt * 1e3:.1f} ms, loss {loss.item():.4f}", file=sys.stderr)
med = statistics.median(times)
print(json.dumps({
    "impl": "pytorch", "torch": torch.__version__, "threads": a.threads, "parameters": params,
    "model": a.shape or "gpt2-mini", "batch": B, "seq_len": T, "lora_rank": a.lora_rank,
    "trainable_parameters": sum(p.numel() for p in trained),
    "attn_implementation": getattr(model.config, "_attn_implementation", None),
    "median_step_s": med, "step_s": times, "tokens_per_s": B * T / med,
    # Process CPU time (all threads): on a shared machine the step's work, where wall time
    # also measures the other jobs.
    "median_step_cpu_s": statistics.median(cpu), "step_cpu_s": cpu, "tokens_per_cpu_s": B * T / statistics.median(cpu),
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "first_loss": losses[0], "last_loss": losses[-1],
}))
