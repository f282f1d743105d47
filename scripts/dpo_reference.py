"""Independent reference for sft-dist's DPO objective (run through scripts/make-dpo-reference).

Written from the paper's loss (Rafailov et al., arXiv:2305.18290, §4, Eq. 7) in PyTorch, with
the gradient by autograd, on preference pairs of several tokens with prompt tokens out of the
loss (the prompt of a pair is shared, the answers differ in length):

  log π(y|x) = Σ_t M_t log softmax(z_t)[y_t],    r(y) = β (log π_θ(y|x) − log π_ref(y|x))
  L = mean over the P pairs of −log σ(r(y_w) − r(y_l))
  rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies: means over pairs,
  as TRL's DPOTrainer logs them; logps/chosen, logps/rejected: means over pairs of log π_θ(y|x);
  logits/chosen, logits/rejected: means over the answers' loss tokens of the logits' mean over
  the vocabulary; mean_token_accuracy: share of the chosen answers' loss tokens whose largest
  logit is the target; entropy: mean over every loss token of −Σ p log p.

Then TRL's other pairwise loss types (DPOConfig.loss_type, TRL 1.16's DPOTrainer.compute_loss),
each written here from its per-pair formula in c = chosen log-ratio, r = rejected log-ratio,
h = beta (c - r), n_w / n_l = the answers' loss tokens:
  hinge relu(1 - h); ipo (c/n_w - r/n_l - 1/(2 beta))^2; exo_pair with eps = label_smoothing,
  q = sigmoid(h): q (log q - log(1 - eps)) + (1 - q)(log(1 - q) - log eps); nca_pair
  -logsig(beta c) - logsig(-beta c)/2 - logsig(-beta r)/2; robust
  (-(1 - eps) logsig(h) + eps logsig(-h)) / (1 - 2 eps); bco_pair -logsig(beta c) - logsig(-beta r);
  sppo_hard (c - 1/(2 beta))^2 + (r + 1/(2 beta))^2; apo_zero 1 - sigmoid(beta c) + sigmoid(beta r);
  apo_down sigmoid(beta c) + 1 - sigmoid(h); discopop with m = sigmoid(h / tau) (not detached):
  -logsig(h)(1 - m) + exp(-h) m; sigmoid_norm -logsig(beta (c/n_w - r/n_l)).

And TRL's f_divergence_type (f-DPO, arXiv 2309.16240), where the loss reads g(c), g(r) in place
of c, r: forward_kl g(u) = 1 - exp(-u); js_divergence log 2 + logsig(u); alpha_divergence
(exp((a - 1) u) - 1)/(a - 1), the exponent clamped at 80 (a = f_alpha_divergence_coef). And TRL's
ld_alpha (LD-DPO, arXiv 2409.06411): each answer's tokens past the pair's shorter answer count
ld_alpha times in its log-prob sums (policy and reference alike). And use_weighting (WPO, arXiv
2406.11827): each pair's loss times exp(mean_t(log p_t - log sum_v p_v^2)) of each answer, detached.
And TRL's sft type with lists of types (loss_type [a, b, ...] with loss_weights [w_a, w_b, ...]):
L = sum_k w_k L_k, where sft's L is -mean of log p over every chosen answer's loss tokens (not
weighted by ld_alpha), e.g. RPO (arXiv 2404.19733) sigmoid + alpha sft, MPO (arXiv 2411.10442)
sigmoid, bco_pair, sft at 0.8, 0.2, 1.

Writes Tests/TrainingTests/Fixtures/dpo-reference.json: the examples (pair i = examples 2i
chosen, 2i + 1 rejected), the current and reference logits per (example, position), and per
configuration (loss type, beta, label_smoothing, discopop_tau) the loss, dL/dlogits and the
reward means.
"""
import math

import torch
import torch.nn.functional as F

from reference_fixtures import fixture_path, write_fixture

OUT = fixture_path("dpo-reference.json")

