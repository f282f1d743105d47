"""Independent references for sft-dist's reward-model loss (run through scripts/make-reward-references).

The loss and logged figures come from TRL 1.16's own `RewardTrainer.compute_loss`, called with a
stand-in for the trainer (only the attributes compute_loss reads: args.center_rewards_coefficient,
model.training, an identity accelerator, _metrics, _total_train_tokens, _tp_size) and a stand-in
model whose `logits` are the given rewards, shape [2B, 1], chosen rows first then rejected (as
DataCollatorForPreference stacks them and compute_loss chunks them). The loss is
-logsigmoid(r_c - r_r [- margin]).mean() [+ coefficient * mean((r_c + r_r)^2)]; d loss / d reward is
autograd's.

Every case is run twice: in float64 (the float32 reward values upcast, margin too: the main
`loss`, `grad_*` and `metrics`) and in float32 (`float32`: what TRL computes with a float32
model; DataCollatorForPreference makes `margin` float32). `metrics` are the values compute_loss
appends to _metrics["train"] (accuracy, margin, min_reward, mean_reward, max_reward).

Writes Tests/TrainingTests/Fixtures/reward-reference.json.
"""
import json
import types
from collections import defaultdict

import torch
import transformers
import trl
from trl.trainer.reward_trainer import RewardTrainer

from reference_fixtures import fixture_path, write_fixture

OUT = fixture_path("reward-reference.json")
METRICS = ("accuracy", "margin", "min_reward", "mean_reward", "max_reward")

CHOSEN = [1.25, -0.5, 2.75, 0.125, -2.2]
REJECTED = [-0.75, 0.3, 2.9, -1.6, -2.95]
MARGIN = [0.0, 1.0, 0.0, 0.5, -0.4]
LARGE_CHOSEN = [20.0, -20.0, 1.5, 19.5, -2.0]
LARGE_REJECTED = [-20.0, 20.0, 0.25, -20.5, 1.0]

CASES = [  # (name, chosen, rejected, margin, center_rewards_coefficient)
    ("plain", CHOSEN, REJECTED, None, None),
    ("margin", CHOSEN, REJECTED, MARGIN, None),
    ("center", CHOSEN, REJECTED, None, 0.01),
    ("margin_center", CHOSEN, REJECTED, MARGIN, 0.01),
    ("large_difference", LARGE_CHOSEN, LARGE_REJECTED, None, None),
    ("large_difference_margin_center", LARGE_CHOSEN, LARGE_REJECTED, [0.0, 2.0, 0.0, -1.0, 0.5], 0.01),
]


def f32(xs):
    """The float32 values of xs, as Python floats (exact)."""
    return torch.tensor(xs, dtype=torch.float32).tolist()


def trl_reward_loss(chosen, rejected, margin, coefficient, dtype):
    B = len(chosen)
    rewards = torch.tensor(chosen + rejected, dtype=torch.float32).to(dtype).reshape(2 * B, 1).requires_grad_(True)
    metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    identity = types.SimpleNamespace(gather=lambda x: x, gather_for_metrics=lambda x: x)
    stand_in = types.SimpleNamespace(model=types.SimpleNamespace(training=True),
                                     args=types.SimpleNamespace(center_rewards_coefficient=coefficient),
                                     accelerator=identity, _metrics=metrics, _total_train_tokens=0, _tp_size=1)
    seen = {}

    def model(**kwargs):
        seen.update(kwargs)
        return types.SimpleNamespace(logits=rewards)

    inputs = {"input_ids": torch.zeros(2 * B, 1, dtype=torch.long), "attention_mask": torch.ones(2 * B, 1, dtype=torch.long)}
    if margin is not None:
        inputs["margin"] = torch.tensor(margin, dtype=torch.float32).to(dtype)
    loss = RewardTrainer.compute_loss(stand_in, model, inputs)
    assert loss.dtype == dtype and seen["use_cache"] is False
    loss.backward()
    g = rewards.grad.reshape(-1).tolist()
    return {"loss": loss.item(), "grad_chosen": g[:B], "grad_rejected": g[B:],
            "metrics": {k: metrics["train"][k][-1] for k in METRICS}}


def main():
    cases = []
    for name, chosen, rejected, margin, coefficient in CASES:
        chosen, rejected = f32(chosen), f32(rejected)
        margin = f32(margin) if margin is not None else None
        r64 = trl_reward_loss(chosen, rejected, margin, coefficient, torch.float64)
        r32 = trl_reward_loss(chosen, rejected, margin, coefficient, torch.float32)
        cases.append({"name": name, "rewards_chosen": chosen, "rewards_rejected": rejected, "margin": margin,
                      "center_rewards_coefficient": coefficient, **r64, "float32": r32})
    write_fixture(OUT, {"cases": cases, "grad_dtype": "float64 (float32 under `float32`)",
                        "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
                  f"{len(cases)} cases from RewardTrainer.compute_loss")


if __name__ == "__main__":
    main()
