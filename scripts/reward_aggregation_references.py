"""Independent references for sft-dist's multi_objective_aggregation (run through
scripts/make-reward-aggregation-references).

The advantages come from TRL's own code: the `if self.multi_objective_aggregation == ...`
block of `GRPOTrainer._generate_and_score_completions` (TRL 1.16) is cut from the installed
grpo_trainer.py and executed on each case's reward matrix, with TRL's `nanstd`, then
`torch.nan_to_num` as TRL does after it. The rewards are float64 here, so the fixture holds the
formula's values but for TRL's `nanstd`, whose Bessel factor n/(n−1) is float32 (about 1e-8
relative); a silent group's advantages are TRL's rounding residue of −mean_B (1e-17), where
sft-dist gives exactly 0. The same case is also written out by hand below
(`by_hand`), and the two must agree, so a TRL change to the block shows up as a failure here.

  normalize_then_sum  z_f = (r_f − mean_g) / (std_g + 1e-4) per function and group (Bessel std;
                      0 when G = 1), s = Σ_f w_f·z_f, A = (s − mean_B) / (std_B + 1e-4) over
                      the whole batch; scale_rewards is not read
  sum_then_normalize  s = Σ_f w_f·r_f, A = s − mean_g, / (std + 1e-4) by scale_rewards

Writes Tests/TrainingTests/Fixtures/reward-aggregation-reference.json: per case the rewards
(per function), weights, group size, aggregation, scale_rewards, TRL's advantages and TRL's
frac_reward_zero_std (for normalize_then_sum: whether the batch std is 0).
"""
import inspect
import textwrap
import types

import torch
from trl.trainer import grpo_trainer
from trl.trainer.utils import nanstd

from reference_fixtures import fixture_path, write_fixture

OUT = fixture_path("reward-aggregation-reference.json")


def trl_block():
    """The aggregation block of TRL's _generate_and_score_completions, dedented."""
    src = inspect.getsource(grpo_trainer.GRPOTrainer._generate_and_score_completions)
    start = src.index('        if self.multi_objective_aggregation == "sum_then_normalize":')
    end = src.index("        # Unscorable completions", start)
    return textwrap.dedent(src[start:end])


BLOCK = compile(trl_block(), "trl-aggregation-block", "exec")


def trl_advantages(per_function, weights, G, aggregation, scale):
    """TRL's advantages and frac_reward_zero_std for `per_function[f][i]`."""
    rewards_per_func = torch.tensor(per_function, dtype=torch.float64).T.contiguous()   # [N, F]
    me = types.SimpleNamespace(multi_objective_aggregation=aggregation, scale_rewards=scale,
                               reward_weights=torch.tensor(weights, dtype=torch.float64),
                               reward_funcs=[None] * len(weights))
    env = {"self": me, "rewards_per_func": rewards_per_func, "num_generations": G, "device": "cpu",
           "unscorable_mask": torch.isnan(rewards_per_func).all(dim=1), "torch": torch, "nanstd": nanstd}
    exec(BLOCK, env)
    adv = torch.nan_to_num(env["advantages"], nan=0.0)
    return adv.tolist(), env["is_std_zero"].double().mean().item()


def by_hand(per_function, weights, G):
    """normalize_then_sum written from the formula, to check the block cut from TRL."""
    r = torch.tensor(per_function, dtype=torch.float64)   # [F, N]
    s = torch.zeros(r.shape[1], dtype=torch.float64)
    for f in range(r.shape[0]):
        g = r[f].view(-1, G)
        std = g.std(dim=1, keepdim=True) if G > 1 else torch.zeros(g.shape[0], 1, dtype=torch.float64)
        s += weights[f] * ((g - g.mean(dim=1, keepdim=True)) / (std + 1e-4)).reshape(-1)
    return ((s - s.mean()) / (s.std() + 1e-4)).tolist()


# (name, per-function rewards, weights, G). Three groups of four unless said.
CASES = [
    # Weight 1 and 0.5: in group 2 the weighted sums are all 1 but the parts are not (GDPO's
    # case: sum_then_normalize gives it nothing, normalize_then_sum (1 − 0.5)·z_1); group 3 is
    # all equal.
    ("two-functions", [[1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1],
                       [1, 1, 0, 0, 0, 2, 0, 2, 0, 0, 0, 0]], [1.0, 0.5], 4),
    # Different scales: a numeric reward in [0, 10] next to a 0/1 one; one function constant in a group.
    ("scales", [[3, 7, 10, 0, 2, 2, 2, 2, 9, 1, 5, 5],
                [0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1]], [1.0, 2.0], 4),
    # Three functions, a negative weight, fractional rewards.
    ("three-functions", [[0.1, 0.7, 0.3, 0.9, 0.2, 0.2],
                         [1, 0, 1, 0, 0, 1],
                         [0.25, 0.5, 0.75, 1.0, 0.0, 0.5]], [1.0, -0.3, 0.7], 3),
    # One function: z-scored in the group, then scaled by the batch std.
    ("one-function", [[1, 0, 0.5, 0.25, 1, 0, 0, 0, 1]], [1.0], 3),
    # Every group silent: all advantages 0, the batch std 0 (TRL logs frac_reward_zero_std 1).
    ("all-equal", [[1, 1, 0, 0], [0.5, 0.5, 0.5, 0.5]], [1.0, 1.0], 2),
    # A group of one (an evaluation with num_generations_eval 1): std 0, every z 0.
    ("group-of-one", [[1, 0, 1], [0, 0, 1]], [1.0, 1.0], 1),
    # SRFT's layout: G = 3 rollouts then the demonstration, in groups of 4.
    ("grouped-demonstrations", [[0, 1, 0, 1, 1, 1, 0, 1],
                                [1, 1, 0, 1, 0, 0, 0, 1]], [1.0, 0.1], 4),
]


def main():
    out = {"cases": []}
    for name, per_function, weights, G in CASES:
        adv, zero = trl_advantages(per_function, weights, G, "normalize_then_sum", "group")
        hand = by_hand(per_function, weights, G)
        # TRL's nanstd takes Bessel's n/(n−1) as an integer division, float32: 1e-8 apart.
        assert max(abs(a - b) for a, b in zip(adv, hand)) < 1e-7, (name, adv, hand)
        for scale in ["group", "batch", "none"]:
            other, _ = trl_advantages(per_function, weights, G, "normalize_then_sum", scale)
            assert other == adv, f"{name}: TRL read scale_rewards {scale} under normalize_then_sum"
        out["cases"].append({"name": name, "rewards": per_function, "weights": weights, "group_size": G,
                             "aggregation": "normalize_then_sum", "scale_rewards": "group",
                             "advantages": adv, "frac_reward_zero_std": zero})
        # sum_then_normalize of the same matrix, every scale_rewards mode (TRL's default path).
        for scale in ["group", "batch", "none"]:
            a, z = trl_advantages(per_function, weights, G, "sum_then_normalize", scale)
            out["cases"].append({"name": name, "rewards": per_function, "weights": weights, "group_size": G,
                                 "aggregation": "sum_then_normalize", "scale_rewards": scale,
                                 "advantages": a, "frac_reward_zero_std": z})
    write_fixture(OUT, out, f"{len(out['cases'])} cases, TRL {__import__('trl').__version__}", compact=False, newline=True)


if __name__ == "__main__":
    main()