V = 11
# (prompt length, chosen length, rejected length) per pair
PAIRS = [(2, 4, 3), (1, 5, 5), (3, 2, 4), (2, 3, 1)]
BETAS = [0.1, 0.5]
# (loss_type, beta, label_smoothing, discopop_tau) beyond sigmoid at BETAS.
CONFIGS = [("hinge", 0.5, 0.0, 0.05), ("ipo", 0.1, 0.0, 0.05), ("exo_pair", 0.5, 0.2, 0.05), ("nca_pair", 0.5, 0.0, 0.05),
           ("robust", 0.5, 0.2, 0.05), ("bco_pair", 0.5, 0.0, 0.05), ("sppo_hard", 0.5, 0.0, 0.05),
           ("apo_zero", 0.5, 0.0, 0.05), ("apo_down", 0.5, 0.0, 0.05), ("discopop", 0.5, 0.0, 0.3),
           ("sigmoid_norm", 0.5, 0.0, 0.05)]
# (loss_type, beta, label_smoothing, f_divergence_type, f_alpha_divergence_coef)
DIVERGENCES = [("sigmoid", 0.5, 0.0, "forward_kl", 0.5), ("ipo", 0.1, 0.0, "js_divergence", 0.5),
               ("robust", 0.5, 0.2, "alpha_divergence", 0.5), ("hinge", 0.5, 0.0, "alpha_divergence", 1.5)]
# Lists of types with their weights: (loss types, loss_weights or None, beta, label_smoothing, f_divergence_type, ld_alpha)
MIXES = [(["sft"], None, 0.5, 0.0, "reverse_kl", None), (["sigmoid", "sft"], [1.0, 0.7], 0.1, 0.0, "reverse_kl", None),
         (["sigmoid", "bco_pair", "sft"], [0.8, 0.2, 1.0], 0.5, 0.0, "reverse_kl", None),
         (["robust", "exo_pair"], [0.5, 2.0], 0.5, 0.2, "reverse_kl", None),
         (["ipo", "sft"], None, 0.1, 0.0, "reverse_kl", 0.5), (["hinge", "sft"], [1.0, 0.3], 0.5, 0.0, "forward_kl", None)]


def score(divergence, u, a):
    if divergence == "reverse_kl":
        return u
    if divergence == "forward_kl":
        return 1 - torch.exp(-u)
    if divergence == "js_divergence":
        return math.log(2) + F.logsigmoid(u)
    if divergence == "alpha_divergence":
        return (torch.exp(torch.clamp((a - 1) * u, max=80.0)) - 1) / (a - 1)
    raise ValueError(divergence)


def pair_loss(kind, c, r, nw, nl, beta, eps, tau):
    h = beta * c - beta * r
    if kind == "sigmoid":
        return -F.logsigmoid(h)
    if kind == "hinge":
        return torch.relu(1 - h)
    if kind == "ipo":
        return (c / nw - r / nl - 1 / (2 * beta)) ** 2
    if kind == "exo_pair":
        q, lq, lq_ = torch.sigmoid(h), F.logsigmoid(h), F.logsigmoid(-h)
        return q * (lq - torch.log1p(torch.tensor(-eps, dtype=h.dtype))) + (1 - q) * (lq_ - torch.log(torch.tensor(eps, dtype=h.dtype)))
    if kind == "nca_pair":
        return -F.logsigmoid(beta * c) - 0.5 * F.logsigmoid(-beta * c) - 0.5 * F.logsigmoid(-beta * r)
    if kind == "robust":
        return (-(1 - eps) * F.logsigmoid(h) + eps * F.logsigmoid(-h)) / (1 - 2 * eps)
    if kind == "bco_pair":
        return -F.logsigmoid(beta * c) - F.logsigmoid(-beta * r)
    if kind == "sppo_hard":
        return (c - 0.5 / beta) ** 2 + (r + 0.5 / beta) ** 2
    if kind == "apo_zero":
        return 1 - torch.sigmoid(beta * c) + torch.sigmoid(beta * r)
    if kind == "apo_down":
        return torch.sigmoid(beta * c) + 1 - torch.sigmoid(h)
    if kind == "discopop":
        m = torch.sigmoid(h / tau)
        return -F.logsigmoid(h) * (1 - m) + torch.exp(-h) * m
    if kind == "sigmoid_norm":
        return -F.logsigmoid(beta * (c / nw - r / nl))
    raise ValueError(kind)


