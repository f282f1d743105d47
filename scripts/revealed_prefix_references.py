"""Independent references for sft-dist's UFT and Prefix-RFT objectives (run through
scripts/make-revealed-prefix-references).

Both written in PyTorch from the papers and their public code, dL/dlogits from autograd, on the
batch of scripts/grpo_references.py (six rollouts, two groups of three, prompt tokens out of the
loss) with rollouts 1 and 4 hybrid: their first REVEALED[e] completion tokens are a revealed
demonstration prefix (the sequence's prompt_length is after the prefix).

UFT (arXiv 2505.16984; liumy2010/UFT dp_actor.py), generated tokens g, hint tokens h:
  L = Σ_g [−min(c·A, clip(c, 1−ε_lo, 1+ε_hi)·A) + β·(e^d − d − 1) − c_H·H_t] / N_g
    + sft_coef · Σ_h (−log p) / N_h,     c = exp(logp − behaviour), d = ref − logp
Prefix-RFT (arXiv 2507.01679; ZeroYuHuang/prefix_rft dp_actor.py reshape_func "entropy"):
  A_t = A on prefix tokens whose entropy is not below τ (τ = sorted entropies[int(mask·n)]), else 0
  L = [Σ_g −min(c·A, clip(c)·A) + Σ_prefix −A_t·exp(logp − sg(logp))] / (B·L_max) − c_H·Σ_g H_t / N_g
and the schedules: UFT's hint probability p(t) and sep lengths (Python's round), Prefix-RFT's
cosine lower bound and prefix length.
Writes Tests/TrainingTests/Fixtures/revealed-prefix-reference.json.
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grpo_references import MAX_COMPLETION_LENGTH, REWARDS, SHAPES, V, make_batch, trl_advantages  # noqa: E402
from reference_fixtures import fixture_path, write_fixture  # noqa: E402

OUT = fixture_path("revealed-prefix-reference.json")
REVEALED = [0, 3, 0, 0, 2, 0]


def token_rows(examples):
    """(example, position t, revealed?) of every loss token: target ids[t + 1]."""
    rows = []
    for e, x in enumerate(examples):
        for t in range(len(x["ids"]) - 1):
            if x["loss_mask"][t + 1]:
                rows.append((e, t, t + 1 < x["prompt_length"]))
    return rows


def entropy(lsm_row):
    return -(lsm_row.exp() * lsm_row).sum()


def uft_loss(examples, T, current, reference, advantages, sft_coef, beta, ent_coef, eps_lo, eps_hi):
    logits = current.double().clone().requires_grad_(True)
    lsm = torch.log_softmax(logits, dim=-1)
    lsm_ref = torch.log_softmax(reference.double(), dim=-1)
    rows = token_rows(examples)
    n_g = sum(1 for r in rows if not r[2])
    n_h = sum(1 for r in rows if r[2])
    gen, hint = 0.0, 0.0
    for e, t, revealed in rows:
        x = examples[e]
        y = x["ids"][t + 1]
        logp = lsm[e * T + t, y]
        if revealed:
            hint = hint - logp
            continue
        A = advantages[e]
        c = torch.exp(logp - x["behaviour"][t + 1])
        pg = -torch.min(c * A, torch.clamp(c, 1 - eps_lo, 1 + eps_hi) * A)
        d = lsm_ref[e * T + t, y] - logp
        gen = gen + pg + beta * (torch.exp(d) - d - 1) - ent_coef * entropy(lsm[e * T + t])
    loss = gen / n_g + sft_coef * hint / n_h
    loss.backward()
    return loss.item(), logits.grad


def prefix_rft_loss(examples, T, current, advantages, mask_ratio, ent_coef, eps_lo, eps_hi):
    logits = current.double().clone().requires_grad_(True)
    lsm = torch.log_softmax(logits, dim=-1)
    rows = token_rows(examples)
    n_g = sum(1 for r in rows if not r[2])
    with torch.no_grad():
        # float32, as the entropies are gathered; the ratio as the objective reads it (float32).
        ent = {(e, t): float(np.float32(entropy(lsm[e * T + t]).item())) for e, t, rev in rows if rev}
    ranked = sorted(ent.values())
    masked = int(float(np.float32(mask_ratio)) * len(ranked))
    tau = ranked[masked] if masked < len(ranked) else math.inf
    B = len(examples)
    pg, bonus = 0.0, 0.0
    for e, t, revealed in rows:
        x = examples[e]
        logp = lsm[e * T + t, x["ids"][t + 1]]
        A = advantages[e]
        if revealed:
            a = A if ent[(e, t)] >= tau else 0.0
            ratio = torch.exp(logp - logp.detach())
            pg = pg - torch.min(ratio * a, torch.clamp(ratio, 1 - eps_lo, 1 + eps_hi) * a)
        else:
            c = torch.exp(logp - x["behaviour"][t + 1])
            pg = pg - torch.min(c * A, torch.clamp(c, 1 - eps_lo, 1 + eps_hi) * A)
            bonus = bonus + entropy(lsm[e * T + t])
    loss = pg / (B * MAX_COMPLETION_LENGTH) - ent_coef * bonus / n_g
    loss.backward()
    return loss.item(), logits.grad, tau, sum(1 for v in ent.values() if v >= tau) / len(ent)


def uft_schedule():
    """p(t) at (T_hint, lower, upper) = (300, 0.05, 0.95), and sep[j] with Python's round."""
    def p(t, T=300, lo=0.05, hi=0.95):
        return 0.0 if t > T else lo + 0.5 * (hi - lo) * (1 + np.cos(np.pi * t / T))
    probs = [{"step": t, "p": float(p(t))} for t in [0, 1, 75, 150, 299, 300, 301, 1000]]
    lengths = []
    for n in [1, 2, 3, 5, 7, 10, 13]:
        for segments in [5, 4]:
            num = min(segments, n)
            sep = [round(j / num * n) for j in range(num + 1)]
            sep[-1] = n
            lengths.append({"answer_tokens": n, "segments": segments, "lengths": sep})
    return probs, lengths


