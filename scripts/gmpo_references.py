"""Independent references for sft-dist's gmpo (run through scripts/make-gmpo-references).

The loss comes from TRL 1.16's own `experimental.gmpo.GMPOTrainer._compute_loss`, called with a
stand-in for the trainer whose `_get_per_token_logps_and_entropies` reads a table of logits (the
batch of Tests/TrainingTests/Fixtures/grpo-reference.json: six rollouts in two groups, prompt
tokens out of the loss, the sampler's log-probs, advantages of both signs, a reference model's
logits), so its per-token log-space clip, geometric mean over each rollout's tokens, sequence-mean
KL, mean over rollouts and figures are TRL's code, and dL/dlogits is autograd's.
`old_per_token_logps` is the sampler's log-probs (a reused generation) or absent (a generation's
first step: TRL then takes the current log-probs, detached). The whole step is one device, one
accumulation step: what sft-dist's global counts reproduce at any split.

Writes Tests/TrainingTests/Fixtures/gmpo-reference.json.
"""
import json
import types
from collections import defaultdict

import torch
import trl
from trl.experimental.gmpo import GMPOTrainer
from trl.trainer.grpo_trainer import GRPOTrainer

from completion_tables import completion_rows, token_tables
from reference_fixtures import fixture_path, write_fixture

BATCH = fixture_path("grpo-reference.json")
OUT = fixture_path("gmpo-reference.json")
FIGURES = ("entropy", "kl", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean")


def trl_gmpo_loss(examples, T, current, reference, behaviour, advantages, eps_low, eps_high, beta,
                  temperature=1.0, on_policy=False, lengths=None, rho=1.0):
    """lengths: each rollout's completion positions (its rows' count before any mask_truncated_completions)."""
    B = len(examples)
    rows = completion_rows(examples)
    full = lengths or [len(r) for r in rows]
    Lc = max(max(full), 1)
    logits = current.double().clone().requires_grad_(True)

    def table(source, grad):
        logps, ent = token_tables(source, rows, T, Lc, temperature)
        return logps if grad else logps.detach(), ent

    def per_token(model, input_ids, attention_mask, logits_to_keep, compute_entropy=False, **kwargs):
        logps, ent = table(logits, True)
        return logps, (ent if compute_entropy else None), None

    mask = torch.zeros(B, Lc, dtype=torch.long)
    for e, r in enumerate(rows):
        mask[e, :len(r)] = 1
    inputs = {"prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
              "completion_ids": torch.zeros(B, Lc, dtype=torch.long), "completion_mask": mask,
              "advantages": torch.tensor(advantages, dtype=torch.float64)}
    if not on_policy:
        old = torch.zeros(B, Lc, dtype=torch.float64)
        for e, r in enumerate(rows):
            for k, (t, _) in enumerate(r):
                old[e, k] = behaviour[e][t + 1]
        inputs["old_per_token_logps"] = old
    if beta != 0:
        inputs["ref_per_token_logps"] = table(reference.double(), False)[0]
    metrics = {"train": defaultdict(list)}
    identity = types.SimpleNamespace(reduce=lambda x, reduction="sum": x, gather=lambda x: x,
                                     gather_for_metrics=lambda x: x, pad_across_processes=lambda x, dim=0, pad_index=0: x)
    stand_in = types.SimpleNamespace(_get_per_token_logps_and_entropies=per_token, epsilon_low=eps_low, epsilon_high=eps_high,
                                     beta=beta, top_entropy_quantile=rho, current_gradient_accumulation_steps=1,
                                     model=types.SimpleNamespace(training=True), accelerator=identity, _metrics=metrics)
    # TRL's own quantile mask (GRPOTrainer.get_high_entropy_mask), over this one batch.
    stand_in.get_high_entropy_mask = lambda e, m, t: GRPOTrainer.get_high_entropy_mask(stand_in, e, m, t)
    loss = GMPOTrainer._compute_loss(stand_in, None, inputs)
    loss.backward()
    figures = {k: v[-1] for k, v in metrics["train"].items() if k in FIGURES}
    return loss.item(), logits.grad.tolist(), figures


def main():
    batch = json.load(open(BATCH))
    examples, T = batch["examples"], batch["seq_len"]
    current = torch.tensor(batch["logits"]["current"], dtype=torch.float32)
    reference = torch.tensor(batch["logits"]["reference"], dtype=torch.float32)
    behaviour = [x["behaviour"] for x in examples]
    advantages = [x["advantage"] for x in examples]
    configurations = []
    # TRL's default ε = 0.4 (log space); a narrow asymmetric one that clips both ways; β > 0; on-policy;
    # ε_low = 0 on policy (every log-ratio 0, on the bound: torch passes half the gradient there);
    # the geometric mean over the top 20 % and 45 % of tokens by entropy (top_entropy_quantile; of the
    # 27 tokens no quantile position is a whole one, where this float64 stand-in's entropies and
    # the float32 ones torch.quantile reads would put the token at the threshold on either side).
    for eps_low, eps_high, beta, on_policy, rho in [(0.4, 0.4, 0.0, False, 1.0), (0.05, 0.1, 0.0, False, 1.0),
                                                    (0.1, 0.2, 0.04, False, 1.0), (0.4, 0.4, 0.04, True, 1.0),
                                                    (0.0, 0.4, 0.04, True, 1.0), (0.4, 0.4, 0.04, False, 0.2),
                                                    (0.05, 0.1, 0.0, False, 0.45)]:
        loss, grad, figures = trl_gmpo_loss(examples, T, current, reference, behaviour, advantages, eps_low, eps_high, beta,
                                            on_policy=on_policy, rho=rho)
        args = {"epsilon": str(eps_low), "epsilon_high": str(eps_high), "beta": str(beta)}
        if rho < 1:
            args["top_entropy_quantile"] = str(rho)
        configurations.append({"args": args, "on_policy": on_policy, "loss": loss, "grad": grad, "figures": figures})
    tempered = batch["temperature"]
    loss, grad, figures = trl_gmpo_loss(examples, T, current, reference, tempered["behaviour"], advantages, 0.1, 0.2, 0.04,
                                        temperature=tempered["value"])
    at_temperature = {"value": tempered["value"], "behaviour": tempered["behaviour"], "args": {"epsilon": "0.1", "epsilon_high": "0.2", "beta": "0.04"},
                      "loss": loss, "grad": grad, "figures": figures}
    # A rollout cut at max_completion_length under mask_truncated_completions: no trained token,
    # so its weight is exp(0 / 1) = 1 and its term −A, constant, in the mean over the B rollouts.
    cut = batch["truncated"]["rollout"]
    masked = [dict(x, loss_mask=[0] * len(x["loss_mask"])) if e == cut else x for e, x in enumerate(examples)]
    loss, grad, figures = trl_gmpo_loss(masked, T, current, reference, behaviour, advantages, 0.1, 0.2, 0.04,
                                        lengths=[len(r) for r in completion_rows(examples)])
    truncated = {"rollout": cut, "args": {"epsilon": "0.1", "epsilon_high": "0.2", "beta": "0.04"},
                 "loss": loss, "grad": grad, "figures": figures}
    write_fixture(OUT, {"trl": trl.__version__, "configurations": configurations, "temperature": at_temperature,
                        "truncated": truncated},
                  f"{len(configurations)} configurations, a tempered and a truncated one")


if __name__ == "__main__":
    main()