def make_batch():
    g = torch.Generator().manual_seed(7)
    examples = []
    for prompt, lw, ll in PAIRS:
        shared = torch.randint(0, V, (prompt - 1,), generator=g).tolist()
        for length in (lw, ll):
            e = len(examples)   # the first id is the example's index (the test's table model)
            ids = [e] + shared + torch.randint(0, V, (length,), generator=g).tolist()
            examples.append({"ids": ids, "loss_mask": [0] * prompt + [1] * length})
    T = max(len(x["ids"]) for x in examples) - 1
    current = torch.randn(len(examples), T, V, generator=g, dtype=torch.float64) * 1.5
    reference = current + torch.randn(len(examples), T, V, generator=g, dtype=torch.float64) * 0.8
    return examples, T, current, reference


def dpo(examples, current, reference, beta, kind="sigmoid", eps=0.0, tau=0.05, divergence="reverse_kl", alpha=0.5, ld=None,
        weighting=False, weights=None):
    """kind: one loss type, or a list of them summed with `weights` (default 1 each)."""
    kinds = kind if isinstance(kind, list) else [kind]
    weights = weights or [1.0] * len(kinds)
    z = current.clone().requires_grad_(True)
    n = [float(sum(x["loss_mask"])) for x in examples]

    def seq_logp(logits, e):
        """Sum of the answer's token log-probs; with ld (LD-DPO, arXiv 2409.06411, TRL's ld_alpha)
        the tokens past the pair's shorter answer count ld times."""
        x = examples[e]
        shared = min(n[e], n[e ^ 1])
        total, k = logits.new_zeros(()), 0
        for t in range(1, len(x["ids"])):
            if x["loss_mask"][t]:
                k += 1
                w = 1.0 if ld is None or k <= shared else ld
                total = total + w * torch.log_softmax(logits[e, t - 1], -1)[x["ids"][t]]
        return total

    pairs = len(examples) // 2
    c = torch.stack([seq_logp(z, 2 * i) - seq_logp(reference, 2 * i) for i in range(pairs)])
    r = torch.stack([seq_logp(z, 2 * i + 1) - seq_logp(reference, 2 * i + 1) for i in range(pairs)])
    nw, nl = torch.tensor(n[0::2], dtype=c.dtype), torch.tensor(n[1::2], dtype=c.dtype)
    per_pair = sum(w * pair_loss(k, score(divergence, c, alpha), score(divergence, r, alpha), nw, nl, beta, eps, tau)
                   for k, w in zip(kinds, weights) if k != "sft")
    if weighting:   # WPO: exp(mean over the answer's tokens of log p - log sum p^2), detached
        with torch.no_grad():
            w = []
            for e, x in enumerate(examples):
                terms = [torch.log_softmax(current[e, t - 1], -1)[x["ids"][t]] - torch.logsumexp(2 * torch.log_softmax(current[e, t - 1], -1), -1)
                         for t in range(1, len(x["ids"])) if x["loss_mask"][t]]
                w.append(torch.exp(sum(terms) / max(len(terms), 1)))
        per_pair = per_pair * torch.stack(w[0::2]) * torch.stack(w[1::2])
    loss = per_pair.mean() if isinstance(per_pair, torch.Tensor) else z.new_zeros(())
    if "sft" in kinds:   # -mean of log p over every chosen answer's loss tokens
        chosen = [torch.log_softmax(z[e, t - 1], -1)[x["ids"][t]] for e, x in enumerate(examples) if e % 2 == 0
                  for t in range(1, len(x["ids"])) if x["loss_mask"][t]]
        loss = loss - weights[kinds.index("sft")] * torch.stack(chosen).mean()
    loss.backward()
    rw, rl = beta * c, beta * r
    rw, rl = rw.detach(), rl.detach()
    with torch.no_grad():
        logps = [seq_logp(current, e).item() for e in range(len(examples))]
        rows = {"chosen": [], "rejected": []}   # (logits, target) of each answer's loss tokens
        for e, x in enumerate(examples):
            for t in range(1, len(x["ids"])):
                if x["loss_mask"][t]:
                    rows["chosen" if e % 2 == 0 else "rejected"].append((current[e, t - 1], x["ids"][t]))
        every = rows["chosen"] + rows["rejected"]
        p_logp = [(torch.softmax(z, -1), torch.log_softmax(z, -1)) for z, _ in every]
    return {"loss_type": ",".join(kinds), "loss_weights": weights if weights != [1.0] * len(kinds) else None, "beta": beta, "label_smoothing": eps, "discopop_tau": tau,
            "f_divergence_type": divergence, "f_alpha_divergence_coef": alpha, "ld_alpha": ld, "use_weighting": weighting,
            "loss": loss.item(), "grad": z.grad.reshape(-1, V).tolist(),
            "rewards_chosen": rw.mean().item(), "rewards_rejected": rl.mean().item(),
            "rewards_margins": (rw - rl).mean().item(), "rewards_accuracies": (rw > rl).double().mean().item(),
            "logps_chosen": sum(logps[0::2]) / pairs, "logps_rejected": sum(logps[1::2]) / pairs,
            "logits_chosen": sum(z.mean().item() for z, _ in rows["chosen"]) / len(rows["chosen"]),
            "logits_rejected": sum(z.mean().item() for z, _ in rows["rejected"]) / len(rows["rejected"]),
            "mean_token_accuracy": sum(int(z.argmax().item() == y) for z, y in rows["chosen"]) / len(rows["chosen"]),
            "entropy": sum(-(p * lp).sum().item() for p, lp in p_logp) / len(every)}


