"""Independent reference for sft-dist's reference-free preference objectives, cpo and orpo (run
through scripts/make-preference-references), from TRL 1.16's own code (trl.experimental):

  cpo:  CPOTrainer.get_batch_logps (sums, or means for loss_type ipo and simpo) and
        CPOTrainer.cpo_loss (sigmoid / hinge / ipo / simpo, label_smoothing, simpo_gamma, AlphaPO's
        alpha), then TRL's get_batch_loss_metrics: loss = losses.mean() + cpo_alpha * nll_loss,
        nll_loss = CrossEntropyLoss over the chosen answers' labels (CPO, arXiv 2401.08417 Eq. 3;
        SimPO, arXiv 2405.14734 Eq. 6; AlphaPO, arXiv 2501.03884).
  orpo: get_batch_logps with average_log_prob=True and ORPOTrainer.odds_ratio_loss, then
        loss = nll_loss - losses.mean() (ORPO, arXiv 2403.07691 Eqs. 6-7), nll_loss over every
        token of the chosen sequences, prompt included, as ORPOTrainer's concatenated_forward.

TRL's functions are called as they are, on a batch of preference pairs laid out as TRL's
concatenated_forward makes it (chosen rows first, labels -100 outside the answers), and
dL/dlogits comes from autograd through them. odds_ratio_loss computes in float32 (`.float()`),
so orpo's loss is also transcribed in float64 here and the two are asserted to agree to 1e-5;
the fixture holds the float64 values. The batch is scripts/dpo_reference.py's.

Writes Tests/TrainingTests/Fixtures/preference-reference.json.
"""
import types

import torch
import torch.nn as nn
import torch.nn.functional as F
from trl.experimental.cpo.cpo_trainer import CPOTrainer
from trl.experimental.orpo.orpo_trainer import ORPOTrainer

from dpo_reference import V, make_batch
from reference_fixtures import fixture_path, write_fixture

OUT = fixture_path("preference-reference.json")
# (loss_type, beta, label_smoothing, cpo_alpha, simpo_gamma, alpha)
CPO = [("sigmoid", 0.1, 0.0, 1.0, 0.5, 0.0), ("sigmoid", 0.5, 0.1, 0.0, 0.5, 0.0), ("hinge", 0.5, 0.0, 1.0, 0.5, 0.0),
       ("ipo", 0.5, 0.0, 0.5, 0.5, 0.0), ("simpo", 2.0, 0.0, 0.0, 0.5, 0.0), ("simpo", 2.0, 0.1, 1.0, 1.0, 0.0),
       ("sigmoid", 0.1, 0.0, 1.0, 0.5, 0.1), ("simpo", 2.0, 0.0, 0.0, 0.5, 0.25)]
ORPO = [0.1, 1.0]


def trl_layout(examples, current):
    """TRL's concatenated batch: chosen rows then rejected rows, logits [2P, T + 1, V] (position t
    predicting token t + 1; the last row unused) and labels [2P, T + 1], -100 outside the answers."""
    T = current.shape[1]
    order = list(range(0, len(examples), 2)) + list(range(1, len(examples), 2))
    logits = torch.zeros(len(examples), T + 1, V, dtype=torch.float64)
    labels = torch.full((len(examples), T + 1), -100, dtype=torch.long)
    for row, e in enumerate(order):
        x = examples[e]
        logits[row, :T] = current[e]
        for t, (token, m) in enumerate(zip(x["ids"], x["loss_mask"])):
            if m:
                labels[row, t] = token
    return order, logits, labels


def nll(logits, labels, P):
    """TRL's cross_entropy_loss of the chosen rows (concatenated_forward's nested function)."""
    return nn.CrossEntropyLoss()(logits[:P, :-1].reshape(-1, V), labels[:P, 1:].reshape(-1))


def full_labels(examples, order, T):
    """ORPOTrainer's NLL labels: every token of the sequence ("orpo chosen nll loss is computed
    over the full prompt and response": the input ids wherever the attention mask is 1)."""
    labels = torch.full((len(examples), T + 1), -100, dtype=torch.long)
    for row, e in enumerate(order):
        ids = examples[e]["ids"]
        labels[row, :len(ids)] = torch.tensor(ids)
    return labels


def grad_rows(z, order, examples, T):
    """dL/dlogits back in the examples' order, [E * T, V]."""
    g = torch.zeros(len(examples), T, V, dtype=torch.float64)
    for row, e in enumerate(order):
        g[e] = z.grad[row, :T]
    return g.reshape(-1, V).tolist()


