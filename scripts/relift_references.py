"""Independent references for sft-dist's ReLIFT SFT steps and scored-data (offline) GRPO
(run through scripts/make-relift-references), in PyTorch with dL/dlogits from autograd, on the
batch of scripts/grpo_references.py (six sequences, prompt tokens out of the loss):

  ReLIFT SFT step (arXiv 2506.07527, §3; its compute_sft_loss): every sequence a demonstration,
      L = Σ_tokens −log p(y_t) / N_tokens   (the step's loss tokens)
  scored data: each row has `reward` and `group` (string ids, groups of any size in any order)
      or `advantage`; A = r − mean_g, / (std + 1e-4) with the Bessel std of the group ("group")
      or of every reward in the file ("batch"), as is ("none"); a group of equal rewards → 0;
      a given advantage is used as it is. The loss is TRL's _compute_loss with
      old_per_token_logps = per_token_logps.detach() (one iteration per generation): ratio 1,
      ℓ = −A·exp(logp − sg(logp)), aggregated per loss_type (grpo, bnpo, dr_grpo, dapo).

Writes Tests/TrainingTests/Fixtures/relift-reference.json.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grpo_references import MAX_COMPLETION_LENGTH, make_batch  # noqa: E402
from reference_fixtures import fixture_path, write_fixture  # noqa: E402

OUT = fixture_path("relift-reference.json")

# One scored row per sequence of the batch: groups "a" (rows 0, 2, 5) and 7 (rows 1, 4) out of
# order; row 3 carries its advantage.
SCORED = [{"reward": 1.0, "group": "a"}, {"reward": 0.0, "group": 7}, {"reward": 0.5, "group": "a"},
          {"advantage": 0.7}, {"reward": 1.0, "group": 7}, {"reward": 0.25, "group": "a"}]
# Advantage-only cases: a zero-variance group, graded rewards, a given advantage beside a group.
ADVANTAGE_CASES = [
    [{"reward": 0.3, "group": "x"}, {"reward": 0.3, "group": "x"}, {"reward": 1, "group": "y"},
     {"reward": 0, "group": "y"}, {"reward": 0, "group": "y"}],
    [{"reward": 3, "group": 1}, {"reward": -1, "group": 2}, {"reward": 2, "group": 1}, {"reward": 0.5, "group": 2},
     {"advantage": -2.5}, {"reward": 7, "group": 2}, {"reward": 1, "group": 1, "advantage": 9}],
]


def scored_advantages(rows, scale):
    rewards = torch.tensor([r["reward"] for r in rows if "reward" in r], dtype=torch.float64)
    batch_std = rewards.std()
    groups = {}
    for i, r in enumerate(rows):
        if "reward" in r and "group" in r:
            groups.setdefault(str(r["group"]), []).append(i)
    out = [None] * len(rows)
    for members in groups.values():
        g = torch.tensor([rows[i]["reward"] for i in members], dtype=torch.float64)
        if bool((g == g[0]).all()):
            adv = torch.zeros_like(g)
        elif scale == "none":
            adv = g - g.mean()
        else:
            adv = (g - g.mean()) / ((g.std() if scale == "group" else batch_std) + 1e-4)
        for i, a in zip(members, adv.tolist()):
            out[i] = a
    return [r["advantage"] if "advantage" in r else out[i] for i, r in enumerate(rows)]


def token_rows(examples, T):
    return [(e, e * T + t, x["ids"][t + 1]) for e, x in enumerate(examples)
            for t in range(len(x["ids"]) - 1) if x["loss_mask"][t + 1]]


def sft_loss(examples, T, current):
    logits = current.double().clone().requires_grad_(True)
    lsm = torch.log_softmax(logits, dim=-1)
    rows = token_rows(examples, T)
    loss = sum(-lsm[r, y] for _, r, y in rows) / len(rows)
    loss.backward()
    return loss.item(), logits.grad


def ratio_one_loss(examples, T, current, advantages, loss_type):
    """TRL's per-token loss with old = logp.detach(): padded [B, L] completions and a mask."""
    B = len(examples)
    logits = current.double().clone().requires_grad_(True)
    lsm = torch.log_softmax(logits, dim=-1)
    per_seq = [[] for _ in examples]
    for e, r, y in token_rows(examples, T):
        per_seq[e].append(lsm[r, y])
    L = max(len(s) for s in per_seq)
    logp = torch.stack([torch.stack(s + [torch.zeros((), dtype=torch.float64)] * (L - len(s))) for s in per_seq])
    mask = torch.tensor([[1.0] * len(s) + [0.0] * (L - len(s)) for s in per_seq], dtype=torch.float64)
    A = torch.tensor(advantages, dtype=torch.float64).unsqueeze(1)
    coef_1 = torch.exp(logp - logp.detach())
    coef_2 = torch.clamp(coef_1, 1 - 0.2, 1 + 0.2)
    per_token_loss = -torch.min(coef_1 * A, coef_2 * A)
    if loss_type == "cispo":   # the weight clamped at epsilon_high (TRL's default: epsilon, 0.2) and detached
        per_token_loss = -torch.clamp(coef_1, max=0.2).detach() * A * logp
    if loss_type == "sapo":   # SAPO's gate at TRL's temperatures, 1.0 where A > 0, else 1.05
        temperatures = torch.where(A > 0, torch.tensor(1.0, dtype=torch.float64), torch.tensor(1.05, dtype=torch.float64))
        per_token_loss = -(torch.sigmoid(temperatures * (coef_1 - 1)) * 4 / temperatures) * A
    if loss_type == "luspo":   # GSPO's sequence ratio (1 here, with its gradient), summed over the tokens
        log_w = ((logp - logp.detach()) * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)
        s = torch.exp(log_w)
        per_token_loss = -torch.min(s * A, torch.clamp(s, 1 - 0.2, 1 + 0.2) * A).expand_as(logp)
    if loss_type == "vespo":   # φ(w = 1) = 1, detached: −A·logp
        per_token_loss = -A * logp
    if loss_type in ("grpo", "sapo"):
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type in ("bnpo", "dapo", "cispo", "vespo"):
        loss = (per_token_loss * mask).sum() / mask.sum()
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (B * MAX_COMPLETION_LENGTH)
    elif loss_type == "luspo":
        loss = (per_token_loss * mask).sum(-1).mean()
    loss.backward()
    return loss.item(), logits.grad


