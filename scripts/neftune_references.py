"""NEFTune (arXiv 2310.05914) against a real TRL SFTTrainer step with neftune_noise_alpha, on the
committed transformers fixtures (Tests/ModelsTests/Fixtures/hf/models/).

transformers adds the noise in a forward hook on the input embeddings
(transformers/integrations/neftune.py: output + U(-m, m), m = alpha / sqrt(size(1) * size(2)),
in training mode only). torch's RNG cannot be replayed in sft-dist, so the hook is replaced by one
with the same scale rule whose uniform draws are sft-dist's keyed streams, reimplemented here from
their definition (SplitMix64; element (t, j) of sequence s at step k draws from
key(key(key(seed, k), "NEFT"), ...) as Sources/TensorCore/Ops/UniformNoise.swift describes). Each
case is one unpadded row in one batch, where transformers' L (the padded batch's length) is the
sequence's own length, which sft-dist uses at every batch shape.

Writes Tests/ModelsTests/Fixtures/hf/expected/neftune-trl.json; NEFTuneCLITests runs
`sft-dist train --steps 1 --neftune-noise-alpha A` on each case and compares the step's loss.

  scripts/make-neftune-references        # needs torch, transformers, trl, datasets (see trl-sft-check)
"""
import contextlib, io, json, math, os, sys, tempfile

import numpy as np
import torch
import transformers.integrations.neftune as neftune
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

ROOT = os.path.join(os.path.dirname(__file__), "..")
FIXTURES = os.path.join(ROOT, "Tests/ModelsTests/Fixtures/hf")
OUT = os.path.join(FIXTURES, "expected/neftune-trl.json")
M64 = (1 << 64) - 1


def splitmix_first(seed):
    """The first output of SplitMix64 seeded with `seed` (Steele, Lea & Flood 2014)."""
    z = (seed + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def key(a, b):
    return splitmix_first(((a * 0xBF58476D1CE4E5B9) & M64) ^ b)


def unit(salt, row_key, column):
    """epsilon in [-1, 1): 24 bits of the element's stream, 2u - 1."""
    bits = splitmix_first(salt ^ ((row_key * 0x9E3779B97F4A7C15) & M64) ^ ((column * 0xD6E8FEB86659FD93) & M64)) >> 40
    return np.float32(bits * 2.0 ** -23 - 1.0)


class Keyed:
    """The hook's state: the run's seed and the step's index (0, the first and only one;
    metrics.jsonl numbers it 1)."""
    seed, step, calls = 0, 0, 0


def keyed_hook(module, input, output):
    if not module.training:
        return output
    Keyed.calls += 1
    b, n, d = output.shape
    mag = np.float32(module.neftune_noise_alpha / math.sqrt(n * d))  # transformers' rule: size(1) * size(2)
    salt = key(key(Keyed.seed, Keyed.step), 0x4E454654)
    noise = np.zeros((b, n, d), dtype=np.float32)
    for s in range(b):   # s: the sequence's index in the step batch
        for t in range(n):
            rk = key(s, t)
            noise[s, t] = mag * np.array([unit(salt, rk, j) for j in range(d)], dtype=np.float32)
    return output + torch.from_numpy(noise)


class Recording(SFTTrainer):
    seen = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        Recording.seen.append((out[0] if return_outputs else out).item())
        return out


def trl_loss(model_dir, row, alpha, seed):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(model_dir)
    Keyed.seed, Keyed.calls = seed, 0
    with tempfile.TemporaryDirectory() as out:
        cfg = SFTConfig(output_dir=out, max_steps=1, per_device_train_batch_size=1, gradient_accumulation_steps=1,
                        learning_rate=1e-6, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
                        max_length=256, packing=False, seed=0, bf16=False,
                        neftune_noise_alpha=alpha if alpha > 0 else None)
        Recording.seen = []
        trainer = Recording(model=model, args=cfg, train_dataset=Dataset.from_list([row]), processing_class=tok)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            trainer.train()
    assert len(Recording.seen) == 1, Recording.seen
    assert Keyed.calls == (1 if alpha > 0 else 0), Keyed.calls
    return Recording.seen[0]


def main():
    neftune.neftune_post_forward_hook = keyed_hook   # activate_neftune registers the module's global
    rows = [{"prompt": "add 2 14 =", "completion": " 16"},
            {"prompt": "what is the sum of 12 and 30? answer:", "completion": " 42, since 12 + 30 = 42"}]
    cases = []
    for model, row, alpha, seed in [("gpt2", rows[0], 5.0, 1234), ("gpt2", rows[1], 15.0, 7),
                                    ("llama", rows[1], 5.0, 1234), ("qwen2", rows[0], 10.0, 99)]:
        d = os.path.join(FIXTURES, "models", model)
        with_noise, without = trl_loss(d, row, alpha, seed), trl_loss(d, row, 0.0, seed)
        print(f"{model:6} alpha {alpha:5} seed {seed:5}: TRL loss {with_noise:.7f} (without noise {without:.7f})")
        cases.append({"model": model, "row": row, "neftune_noise_alpha": alpha, "seed": seed,
                      "loss": with_noise, "loss_without_noise": without})
    versions = {m.__name__: m.__version__ for m in (torch, __import__("transformers"), __import__("trl"))}
    with open(OUT, "w") as f:
        json.dump({"source": "scripts/neftune_references.py", "versions": versions, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
