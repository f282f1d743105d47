"""Independent references for rewards a reward function leaves out (a command scorer's `null`,
TRL's None): run through scripts/make-unscorable-references.

TRL 1.16 reads a reward function's None as NaN. A completion every function left out is
unscorable: nansum would make its reward 0, so TRL marks it NaN, leaves it out of nanmean and
nanstd, and sets its advantage to 0 (nan_to_num). The advantages here come from TRL's own
code, cut from the installed trainers and executed on each case:

  grpo  the block of GRPOTrainer._generate_and_score_completions from `unscorable_mask` to
        `nan_to_num` (sum_then_normalize under every scale_rewards, and normalize_then_sum)
  rloo  the same span of RLOOTrainer._generate_and_score_completions (the leave-one-out
        baseline over the scored siblings, normalize_advantages on and off, reward_clip_range)

The logged figures are written from TRL's logging lines with its own `nanstd`: `reward` the
nanmean of Σ w·r (NaN where unscorable), `reward_std`, and per function `rewards/NAME/mean`,
`/std` over the values it gave. Rewards are float64; TRL's nanstd takes its Bessel factor in
float32 (1e-8 relative).

Writes Tests/TrainingTests/Fixtures/unscorable-rewards-reference.json; null where TRL has NaN.
"""
import inspect
import math
import textwrap
import types

import torch
from trl.trainer import grpo_trainer, rloo_trainer
from trl.trainer.utils import nanstd

from reference_fixtures import fixture_path, write_fixture

OUT = fixture_path("unscorable-rewards-reference.json")
N = float("nan")


def cut(method, start, end):
    """The span of `method`'s source from the line holding `start` to the line holding `end`
    (inclusive), dedented."""
    lines = inspect.getsource(method).splitlines(keepends=True)
    i = next(k for k, l in enumerate(lines) if start in l)
    j = next(k for k, l in enumerate(lines) if k > i and end in l)
    return textwrap.dedent("".join(lines[i:j + 1]))


GRPO = compile(cut(grpo_trainer.GRPOTrainer._generate_and_score_completions,
                   "unscorable_mask = torch.isnan(rewards_per_func)", "advantages = torch.nan_to_num"),
               "trl-grpo-unscorable", "exec")
RLOO = compile(cut(rloo_trainer.RLOOTrainer._generate_and_score_completions,
                   "unscorable_mask = torch.isnan(rewards_per_func)", "advantages = torch.nan_to_num"),
               "trl-rloo-unscorable", "exec")


def matrix(per_function):
    return torch.tensor(per_function, dtype=torch.float64).T.contiguous()   # [N, F]


def grpo(per_function, weights, G, aggregation, scale):
    me = types.SimpleNamespace(multi_objective_aggregation=aggregation, scale_rewards=scale,
                               reward_weights=torch.tensor(weights, dtype=torch.float64),
                               reward_funcs=[None] * len(weights))
    env = {"self": me, "rewards_per_func": matrix(per_function), "num_generations": G, "device": "cpu",
           "torch": torch, "nanstd": nanstd}
    exec(GRPO, env)
    return env["advantages"].tolist()


def rloo(per_function, weights, G, normalize, clip):
    me = types.SimpleNamespace(reward_weights=torch.tensor(weights, dtype=torch.float64), reward_clip_range=clip,
                               beta=0.0, normalize_advantages=normalize)
    env = {"self": me, "rewards_per_func": matrix(per_function), "num_generations": G, "device": "cpu",
           "torch": torch, "nanstd": nanstd}
    exec(RLOO, env)
    return env["advantages"].tolist()


def figures(per_function, weights):
    """TRL's logged reward figures (its logging lines, with its nanstd)."""
    r = matrix(per_function)
    total = (r * torch.tensor(weights, dtype=torch.float64).unsqueeze(0)).nansum(dim=1)
    total[torch.isnan(r).all(dim=1)] = torch.nan
    out = {"reward": torch.nanmean(total).item(), "reward_std": nanstd(total).item()}
    for f in range(r.shape[1]):
        out[f"rewards/r{f}/mean"] = torch.nanmean(r[:, f]).item()
        out[f"rewards/r{f}/std"] = nanstd(r[:, f]).item()
    return out


def json_safe(x):
    if isinstance(x, list):
        return [json_safe(v) for v in x]
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    return None if isinstance(x, float) and math.isnan(x) else x


# (name, per-function rewards with NaN for None, weights, G). Groups of four.
CASES = [
    # One function: groups with three scored, one, none, and four equal; then two scored.
    ("one-function", [[1, N, 0, 0.5, N, 1, N, N, N, N, N, N, 1, 1, 1, 1, 0.25, N, 0.75, N]], [1.0], 4),
    # Two functions, the first a verifier that skips some rollouts, the second scoring all: no
    # rollout is unscorable, but the first function's mean and std run over fewer values.
    ("partial", [[1, N, 0, 1, N, N, 0, 1, 0, N, N, N],
                 [0.5, 0.2, 0.9, 0.1, 0.3, 0.3, 0.8, 0.4, 0.6, 0.6, 0.1, 0.7]], [1.0, 0.5], 4),
    # Two functions that both skip: unscorable rollouts, a group with one scorable rollout, one
    # whose only scored rollouts each have another function, a negative weight.
    ("unscorable", [[1, N, N, 0, N, N, N, 1, N, 0.5, N, N, 0, 1, N, N],
                    [N, 0.4, N, 0.2, N, N, N, N, 0.9, N, 0.1, N, N, N, 0.3, N]], [1.0, -0.5], 4),
]


def main():
    out = {"cases": []}
    for name, per_function, weights, G in CASES:
        case = {"name": name, "rewards": json_safe(per_function), "weights": weights, "group_size": G,
                "figures": json_safe(figures(per_function, weights)), "grpo": [], "rloo": []}
        for aggregation, scale in [("sum_then_normalize", "group"), ("sum_then_normalize", "batch"),
                                   ("sum_then_normalize", "none"), ("normalize_then_sum", "group")]:
            case["grpo"].append({"aggregation": aggregation, "scale_rewards": scale,
                                 "advantages": grpo(per_function, weights, G, aggregation, scale)})
        for normalize, clip in [(False, None), (True, None), (False, [0.0, 0.6])]:
            case["rloo"].append({"normalize": normalize, "clip": clip,
                                 "advantages": rloo(per_function, weights, G, normalize, clip)})
        out["cases"].append(case)
    write_fixture(OUT, out, f"{len(out['cases'])} cases, TRL {__import__('trl').__version__}", compact=False, newline=True)


if __name__ == "__main__":
    main()
