"""Independent references for sft-dist's a2po (A*-PO, arXiv 2505.20686), run through
scripts/make-a2po-references, from TRL 1.16's own code (trl.experimental.a2po):

  stage 2: A2POTrainer.compute_loss, called as it is with a stand-in trainer whose
           `_get_sequence_logps` is TRL's own, on models whose logits are given: the batch of
           Tests/TrainingTests/Fixtures/grpo-reference.json (six rollouts, prompts out of the loss)
           laid out as TRL's `_prepare_inputs` lays it out (prompts left-padded, completions after
           them, the completion mask), the reference log-probs from TRL's `_get_sequence_logps` of
           the reference logits, rewards and V* per rollout; dL/dlogits by autograd.
  stage 1: A2POTrainer._estimate_optimal_values, called as it is with a stand-in reference model
           whose `generate` returns fixed answers, a stand-in tokenizer that decodes them to names,
           and a reward function reading each name's reward from a table: TRL's V* of every prompt
           and the prompts its all-incorrect filter keeps (`stage1`). The V* cases below also
           evaluate its expression, beta1 * (logsumexp(r / beta1) - log N), on more reward sets.

Writes Tests/TrainingTests/Fixtures/a2po-reference.json.
"""
import json
import math
import types
from collections import defaultdict

import contextlib

import torch
from datasets import Dataset
import trl.experimental.a2po.a2po_trainer as a2po_module
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


def trl_stage1(samples, beta1):
    """TRL's own stage 1 over one prompt per row of `samples` (each row: its N sample rewards):
    (V* per prompt, the prompts the filter keeps, in order)."""
    n = len(samples[0])
    prompts = [f"prompt {i}" for i in range(len(samples))]

    class Encoded(dict):
        def to(self, device):
            return self

    class Tokenizer:
        """Prompt i is the id i; answer j of prompt i decodes to "i:j"."""
        def __call__(self, texts, **kwargs):
            return Encoded(input_ids=torch.tensor([[int(t.split()[1])] for t in texts]))

        def batch_decode(self, ids, skip_special_tokens=True):
            return [f"{int(row[0])}:{int(row[1])}" for row in ids]

    class Reference:
        def generate(self, input_ids, generation_config):
            k = generation_config.num_return_sequences
            return torch.tensor([[p, p, j] for p in input_ids[:, 0].tolist() for j in range(k)])

    def reward(prompts, completions, **kwargs):
        return [float(samples[int(c.split(":")[0])][int(c.split(":")[1])]) for c in completions]

    me = types.SimpleNamespace(
        args=types.SimpleNamespace(beta1=beta1, num_value_samples=n, per_device_train_batch_size=2, max_prompt_length=None,
                                   filter_all_incorrect=True),
        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]), eval_dataset=None,
        accelerator=types.SimpleNamespace(prepare=lambda x: x, device="cpu"), processing_class=Tokenizer(),
        ref_model=Reference(), value_generation_config=types.SimpleNamespace(num_return_sequences=n),
        reward_funcs=[reward], reward_weights=torch.ones(1))
    me._calculate_rewards = types.MethodType(A2POTrainer._calculate_rewards, me)
    # One process: gathering is the identity; the stand-in model needs no unwrapping.
    a2po_module.gather_object = lambda x: x
    a2po_module.unwrap_model_for_generation = lambda model, accelerator: contextlib.nullcontext(model)
    a2po_module.logger = types.SimpleNamespace(info=lambda *args, **kwargs: None)   # accelerate's needs its state
    A2POTrainer._estimate_optimal_values(me)
    return [me._optimal_values[p] for p in prompts], [int(row["prompt"].split()[1]) for row in me.train_dataset]


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
    # TRL's stage 1 itself on SAMPLES, and on rewards that are not binary (one set sums to 0 with
    # nonzero rewards, which TRL's rule also drops).
    stage1 = []
    for samples, beta1 in [(SAMPLES, BETA1), ([[0.5, -0.5, 0.0, 0.0], [2.0, 0.1, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]], 0.25)]:
        trl_values, kept = trl_stage1(samples, beta1)
        assert samples != SAMPLES or max(abs(a - b) for a, b in zip(trl_values, values)) < 1e-6, "TRL's stage 1 against the expression"
        stage1.append({"samples": samples, "beta1": beta1, "v_star": trl_values, "kept": kept})
    write_fixture(OUT, {"rewards": REWARDS, "samples": SAMPLES, "beta1": BETA1, "v_star": values,
                        "configurations": configurations, "values": cases, "stage1": stage1},
                  f"{len(configurations)} configurations, losses " + ", ".join(f"{c['loss']:.6f}" for c in configurations)
                  + f", {len(cases)} V* cases")


if __name__ == "__main__":
    main()
