"""What the TRL-loss reference scripts (scripts/rloo_references.py, gmpo_references.py) feed a
trainer's `_get_per_token_logps_and_entropies` stand-in: each rollout's completion rows, and the
padded [B, Lc] tables of its tokens' log-probs and entropies read from a logits table."""

import torch


def completion_rows(examples):
    """Per rollout, the (row t, target y) of each completion token, t the position predicting it."""
    return [[(t, x["ids"][t + 1]) for t in range(len(x["ids"]) - 1) if x["loss_mask"][t + 1]] for x in examples]


def token_tables(source, rows, T, Lc, temperature=1.0):
    """log softmax(source / τ) at each completion token, [B, Lc] (differentiable through `source`),
    and each position's entropy, detached; zero past a rollout's tokens."""
    B = len(rows)
    lsm = torch.log_softmax(source / temperature, dim=-1)
    logps = torch.zeros(B, Lc, dtype=torch.float64)
    ent = torch.zeros(B, Lc, dtype=torch.float64)
    for e, r in enumerate(rows):
        for k, (t, y) in enumerate(r):
            logps = logps.index_put((torch.tensor([e]), torch.tensor([k])), lsm[e * T + t, y].reshape(1))
            p = lsm[e * T + t].detach().exp()
            ent[e, k] = -(p * lsm[e * T + t].detach()).sum()
    return logps, ent
