"""Independent reference for sft-dist's gkd objective (run through scripts/make-gkd-references),
from TRL 1.16's own code: GKDTrainer.generalized_jsd_loss (trl.experimental.gkd; GKD, arXiv
2306.13649 Eq. 1), called as GKDTrainer.compute_loss calls it — the student's and the teacher's
logits shifted by one, labels -100 outside the completion tokens, num_items_in_batch the batch's
loss tokens (sft-dist's global normaliser) — with dL/dlogits from autograd through it, in float64.

The batch is scripts/grpo_references.py's (six sequences, prompt tokens out of the loss); its
"reference" logits stand for the teacher's. Writes Tests/TrainingTests/Fixtures/gkd-reference.json.
"""
import os
import sys

import torch
from trl.experimental.gkd.gkd_trainer import GKDTrainer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grpo_references import V, make_batch  # noqa: E402
from reference_fixtures import fixture_path, write_fixture  # noqa: E402

OUT = fixture_path("gkd-reference.json")
BETAS = [0.5, 0.0, 1.0, 0.1, 0.9]


def trl_layout(examples, T, flat):
    """[E, T, V] logits (position t predicts token t + 1) and the shifted labels [E, T]."""
    logits = flat.double().view(len(examples), T, V)
    labels = torch.full((len(examples), T), -100, dtype=torch.long)
    for e, x in enumerate(examples):
        for t in range(len(x["ids"]) - 1):
            if x["loss_mask"][t + 1]:
                labels[e, t] = x["ids"][t + 1]
    return logits, labels


def main():
    g = torch.Generator().manual_seed(20261206)
    examples, T, current, teacher, _ = make_batch(g)
    examples = [{"ids": x["ids"], "loss_mask": x["loss_mask"]} for x in examples]
    _, labels = trl_layout(examples, T, current)
    configs = []
    for beta in BETAS:
        student = trl_layout(examples, T, current)[0].clone().requires_grad_(True)
        teacher_logits = trl_layout(examples, T, teacher)[0]
        n = int((labels != -100).sum())
        loss = GKDTrainer.generalized_jsd_loss(student, teacher_logits, labels=labels, beta=beta, num_items_in_batch=n)
        loss.backward()
        configs.append({"args": {"beta": str(beta)}, "loss": loss.item(),
                        "grad": student.grad.reshape(len(examples) * T, V).tolist()})
    out = {"vocab": V, "seq_len": T, "examples": examples, "logits": current.tolist(), "reference": teacher.tolist(),
           "configurations": configs}
    write_fixture(OUT, out, f"{len(configs)} configurations (beta {', '.join(str(b) for b in BETAS)})")


if __name__ == "__main__":
    main()
