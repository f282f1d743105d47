"""Independent references for sft-dist's a2po (A*-PO, arXiv 2505.20686), run through
scripts/make-a2po-references, from TRL 1.16's own code (trl.experimental.a2po):

  stage 2: A2POTrainer.compute_loss, called as it is with a stand-in trainer whose
           `_get_sequence_logps` is TRL's own, on models whose logits are given: the batch of
           Tests/TrainingTests/Fixtures/grpo-reference.json (six rollouts, prompts out of the loss)
           laid out as TRL's `_prepare_inputs` lays it out (prompts left-padded, completions after
           them, the completion mask), the reference log-probs from TRL's `_get_sequence_logps` of
           the reference logits, rewards and V* per rollout; dL/dlogits by autograd.
  stage 1: V* = beta1 * (logsumexp(r / beta1) - log N) over each prompt's N sample rewards, the
           expression of A2POTrainer._estimate_optimal_values (transcribed: the method itself
           needs a generating model and a dataloader), and its all-incorrect rule (sum == 0).

Writes Tests/TrainingTests/Fixtures/a2po-reference.json.
"""
import json
import math
import types
from collections import defaultdict

import torch
from trl.experimental.a2po.a2po_trainer import A2POTrainer

from completion_tables import completion_rows
from reference_fixtures import fixture_path, write_fixture

BATCH = fixture_path("grpo-reference.json")
OUT = fixture_path("a2po-reference.json")
# Each rollout's reward (binary, as A*-PO assumes) and its prompt's N = 8 reference sample rewards.
REWARDS = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
SAMPLES = [[1, 0, 0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1], [1, 1, 1, 1, 1, 1, 1, 1],
           [0, 0, 0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 1, 0, 1, 0], [0, 1, 0, 0, 0, 0, 0, 0]]
BETA1 = 0.5
BETA2 = [0.05, 0.5, 2.0]
# Stage 1 alone: (N sample rewards, beta1), graded and negative rewards too.
VALUE_CASES = [([1, 0, 0, 1, 1, 0, 0, 0], 0.5), ([0, 0, 0, 0], 0.5), ([1, 1, 1], 0.5), ([0.2, 0.9, -0.4, 0.0, 1.5], 0.1),
               ([3.0, -2.0], 2.0), ([0.0, 0.0, 0.0, 1.0], 1e-3)]


def v_star(samples, beta1):
    """A2POTrainer._estimate_optimal_values' expression, on [P, N] rewards."""
    r = torch.tensor(samples, dtype=torch.float64)
    return (beta1 * (torch.logsumexp(r / beta1, dim=1) - math.log(r.shape[1]))).tolist()


def trl_layout(examples, T):
    """TRL's batch: each prompt left-padded to the longest, its completion after it, right-padded."""
    rows = completion_rows(examples)
    prompts = [x["loss_mask"].index(1) for x in examples]
    for x, r, p in zip(examples, rows, prompts):
        assert all(x["loss_mask"][p:]) and len(r) == len(x["ids"]) - p, "a completion is the end of its sequence"
    P, C = max(prompts), max(len(r) for r in rows)
    ids = torch.zeros(len(examples), P + C, dtype=torch.long)
    mask = torch.zeros(len(examples), P + C, dtype=torch.long)
    for b, (x, p) in enumerate(zip(examples, prompts)):
        ids[b, P - p:P] = torch.tensor(x["ids"][:p]); mask[b, P - p:P] = 1
        n = len(x["ids"]) - p
        ids[b, P:P + n] = torch.tensor(x["ids"][p:]); mask[b, P:P + n] = 1
    return rows, P, C, ids, mask


def model_of(table, examples, rows, P, C, T):
    """A model whose logits at the position predicting completion token k of rollout b are the
    table's row for that position (differentiable through `table`); zero elsewhere."""
    def model(input_ids, attention_mask, **kwargs):
        z = torch.zeros(len(examples), P + C, table.shape[1], dtype=torch.float64)
        for b, r in enumerate(rows):
            for k, (t, y) in enumerate(r):
                z[b, P - 1 + k] = table[b * T + t]
        return types.SimpleNamespace(logits=z)
    return model


def main():
    batch = json.load(open(BATCH))
    examples, T = batch["examples"], batch["seq_len"]
    current = torch.tensor(batch["logits"]["current"], dtype=torch.float64)
    reference = torch.tensor(batch["logits"]["reference"], dtype=torch.float64)
    rows, P, C, ids, mask = trl_layout(examples, T)
    values = v_star(SAMPLES, BETA1)
    configurations = []
    for beta2 in BETA2:
        table = current.clone().requires_grad_(True)
        me = types.SimpleNamespace(args=types.SimpleNamespace(beta2=beta2), model=types.SimpleNamespace(training=True),
                                   model_kwarg_keys={"input_ids", "attention_mask"}, _metrics={"train": defaultdict(list)})
        me._get_sequence_logps = types.MethodType(A2POTrainer._get_sequence_logps, me)
        with torch.no_grad():
            ref_logps = me._get_sequence_logps(model_of(reference, examples, rows, P, C, T), ids, mask, C)
        inputs = {"input_ids": ids, "attention_mask": mask, "logits_to_keep": C, "ref_logps": ref_logps,
                  "rewards": torch.tensor(REWARDS, dtype=torch.float64), "v_star": torch.tensor(values, dtype=torch.float64)}
        loss = A2POTrainer.compute_loss(me, model_of(table, examples, rows, P, C, T), inputs)
        loss.backward()
        configurations.append({"beta2": beta2, "loss": loss.item(), "grad": table.grad.tolist(),
                               "figures": {k: v[-1] for k, v in me._metrics["train"].items()}})
    cases = [{"rewards": r, "beta1": b, "v_star": v_star([r], b)[0], "all_incorrect": sum(r) == 0} for r, b in VALUE_CASES]
    write_fixture(OUT, {"rewards": REWARDS, "samples": SAMPLES, "beta1": BETA1, "v_star": values,
                        "configurations": configurations, "values": cases},
                  f"{len(configurations)} configurations, losses " + ", ".join(f"{c['loss']:.6f}" for c in configurations)
                  + f", {len(cases)} V* cases")


if __name__ == "__main__":
    main()