def prefix_schedule():
    """low(t) cosine 0.95 → 0.05 over D = 200, and the prefix length of fraction l."""
    def low(t, D=200, start=0.95, end=0.05):
        return end if t > D else end + 0.5 * (1 + math.cos(math.pi * t / D)) * (start - end)
    lows = [{"step": t, "low": low(t)} for t in [0, 1, 50, 100, 199, 200, 201, 500]]
    lengths = []
    for n in [0, 1, 2, 3, 7, 20]:
        for l, min_prefix in [(0.0, 1), (0.05, 1), (0.34, 1), (0.5, 3), (0.95, 1), (1.0, 1), (0.99, 0)]:
            if l == 0 or n <= 1:
                k = 0
            else:
                k = min(max(min_prefix, int(l * n)), n - 1)
            lengths.append({"answer_tokens": n, "fraction": l, "min_prefix": min_prefix, "length": k})
    return lows, lengths


def main():
    g = torch.Generator().manual_seed(20261212)
    examples, T, current, reference = make_batch(g)
    advantages = [float(torch.tensor(a).float()) for a in trl_advantages(REWARDS, 3, "group")]
    for e, (x, a) in enumerate(zip(examples, advantages)):
        x["advantage"] = a
        x["prompt_length"] = SHAPES[e][0] + REVEALED[e]
        # A revealed token was not sampled: no behaviour log-prob.
        for t in range(SHAPES[e][0], x["prompt_length"]):
            x["behaviour"][t] = 0.0
    uft = []
    for sft, beta, ent, lo, hi in [(0.001, 0.001, 0.001, 0.2, 0.2), (0.5, 0.05, 0.1, 0.1, 0.3)]:
        loss, grad = uft_loss(examples, T, current, reference, advantages, sft, beta, ent, lo, hi)
        args = {"sft_coef": str(sft), "beta": str(beta), "entropy_coef": str(ent), "epsilon": str(lo), "epsilon_high": str(hi)}
        uft.append({"args": args, "loss": loss, "grad": grad.tolist()})
    prefix = []
    for mask, ent, lo, hi in [(0.8, 0.001, 0.2, 0.2), (0.4, 0.1, 0.1, 0.3), (0.0, 0.0, 0.2, 0.2)]:
        loss, grad, tau, kept = prefix_rft_loss(examples, T, current, advantages, mask, ent, lo, hi)
        args = {"entropy_mask": str(mask), "entropy_coef": str(ent), "epsilon": str(lo), "epsilon_high": str(hi)}
        prefix.append({"args": args, "loss": loss, "grad": grad.tolist(), "entropy_threshold": tau if math.isfinite(tau) else None,
                       "prefix_kept": kept})
    probs, hint_lengths = uft_schedule()
    lows, prefix_lengths = prefix_schedule()
    out = {
        "vocab": V, "seq_len": T, "max_completion_length": MAX_COMPLETION_LENGTH,
        "examples": examples,
        "logits": {"current": current.tolist(), "reference": reference.tolist()},
        "uft": uft, "prefix_rft": prefix,
        "uft_probabilities": probs, "uft_hint_lengths": hint_lengths,
        "prefix_lows": lows, "prefix_lengths": prefix_lengths,
    }
    write_fixture(OUT, out, f"{len(uft)} uft and {len(prefix)} prefix-rft configurations")


if __name__ == "__main__":
    main()
