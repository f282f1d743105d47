"""Independent references for sft-dist's SuperHF (run through scripts/make-superhf-references).

SuperHF (arXiv 2310.16763, §3; public code openfeedback/superhf training.py and filtering.py)
written here from the paper's method, not from sft-dist's code:

  selection  per prompt, the finished completions scored by R = Σ_f w_f·r_f, then the code's
             CompletionFilterTopK: sorted(…, key=score, reverse=True)[:top_k] (Python's sort is
             stable, so equal scores keep sampling order)
  loss       L = Σ_t M_t·[−log π_θ(y_t) + c·KL(π_0‖π_θ)_t] / N, KL_t from torch's
             kl_div(log π_θ, log π_0, log_target=True) summed over the vocabulary (the code's
             KLDivLoss(log_target=True) per token), N = every loss token of the batch
             (sft-dist's global normaliser), dL/dlogits by autograd

The batch is scripts/grpo_references.py's (six sequences, prompt tokens out of the loss, a
reference near the current logits). Writes Tests/TrainingTests/Fixtures/superhf-reference.json.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grpo_references import V, make_batch  # noqa: E402
from reference_fixtures import fixture_path, write_fixture  # noqa: E402

OUT = fixture_path("superhf-reference.json")


def selection_cases(g):
    """Prompts of k completions with two reward functions on a grid of quarters (exact in
    float32, so ties are real ties), some completions unfinished."""
    cases = []
    for k, top_k, weights in [(4, 1, [1.0, 0.5]), (6, 2, [0.25, 2.0]), (5, 3, [1.0, 0.0]), (3, 1, [0.0, 0.0])]:
        prompts = []
        for _ in range(4):
            rewards = (torch.randint(0, 5, (2, k), generator=g).double() / 4).tolist()
            finished = (torch.rand(k, generator=g) > 0.25).tolist()
            total = [sum(w * rewards[f][j] for f, w in enumerate(weights)) for j in range(k)]
            eligible = [(total[j], j) for j in range(k) if finished[j]]
            best = [j for _, j in sorted(eligible, key=lambda x: float(x[0]), reverse=True)[:top_k]]
            prompts.append({"rewards": rewards, "finished": finished, "best": best})
        cases.append({"k": k, "top_k": top_k, "weights": weights, "prompts": prompts})
    return cases


def superhf_loss(examples, T, current, reference, c):
    logits = current.double().clone().requires_grad_(True)
    lsm = torch.log_softmax(logits, dim=-1)
    lsm_ref = torch.log_softmax(reference.double(), dim=-1)
    kl = torch.nn.functional.kl_div(lsm, lsm_ref, reduction="none", log_target=True).sum(-1)
    total, n = torch.zeros((), dtype=torch.float64), 0
    for e, x in enumerate(examples):
        for t in range(len(x["ids"]) - 1):
            if x["loss_mask"][t + 1]:
                total = total - lsm[e * T + t, x["ids"][t + 1]] + c * kl[e * T + t]
                n += 1
    loss = total / n
    loss.backward()
    return loss.item(), logits.grad


def main():
    g = torch.Generator().manual_seed(20261202)
    examples, T, current, reference = make_batch(g)
    examples = [{"ids": x["ids"], "loss_mask": x["loss_mask"]} for x in examples]
    configs = []
    for c in [0.35, 2.0, 0.0]:
        loss, grad = superhf_loss(examples, T, current, reference, c)
        configs.append({"args": {"kl_coefficient": str(c)}, "loss": loss, "grad": grad.tolist()})
    out = {"vocab": V, "seq_len": T, "examples": examples, "logits": current.tolist(), "reference": reference.tolist(),
           "configurations": configs, "selection": selection_cases(g)}
    write_fixture(OUT, out, f"{len(configs)} loss configurations, {len(out['selection'])} selection cases")


if __name__ == "__main__":
    main()