def cpo(examples, current, loss_type, beta, eps, cpo_alpha, gamma, alpha):
    order, logits, labels = trl_layout(examples, current)
    P, T = len(examples) // 2, current.shape[1]
    z = logits.clone().requires_grad_(True)
    me = types.SimpleNamespace(alpha=alpha, loss_type=loss_type, beta=beta, simpo_gamma=gamma, label_smoothing=eps,
                               accelerator=types.SimpleNamespace(device="cpu"))
    logps = CPOTrainer.get_batch_logps(z, labels, average_log_prob=loss_type in ["ipo", "simpo"])
    losses, chosen_rewards, rejected_rewards = CPOTrainer.cpo_loss(me, logps[:P], logps[P:])
    nll_loss = nll(z, labels, P) if cpo_alpha != 0 else torch.tensor(0.0, dtype=torch.float64)   # TRL logs 0 then
    loss = losses.mean() + cpo_alpha * nll_loss
    loss.backward()
    out = {"objective": "cpo", "loss_type": loss_type, "beta": beta, "label_smoothing": eps, "cpo_alpha": cpo_alpha,
           "simpo_gamma": gamma, "alpha": alpha, "loss": loss.item(), "grad": grad_rows(z, order, examples, T)}
    return out | metrics(chosen_rewards, rejected_rewards, logps[:P], logps[P:], nll_loss)


def orpo(examples, current, beta):
    order, logits, labels = trl_layout(examples, current)
    P, T = len(examples) // 2, current.shape[1]
    z = logits.clone().requires_grad_(True)
    logps = ORPOTrainer.get_batch_logps(z, labels, average_log_prob=True)
    w, l = logps[:P], logps[P:]
    # float64 transcription of odds_ratio_loss (which casts to float32), checked against it below.
    log_odds = (w - l) - (torch.log(-torch.expm1(w)) - torch.log(-torch.expm1(l)))
    ratio = F.logsigmoid(log_odds)
    nll_loss = nll(z, full_labels(examples, order, T), P)
    loss = nll_loss - (beta * ratio).mean()
    me = types.SimpleNamespace(beta=beta, accelerator=types.SimpleNamespace(device="cpu"))
    with torch.no_grad():
        trl_losses, _, _, trl_ratio, trl_log_odds = ORPOTrainer.odds_ratio_loss(me, w.detach(), l.detach())
        assert abs((nll_loss - trl_losses.mean()).item() - loss.item()) < 1e-5, "transcription against TRL's odds_ratio_loss"
        assert abs(trl_ratio.item() - ratio.mean().item()) < 1e-5 and abs(trl_log_odds.item() - log_odds.mean().item()) < 1e-5
    loss.backward()
    out = {"objective": "orpo", "beta": beta, "loss": loss.item(), "grad": grad_rows(z, order, examples, T),
           "log_odds_ratio": ratio.mean().item(), "log_odds_chosen": log_odds.mean().item()}
    return out | metrics(beta * w.detach(), beta * l.detach(), w, l, nll_loss)


def metrics(chosen_rewards, rejected_rewards, chosen_logps, rejected_logps, nll_loss):
    """TRL's get_batch_loss_metrics figures (one process)."""
    return {"rewards_chosen": chosen_rewards.mean().item(), "rewards_rejected": rejected_rewards.mean().item(),
            "rewards_margins": (chosen_rewards - rejected_rewards).mean().item(),
            "rewards_accuracies": (chosen_rewards > rejected_rewards).double().mean().item(),
            "logps_chosen": chosen_logps.detach().mean().item(), "logps_rejected": rejected_logps.detach().mean().item(),
            "nll_loss": None if nll_loss is None else nll_loss.item()}


def main():
    torch.set_default_dtype(torch.float64)
    examples, T, current, _ = make_batch()
    refs = [cpo(examples, current, *c) for c in CPO] + [orpo(examples, current, b) for b in ORPO]
    out = {"vocab": V, "seq_len": T, "examples": examples, "logits": current.reshape(-1, V).tolist(), "references": refs}
    write_fixture(OUT, out, f"{len(examples) // 2} pairs, losses " + ", ".join(f"{r['loss']:.6f}" for r in refs),
                  compact=False, newline=True)


if __name__ == "__main__":
    main()