def online(examples, current, reference, beta, kind):
    """TRL 1.16's OnlineDPOTrainer.training_step on ranked pairs (here: examples 2i chosen, 2i + 1
    rejected, each answer's score 1), transcribed: logits = (chosen − rejected policy sums) −
    (the same of the reference); sigmoid −logsigmoid(beta logits), ipo (logits − 1/(2 beta))^2,
    not length-averaged; objective/kl the mean over answers of sum_t (log pi − log pi_ref),
    objective/non_score_reward −beta kl, objective/rlhf_reward score + non_score_reward,
    objective/entropy the mean of −sum_t log pi."""
    z = current.clone().requires_grad_(True)

    def seq(logits, e):
        x = examples[e]
        return sum(torch.log_softmax(logits[e, t - 1], -1)[x["ids"][t]] for t in range(1, len(x["ids"])) if x["loss_mask"][t])

    pi = torch.stack([seq(z, e) for e in range(len(examples))])
    ref = torch.stack([seq(reference, e) for e in range(len(examples))])
    logits = (pi[0::2] - pi[1::2]) - (ref[0::2] - ref[1::2])
    losses = -F.logsigmoid(beta * logits) if kind == "sigmoid" else (logits - 1 / (2 * beta)) ** 2
    loss = losses.mean()
    loss.backward()
    kl = (pi - ref).detach()
    return {"loss_type": kind, "beta": beta, "loss": loss.item(), "grad": z.grad.reshape(-1, V).tolist(),
            "objective_kl": kl.mean().item(), "objective_non_score_reward": (-beta * kl).mean().item(),
            "objective_rlhf_reward": (1 - beta * kl).mean().item(), "objective_entropy": (-pi.detach()).mean().item()}


def main():
    examples, T, current, reference = make_batch()
    out = {"vocab": V, "seq_len": T, "examples": examples,
           "logits": {"current": current.reshape(-1, V).tolist(), "reference": reference.reshape(-1, V).tolist()},
           "references": [dpo(examples, current, reference, b) for b in BETAS]
           + [dpo(examples, current, reference, b, kind, eps, tau) for kind, b, eps, tau in CONFIGS]
           + [dpo(examples, current, reference, b, kind, eps, 0.05, d, a) for kind, b, eps, d, a in DIVERGENCES]
           + [dpo(examples, current, reference, 0.5, "sigmoid", ld=0.5), dpo(examples, current, reference, 0.1, "ipo", ld=0.0)]
           + [dpo(examples, current, reference, 0.5, "sigmoid", weighting=True), dpo(examples, current, reference, 0.5, "robust", 0.2, weighting=True)]
           + [dpo(examples, current, reference, b, kinds, eps, divergence=d, ld=ld, weights=w) for kinds, w, b, eps, d, ld in MIXES],
           "online": [online(examples, current, reference, 0.5, "sigmoid"), online(examples, current, reference, 0.1, "ipo")]}
    accuracies = out["references"][0]["rewards_accuracies"]
    assert 0 < accuracies < 1, "the batch should hold pairs ranked both ways"
    write_fixture(OUT, out, f"{len(examples) // 2} pairs, losses " + ", ".join(f"{r['loss']:.6f}" for r in out["references"]),
                  compact=False, newline=True)


if __name__ == "__main__":
    main()
