"""Independent references for sft-dist's rloo (run through scripts/make-rloo-references).

The loss comes from TRL 1.16's own `RLOOTrainer._compute_loss`, called with a stand-in for the
trainer whose `_get_per_token_logps_and_entropies` reads a table of logits (the batch of
Tests/TrainingTests/Fixtures/grpo-reference.json: six rollouts in two groups, prompt tokens out
of the loss, the sampler's log-probs, advantages of both signs), so its sequence-level ratio,
clip, mean over rollouts, entropy and clip_ratio figures are TRL's code, and dL/dlogits is
autograd's. `old_logps` is the sampler's Σ log-probs (a reused generation), or the current
weights' own, detached (a generation's first step). The whole step is one device, one
accumulation step: what sft-dist's global counts reproduce at any split.

The advantages are written here from RLOOTrainer._generate_and_score_completions: rewards less
β·Σ_t(old − ref), the leave-one-out baseline (Σ_{j≠i} r_j)/(G − 1), and with normalize_advantages
(A − mean)/(std + 1e-4) over the batch (torch.std: Bessel).

Writes Tests/TrainingTests/Fixtures/rloo-reference.json.
"""
import json
import types
from collections import defaultdict

import torch
from trl.trainer.rloo_trainer import RLOOTrainer

from completion_tables import completion_rows, token_tables
from reference_fixtures import fixture_path, write_fixture

BATCH = fixture_path("grpo-reference.json")
OUT = fixture_path("rloo-reference.json")


def trl_rloo_loss(examples, T, current, behaviour, advantages, eps_low, eps_high, temperature=1.0, on_policy=False):
    B = len(examples)
    rows = completion_rows(examples)
    Lc = max(len(r) for r in rows)
    logits = current.double().clone().requires_grad_(True)

    def per_token(model, input_ids, attention_mask, logits_to_keep, compute_entropy=False, **kwargs):
        logps, ent = token_tables(logits, rows, T, Lc, temperature)
        return logps, (ent if compute_entropy else None), None

    mask = torch.zeros(B, Lc, dtype=torch.float64)
    for e, r in enumerate(rows):
        mask[e, :len(r)] = 1
    if on_policy:   # the same weights' log-probs, detached (TRL's old_per_token_logps at generation)
        old = (per_token(None, None, None, None)[0].detach() * mask).sum(1)
    else:
        old = torch.tensor([sum(behaviour[e][t + 1] for t, _ in r) for e, r in enumerate(rows)], dtype=torch.float64)
    metrics = {"train": defaultdict(list)}
    identity = types.SimpleNamespace(reduce=lambda x, reduction="sum": x, gather=lambda x: x,
                                     gather_for_metrics=lambda x: x)
    stand_in = types.SimpleNamespace(_get_per_token_logps_and_entropies=per_token, epsilon_low=eps_low, epsilon_high=eps_high,
                                     model=types.SimpleNamespace(training=True), aux_loss_enabled=False,
                                     accelerator=identity, _metrics=metrics)
    inputs = {"prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
              "completion_ids": torch.zeros(B, Lc, dtype=torch.long), "completion_mask": mask.long(),
              "old_logps": old, "advantages": torch.tensor(advantages, dtype=torch.float64)}
    loss = RLOOTrainer._compute_loss(stand_in, None, inputs)
    loss.backward()
    figures = {k: v[-1] for k, v in metrics["train"].items() if k in
               ("entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean")}
    return loss.item(), logits.grad.tolist(), figures


def rloo_advantages(rewards, kl, beta, G, normalize, clip=None):
    r = torch.tensor(rewards, dtype=torch.float64)
    if clip is not None:   # reward_clip_range, before the KL penalty
        r = r.clamp(min=clip[0], max=clip[1])
    r = r - beta * torch.tensor(kl, dtype=torch.float64)
    grouped = r.view(-1, G)
    if G > 1:
        adv = (r - ((grouped.sum(1, keepdim=True) - grouped) / (G - 1)).view(-1))
    else:
        adv = torch.zeros_like(r)
    if normalize:
        adv = (adv - adv.mean()) / (adv.std() + 1e-4)
    return adv.tolist()