def main():
    g = torch.Generator().manual_seed(20261212)
    examples, T, current, _, _ = make_batch(g)
    sft, sft_grad = sft_loss(examples, T, current)
    advantages = [float(torch.tensor(a).float()) for a in scored_advantages(SCORED, "group")]
    configs = []
    for loss_type in ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"]:
        loss, grad = ratio_one_loss(examples, T, current, advantages, loss_type)
        configs.append({"loss_type": loss_type, "loss": loss, "grad": grad.tolist()})
    out = {
        "vocab": current.shape[1], "seq_len": T, "max_completion_length": MAX_COMPLETION_LENGTH,
        "examples": [{"ids": x["ids"], "loss_mask": x["loss_mask"]} for x in examples],
        "current": current.tolist(),
        "sft": {"loss": sft, "grad": sft_grad.tolist()},
        "scored_rows": SCORED,
        "scored_advantages": {s: scored_advantages(SCORED, s) for s in ["group", "batch", "none"]},
        "advantage_cases": [{"rows": rows, "expected": {s: scored_advantages(rows, s) for s in ["group", "batch", "none"]}}
                            for rows in ADVANTAGE_CASES],
        "scored": configs,
    }
    write_fixture(OUT, out, f"SFT step, {len(configs)} scored-data configurations, {len(ADVANTAGE_CASES)} advantage cases")


if __name__ == "__main__":
    main()
