"""Independent references for sft-dist's SRFT (run through scripts/make-srft-references).

SRFT (arXiv 2506.19767, §4) written in PyTorch from the paper's formulas, dL/dlogits from
autograd, on the batch of scripts/grpo_references.py (six sequences, prompt tokens out of the loss)
with sequences 1 and 4 demonstrations:

  H      = mean entropy of softmax(logits) over every loss token of the batch (detached)
  w_SFT  = sft_coef·exp(−H),  w_RL = rl_coef·exp(H)
  L      = [Σ_demo (−w_SFT·logp − A·p)] / N_demo
         + [Σ_{y+} −w_RL·logp + Σ_{y−} logp] / N_rollout

y+ the rollouts the verifier (the first reward) counts correct (reward ≥ 1), y− the others,
whatever the group's advantages (the paper's split by its 1/0 reward, so a group that is all
correct or all wrong still has its term);

and the group advantages with each prompt's demonstration in its group (G rollouts + 1
demonstration, TRL's scale_rewards rules on the G + 1 rewards).
Writes Tests/TrainingTests/Fixtures/srft-reference.json.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grpo_references import REWARDS, V, make_batch  # noqa: E402
from reference_fixtures import fixture_path, write_fixture  # noqa: E402

OUT = fixture_path("srft-reference.json")
EXPERT = [False, True, False, False, True, False]


def grouped_advantages(rollouts, demos, G, scale):
    """Rollouts (G per prompt) and one demonstration per prompt as groups of G + 1."""
    groups = [torch.tensor(rollouts[k * G:(k + 1) * G] + [demos[k]], dtype=torch.float64) for k in range(len(demos))]
    everything = torch.cat(groups)
    out_r, out_d = [], []
    for r in groups:
        if bool((r == r[0]).all()):
            adv = torch.zeros_like(r)
        elif scale == "none":
            adv = r - r.mean()
        else:
            std = r.std() if scale == "group" else everything.std()
            adv = (r - r.mean()) / (std + 1e-4)
        out_r += adv[:G].tolist()
        out_d.append(adv[G].item())
    return out_r, out_d


ADVANTAGE_CASES = [
    # (rollout rewards, demonstration rewards, G): a group all 1 with its demonstration, one
    # all 0 whose demonstration scores 1, graded rewards.
    ([1, 1, 1, 0, 0, 0, 0.5, 0.25, 0.75], [1, 1, 0.5], 3),
    ([0, 1, 0.2, 0.9], [1, 0], 2),
]


def srft_loss(examples, T, current, advantages, sft_coef, rl_coef):
    logits = current.double().clone().requires_grad_(True)
    lsm = torch.log_softmax(logits, dim=-1)
    rows = [(e, t) for e, x in enumerate(examples) for t in range(len(x["ids"]) - 1) if x["loss_mask"][t + 1]]
    with torch.no_grad():
        p_all = lsm.exp()
        H = sum(-(p_all[e * T + t] * lsm[e * T + t]).sum() for e, t in rows) / len(rows)
    w_sft, w_rl = sft_coef * torch.exp(-H), rl_coef * torch.exp(H)
    demo, self_, n_demo, n_roll = 0.0, 0.0, 0, 0
    for e, t in rows:
        logp = lsm[e * T + t, examples[e]["ids"][t + 1]]
        A = advantages[e]
        correct = examples[e]["reward"] >= 1
        if EXPERT[e]:
            demo = demo - w_sft * logp - A * logp.exp()
            n_demo += 1
        else:
            if correct:
                self_ = self_ - w_rl * logp
            else:
                self_ = self_ + logp
            n_roll += 1
    loss = demo / n_demo + self_ / n_roll
    loss.backward()
    return loss.item(), logits.grad, H.item()


def main():
    g = torch.Generator().manual_seed(20261212)
    examples, T, current, _ = make_batch(g)
    # Two groups of three sequences; the advantages over each group's rewards (its
    # demonstrations included), as the producer forms them.
    G = 3
    adv = []
    for k in range(2):
        r = torch.tensor(REWARDS[k * G:(k + 1) * G], dtype=torch.float64)
        adv += ((r - r.mean()) / (r.std() + 1e-4)).tolist()
    advantages = [float(torch.tensor(a).float()) for a in adv]
    for x, a, r in zip(examples, advantages, REWARDS):
        x["advantage"] = a
        x["reward"] = r
    configs = []
    for sft_coef, rl_coef in [(0.5, 0.1), (1.5, 0.7)]:
        loss, grad, H = srft_loss(examples, T, current, advantages, sft_coef, rl_coef)
        configs.append({"args": {"sft_coef": str(sft_coef), "rl_coef": str(rl_coef)}, "loss": loss, "grad": grad.tolist(),
                        "w_sft": sft_coef * float(torch.exp(torch.tensor(-H))), "w_rl": rl_coef * float(torch.exp(torch.tensor(H)))})
    out = {
        "vocab": V, "seq_len": T,
        "advantages": [{"rollouts": r, "demonstrations": d, "group_size": G_,
                        "expected": {s: dict(zip(["rollouts", "demonstrations"], grouped_advantages(r, d, G_, s)))
                                     for s in ["group", "batch", "none"]}}
                       for r, d, G_ in ADVANTAGE_CASES],
        "examples": examples,
        "logits": current.tolist(),
        "expert": EXPERT,
        "configurations": configs,
    }
    write_fixture(OUT, out, f"{len(configs)} configurations, {len(ADVANTAGE_CASES)} advantage cases")


if __name__ == "__main__":
    main()