ADVANTAGE_CASES = [
    # (rewards, kl, beta, G, normalize): equal rewards split by the KL, 1/0 groups, graded, G = 1.
    ([1, 1, 1, 1, 1, 0, 0, 1], [0.3, -0.1, 0.0, 2.0, 0.5, 0.5, 0.1, 0.0], 0.05, 4, False),
    ([1, 1, 1, 1, 1, 0, 0, 1], [0.3, -0.1, 0.0, 2.0, 0.5, 0.5, 0.1, 0.0], 0.05, 4, True),
    ([0, 0, 0.2, 0.9, 0.9, 0.9], [0, 0, 0, 0, 0, 0], 0.0, 3, False),
    ([3, -1, 2, 2, 0.5, -0.5, 7, 7], [1.5, -2.0, 0.0, 0.25, 3.0, 1.0, 0.0, 0.0], 0.5, 2, True),
    ([0.5, 1.0, 0.0], [0.2, 0.1, 0.0], 0.05, 1, False),
]
# With reward_clip_range: (case above, clip).
CLIPPED_CASES = [
    ([3, -1, 2, 2, 0.5, -0.5, 7, 7], [1.5, -2.0, 0.0, 0.25, 3.0, 1.0, 0.0, 0.0], 0.5, 2, False, (-0.75, 2.5)),
    ([1, 1, 1, 1, 1, 0, 0, 1], [0.3, -0.1, 0.0, 2.0, 0.5, 0.5, 0.1, 0.0], 0.05, 4, True, (0.0, 0.5)),
]


def main():
    batch = json.load(open(BATCH))
    examples, T = batch["examples"], batch["seq_len"]
    current = torch.tensor(batch["logits"]["current"], dtype=torch.float32)
    behaviour = [x["behaviour"] for x in examples]
    advantages = [x["advantage"] for x in examples]
    configurations = []
    # On policy with a bound at 1 (ε = 0): the ratio ties the clipped term and torch passes half the gradient.
    for eps_low, eps_high, on_policy in [(0.2, 0.2, False), (0.1, 0.3, False), (0.2, 0.2, True), (0.0, 0.0, True), (0.2, 0.0, True)]:
        loss, grad, figures = trl_rloo_loss(examples, T, current, behaviour, advantages, eps_low, eps_high, on_policy=on_policy)
        configurations.append({"args": {"epsilon": str(eps_low), "epsilon_high": str(eps_high)}, "on_policy": on_policy,
                               "loss": loss, "grad": grad, "figures": figures})
    tempered = batch["temperature"]
    loss, grad, figures = trl_rloo_loss(examples, T, current, tempered["behaviour"], advantages, 0.2, 0.2,
                                        temperature=tempered["value"])
    at_temperature = {"value": tempered["value"], "behaviour": tempered["behaviour"], "loss": loss, "grad": grad, "figures": figures}
    # A rollout cut at max_completion_length under mask_truncated_completions: no trained token.
    cut = batch["truncated"]["rollout"]
    masked = [dict(x, loss_mask=[0] * len(x["loss_mask"])) if e == cut else x for e, x in enumerate(examples)]
    loss, grad, figures = trl_rloo_loss(masked, T, current, behaviour, advantages, 0.2, 0.2)
    truncated = {"rollout": cut, "loss": loss, "grad": grad, "figures": figures}
    cases = [{"rewards": r, "kl": k, "beta": b, "group_size": g, "normalize": n, "expected": rloo_advantages(r, k, b, g, n)}
             for r, k, b, g, n in ADVANTAGE_CASES]
    cases += [{"rewards": r, "kl": k, "beta": b, "group_size": g, "normalize": n, "clip": list(c),
               "expected": rloo_advantages(r, k, b, g, n, c)} for r, k, b, g, n, c in CLIPPED_CASES]
    write_fixture(OUT, {"configurations": configurations, "temperature": at_temperature, "truncated": truncated,
                        "advantages": cases},
                  f"{len(configurations)} configurations, a tempered and a truncated one, {len(cases)} advantage cases")


if __name__ == "__main__":
    main()
