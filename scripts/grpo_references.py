"""Independent references for sft-dist's GRPO (run through scripts/make-grpo-references).

Written from TRL's `GRPOTrainer` (`_generate_and_score_completions`, `_compute_loss`) in
PyTorch, with dL/dlogits from autograd: padded [B, T] completion tensors, a completion mask,
per-sequence advantages, the sampler's log-probs as `old_per_token_logps`, and a reference
model's logits for the k3 KL. The whole step batch is one device with one accumulation step,
which is what sft-dist's global (allreduced) counts reproduce for any split over ranks:

  advantages   A = r − mean_g; "group": / (std_g + 1e-4); "batch": / (std_B + 1e-4); "none": as is
               (std with Bessel's correction, torch.std)
  per token    c1 = exp(logp − old), c2 = clamp(c1, 1 − ε_low, 1 + ε_high),
               k3 = exp(ref − logp) − (ref − logp) − 1, times c1 with use_bias_correction_kl
               (TRL 1.16's default; DeepSeek-V3.2, arXiv 2512.02556, §3.1, Eq. 7),
               ℓ = −min(c1·A, c2·A) + β·k3; TRL's kl metric is the mean of c1·k3 (or k3)
  grpo         ((ℓ·m).sum(−1) / m.sum(−1).clamp(min=1)).mean()
  bnpo         (ℓ·m).sum() / m.sum().clamp(min=1)
  dr_grpo      (ℓ·m).sum() / (B · max_completion_length)
  dapo         (ℓ·m).sum() / num_items_in_batch   (the step's loss tokens; when a generation spans
               k steps, TRL's num_items_in_batch counts the generation and is rescaled by
               GA / steps_per_generation: its loss tokens / k — one configuration has this
               batch as one step of two, the other step with 17 loss tokens)

Writes Tests/TrainingTests/Fixtures/grpo-reference.json: advantage vectors, the examples (ids,
loss masks), per-token behaviour log-probs, advantages, current and reference logits per
(example, position), per configuration the loss, dL/dlogits and TRL's clip_ratio/low_mean,
high_mean and region_mean, and per advantage case the reward_std and frac_reward_zero_std TRL logs.
"""
import torch

from reference_fixtures import fixture_path, write_fixture

OUT = fixture_path("grpo-reference.json")

V = 9
MAX_COMPLETION_LENGTH = 7
# (prompt length, completion length) per rollout; two groups of three.
SHAPES = [(2, 4), (2, 6), (2, 2), (3, 5), (3, 3), (3, 7)]
REWARDS = [1.0, 0.0, 0.5, 0.25, 1.0, 0.0]


def trl_advantages(rewards, G, scale):
    r = torch.tensor(rewards, dtype=torch.float64)
    mean_grouped = r.view(-1, G).mean(dim=1).repeat_interleave(G)
    adv = r - mean_grouped
    if scale == "group":
        std = r.view(-1, G).std(dim=1).repeat_interleave(G)
    elif scale == "batch":
        std = r.std().expand_as(r)
    if scale != "none":
        adv = adv / (std + 1e-4)
    return adv.tolist()


def trl_reward_metrics(rewards, G):
    """TRL 1.16's logged reward_std (torch.std over every reward of the batch) and, for
    scale_rewards "group", frac_reward_zero_std (share of rollouts whose group std is ~0)."""
    r = torch.tensor(rewards, dtype=torch.float64)
    std_g = r.view(-1, G).std(dim=1).repeat_interleave(G)
    return {"reward_std": r.std().item(),
            "frac_reward_zero_std": torch.isclose(std_g, torch.zeros_like(std_g)).double().mean().item()}


ADVANTAGE_CASES = [
    # (rewards, G): a zero-variance group, a 1/0 group, graded rewards.
    ([1, 1, 1, 1, 1, 0, 0, 1, 0.5, 0.25, 0.75, 0], 4),
    ([0, 0, 0.2, 0.9, 0.9, 0.9], 3),
    ([3, -1, 2, 2, 0.5, -0.5, 7, 7], 2),
]


def make_batch(g):
    examples = []
    for e, (prompt, completion) in enumerate(SHAPES):
        ids = [e] + torch.randint(0, V, (prompt + completion - 1,), generator=g).tolist()
        examples.append({"ids": ids, "loss_mask": [0] * prompt + [1] * completion})
    T = max(len(x["ids"]) for x in examples) - 1
    current = (torch.randn(len(examples) * T, V, generator=g) * 1.5).float()
    old = (current + torch.randn(len(examples) * T, V, generator=g) * 0.5).float()
    reference = (current + torch.randn(len(examples) * T, V, generator=g) * 0.8).float()
    # The sampler's log-probs of each taken token (0 on the prompt), stored as float32.
    lsm_old = torch.log_softmax(old.double(), dim=-1)
    for e, x in enumerate(examples):
        x["behaviour"] = [0.0] + [
            float(torch.tensor(lsm_old[e * T + t, x["ids"][t + 1]].item()).float()) if x["loss_mask"][t + 1] else 0.0
            for t in range(len(x["ids"]) - 1)]
    return examples, T, current, reference, old


def behaviour_at(examples, T, old, temperature):
    """The sampler's log-probs of the taken tokens at a sampling temperature: log_softmax(old / τ),
    float32, 0 on the prompt."""
    lsm = torch.log_softmax(old.double() / temperature, dim=-1)
    return [[0.0] + [float(torch.tensor(lsm[e * T + t, x["ids"][t + 1]].item()).float()) if x["loss_mask"][t + 1] else 0.0
                     for t in range(len(x["ids"]) - 1)] for e, x in enumerate(examples)]


def grpo_loss(examples, T, current, reference, advantages, loss_type, eps_low, eps_high, beta, bias_correction=True,
              tokens_per_step=None, temperature=1.0, behaviour=None, level="token", delta=None, top_entropy=1.0,
              off_policy=None, entropy_coef=0.0, sapo_temperatures=(1.0, 1.05), vespo=(2.0, 3.0, 3.0, 2.0), on_policy=False):
    """TRL's _compute_loss on padded completions; returns (loss, dL/dlogits [rows, V]). At a
    temperature τ the policy's and the reference's logits are divided by τ first, as TRL's
    GRPOTrainer computes every log-prob (its fused LM head's `temperature`), and `behaviour`
    holds the sampler's log-probs at τ; the entropy metric is then of softmax(logits / τ)."""
    B = len(examples)
    logits = current.double().clone().requires_grad_(True)
    lsm = torch.log_softmax(logits / temperature, dim=-1)
    lsm_ref = torch.log_softmax(reference.double() / temperature, dim=-1)
    Lc = max(sum(x["loss_mask"]) for x in examples)
    logp = torch.zeros(B, Lc, dtype=torch.float64)
    old = torch.zeros(B, Lc, dtype=torch.float64)
    ref = torch.zeros(B, Lc, dtype=torch.float64)
    mask = torch.zeros(B, Lc, dtype=torch.float64)
    rows = []
    for e, x in enumerate(examples):
        k = 0
        for t in range(len(x["ids"]) - 1):
            if not x["loss_mask"][t + 1]:
                continue
            y = x["ids"][t + 1]
            rows.append((e, k))
            logp = logp.index_put((torch.tensor([e]), torch.tensor([k])), lsm[e * T + t, y].reshape(1))
            old[e, k] = (behaviour[e] if behaviour is not None else x["behaviour"])[t + 1]
            ref[e, k] = lsm_ref[e * T + t, y]
            mask[e, k] = 1
            k += 1
    if on_policy:   # a generation's first step: TRL's old log-probs are the live ones, detached
        old = logp.detach().clone()
    A = torch.tensor(advantages, dtype=torch.float64).unsqueeze(1)
    log_ratio = logp - old
    if level == "sequence":   # GSPO: one ratio per rollout, [B, 1]
        log_w = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    else:
        log_w = log_ratio
    coef_1 = torch.exp(log_w)
    kl = None
    if beta != 0:
        per_token_kl = torch.exp(ref - logp) - (ref - logp) - 1
        if bias_correction:
            per_token_kl = per_token_kl * coef_1
        kl = ((per_token_kl * mask).sum() / mask.sum()).item()
    if loss_type == "cispo":   # MiniMax-M1: the weight clipped at ε_max = epsilon_high and detached
        clamped_ratios = torch.clamp(coef_1, max=eps_high).detach()
        per_token_loss = -clamped_ratios * A * logp
    elif loss_type == "vespo":   # TRL's get_gamma_weights: φ of the summed log-ratio, detached; −φ·A·logp
        import math
        log_w_seq = torch.clamp((torch.clamp(log_ratio, -20.0, 20.0) * mask).sum(-1, keepdim=True), math.log(1e-8), 20.0)
        nonneg = A >= 0
        k = torch.where(nonneg, torch.tensor(vespo[0], dtype=torch.float64), torch.tensor(vespo[2], dtype=torch.float64))
        lam = torch.where(nonneg, torch.tensor(vespo[1], dtype=torch.float64), torch.tensor(vespo[3], dtype=torch.float64)).clamp(min=1e-4)
        # φ in float32, as TRL computes it in the policy's dtype: beyond float32's range it is inf, read as 0.
        log_phi = (lam + k * log_w_seq - lam * torch.exp(log_w_seq)).float()
        phi_seq = torch.exp(log_phi).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0).double().detach()
        per_token_loss = -phi_seq * A * logp
    elif loss_type == "sapo":   # SAPO's soft gate, τ_pos where A > 0, else τ_neg; no delta
        temperatures = torch.where(A > 0, torch.tensor(sapo_temperatures[0], dtype=torch.float64),
                                   torch.tensor(sapo_temperatures[1], dtype=torch.float64))
        per_token_loss = -(torch.sigmoid(temperatures * (coef_1 - 1)) * 4 / temperatures) * A
    else:
        coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
        if delta is not None:   # two-sided clipping (INTELLECT-2): after coef_2 and the KL, as TRL
            coef_1 = torch.clamp(coef_1, max=delta)
        per_token_loss = -torch.min(coef_1 * A, coef_2 * A)
    off_policy_ratio = None
    if off_policy is not None:
        # TRL's get_off_policy_mask (DeepSeek-V3.2, arXiv 2512.02556, §3.1, Eq. 9): a rollout with
        # A < 0 whose mean (sampling − current, detached) log-prob over its tokens exceeds δ drops
        # its policy-gradient term; before the KL joins. Float32, as TRL's log-probs.
        kl_div = (old.float() - logp.detach().float())
        avg = (kl_div * mask.float()).sum(dim=1, keepdim=True) / mask.float().sum(dim=1, keepdim=True).clamp(min=1.0)
        keep = ((A.float() >= 0) | (avg <= off_policy)).double()
        per_token_loss = per_token_loss * keep
        present = mask.sum(-1) > 0
        off_policy_ratio = (1 - keep.squeeze(1))[present].mean().item()
    entropy_mask = None
    if top_entropy < 1.0:
        # TRL's get_high_entropy_mask: the (1 − ρ) float32 torch.quantile of the loss tokens'
        # entropies (of softmax(logits / τ), detached), tokens at or above it; before the KL joins.
        p_all = lsm.detach().exp()
        ent_rows = -(p_all * lsm.detach()).sum(-1)
        entropies = torch.zeros(B, Lc, dtype=torch.float64)
        for e, x in enumerate(examples):
            k = 0
            for t in range(len(x["ids"]) - 1):
                if x["loss_mask"][t + 1]:
                    entropies[e, k] = ent_rows[e * T + t]
                    k += 1
        gathered = entropies[mask.bool()].float()
        threshold = torch.quantile(gathered, 1 - top_entropy)
        entropy_mask = ((entropies.float() * mask.float()) >= threshold) & mask.bool()
        per_token_loss = per_token_loss * entropy_mask
    if beta != 0:
        per_token_loss = per_token_loss + beta * per_token_kl
    if loss_type in ["grpo", "sapo"]:
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "luspo":   # the rollout's summed tokens, averaged over rollouts
        loss = (per_token_loss * mask).sum(-1).mean()
    elif loss_type == "bnpo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (B * MAX_COMPLETION_LENGTH)
    elif loss_type in ["dapo", "cispo", "vespo"]:
        loss = (per_token_loss * mask).sum() / (tokens_per_step if tokens_per_step is not None else mask.sum())
    if entropy_coef != 0.0:
        # TRL's entropy bonus: loss − c·(mean entropy of softmax(logits / τ) over the effective
        # mask: the completion mask, times the entropy mask under top_entropy_quantile), not
        # detached, whatever the loss type.
        ent_rows = -(lsm.exp() * lsm).sum(-1)
        entropies = torch.zeros(B, Lc, dtype=torch.float64)
        for e, x in enumerate(examples):
            k = 0
            for t in range(len(x["ids"]) - 1):
                if x["loss_mask"][t + 1]:
                    entropies = entropies.index_put((torch.tensor([e]), torch.tensor([k])), ent_rows[e * T + t].reshape(1))
                    k += 1
        effective = mask if entropy_mask is None else mask * entropy_mask.double()
        loss = loss - entropy_coef * (entropies * effective).sum() / effective.sum().clamp(min=1.0)
    loss.backward()
    # TRL's clip metrics: token means over the completion mask of the whole batch.
    low = ((coef_1 < 1 - eps_low) & (A < 0)).double()
    high = ((coef_1 > 1 + eps_high) & (A > 0)).double()
    region = ((low + high) > 0).double()
    # TRL's global_masked_mean: a [B, 1] (sequence-level) value is averaged over the rollouts.
    if loss_type == "cispo":   # TRL logs cispo_clip_ratio instead of clip_ratio/*
        clipped = ((coef_1 > eps_high) & (A > 0)).double()
        clip = {"cispo_clip_ratio": ((clipped * mask).sum() / mask.sum()).item()}
    elif loss_type == "sapo":   # TRL logs no clip figure for sapo
        clip = {}
    elif loss_type == "vespo":   # TRL's one figure: the mean φ over the [B, 1] rollouts
        clip = {"vespo/phi_seq_mean": phi_seq.mean().item()}
    else:
        clip = {name: (x.mean() if x.shape[1] == 1 else (x * mask).sum() / mask.sum()).item()
                for name, x in [("clip_ratio/low_mean", low), ("clip_ratio/high_mean", high), ("clip_ratio/region_mean", region)]}
    if kl is not None:
        clip["kl"] = kl
    if off_policy_ratio is not None:
        clip["off_policy_mask_ratio"] = off_policy_ratio
    if temperature != 1.0:
        p = lsm.detach().exp()
        per_row = -(p * lsm.detach()).sum(-1)
        rows_in_loss = [e * T + t for e, x in enumerate(examples) for t in range(len(x["ids"]) - 1) if x["loss_mask"][t + 1]]
        clip["entropy"] = per_row[rows_in_loss].mean().item()
    return loss.item(), logits.grad, clip


def chord_loss(examples, T, current, advantages, expert, mu, phi, eps, clip_c=3.0):
    """Trinity-RFT's MIXCHORDPolicyLossFn on the same batch, `expert` marking demonstrations:
    (1 − μ)·token-mean PPO over rollout tokens + μ·token-mean of −sg(w)·logp over expert tokens,
    w = p(1 − p) (CHORD-φ) or 1 (CHORD-μ); the PPO term with verl's dual clip for A < 0,
    min(ℓ, −A·clip_ratio_c)."""
    logits = current.double().clone().requires_grad_(True)
    lsm = torch.log_softmax(logits, dim=-1)
    rl, sft, n_rl, n_sft = 0.0, 0.0, 0, 0
    for e, x in enumerate(examples):
        for t in range(len(x["ids"]) - 1):
            if not x["loss_mask"][t + 1]:
                continue
            logp = lsm[e * T + t, x["ids"][t + 1]]
            if expert[e]:
                w = (logp.exp() * (1 - logp.exp())).detach() if phi else 1.0
                sft = sft - w * logp
                n_sft += 1
            else:
                ratio = torch.exp(logp - x["behaviour"][t + 1])
                A = advantages[e]
                pg = -torch.min(ratio * A, torch.clamp(ratio, 1 - eps, 1 + eps) * A)
                if A < 0:
                    pg = torch.min(pg, torch.tensor(-A * clip_c, dtype=pg.dtype))
                rl = rl + pg
                n_rl += 1
    loss = (1 - mu) * rl / n_rl + mu * sft / n_sft
    loss.backward()
    return loss.item(), logits.grad


def main():
    g = torch.Generator().manual_seed(20261212)
    examples, T, current, reference, old = make_batch(g)
    advantages = [float(torch.tensor(a).float()) for a in trl_advantages(REWARDS, 3, "group")]
    for x, a in zip(examples, advantages):
        x["advantage"] = a
    configs = []
    for loss_type in ["grpo", "bnpo", "dr_grpo", "dapo"]:
        for eps_low, eps_high, beta, correct in [(0.2, 0.2, 0.0, True), (0.1, 0.3, 0.05, True), (0.1, 0.3, 0.05, False)]:
            loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, loss_type, eps_low, eps_high, beta, correct)
            args = {"loss_type": loss_type, "epsilon": str(eps_low), "epsilon_high": str(eps_high), "beta": str(beta)}
            if not correct:
                args["use_bias_correction_kl"] = "false"
            configs.append({"args": args, "loss": loss, "grad": grad.tolist(), "clip": clip})
    # importance_sampling_level "sequence" (GSPO) at every aggregation, with and without the KL's
    # ratio; delta (two-sided clipping) at both levels.
    for loss_type in ["grpo", "bnpo", "dr_grpo", "dapo"]:
        # (ε = 0.01: a sequence's ratio, a geometric mean, rarely leaves ±0.2 on this batch.)
        for eps_low, eps_high, beta, correct in [(0.2, 0.2, 0.0, True), (0.1, 0.3, 0.05, True), (0.1, 0.3, 0.05, False), (0.01, 0.01, 0.0, True)]:
            loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, loss_type, eps_low, eps_high, beta, correct,
                                         level="sequence")
            args = {"loss_type": loss_type, "epsilon": str(eps_low), "epsilon_high": str(eps_high), "beta": str(beta),
                    "importance_sampling_level": "sequence"}
            if not correct:
                args["use_bias_correction_kl"] = "false"
            configs.append({"args": args, "loss": loss, "grad": grad.tolist(), "clip": clip})
    # δ = 1.1 < 1 + ε_high: where δ < c1 ≤ 1 + ε_high and A < 0, min picks the clipped term, whose
    # gradient is live (a hostile review found it dropped).
    for level, loss_type, delta in [("token", "grpo", 1.5), ("token", "dapo", 1.5), ("sequence", "grpo", 1.02), ("token", "dapo", 1.1)]:
        loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, loss_type, 0.1, 0.3, 0.05, True, level=level, delta=delta)
        configs.append({"args": {"loss_type": loss_type, "epsilon": "0.1", "epsilon_high": "0.3", "beta": "0.05",
                                 "importance_sampling_level": level, "delta": str(delta)},
                        "loss": loss, "grad": grad.tolist(), "clip": clip})
    # A generation's first step (ratio exactly 1) with a clip bound at 1 (ε = 0 on either side): the
    # ratio ties the clipped term, torch.min splits the gradient, and torch.clamp passes none on
    # its bound, so such tokens carry half the gradient; with ε > 0 the whole of it.
    for loss_type, eps_low, eps_high, beta, level in [("grpo", 0.0, 0.0, 0.05, "token"), ("dapo", 0.2, 0.0, 0.0, "token"),
                                                      ("dr_grpo", 0.0, 0.2, 0.05, "token"), ("bnpo", 0.2, 0.2, 0.05, "token"),
                                                      ("grpo", 0.0, 0.0, 0.0, "sequence")]:
        loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, loss_type, eps_low, eps_high, beta, True,
                                     level=level, on_policy=True)
        args = {"loss_type": loss_type, "epsilon": str(eps_low), "epsilon_high": str(eps_high), "beta": str(beta)}
        if level == "sequence":
            args["importance_sampling_level"] = level
        configs.append({"args": args, "on_policy": True, "loss": loss, "grad": grad.tolist(), "clip": clip})
    # cispo: ε_max 5 (ScaleRL's), 1.1 (so some weights are clipped), with the KL and the entropy mask.
    # Neither epsilon (beside epsilon_high) nor delta acts under cispo (TRL applies delta outside its
    # cispo branch): sft-dist refuses them there, so the arguments leave them out.
    for eps_high, beta, rho in [(5.0, 0.0, 1.0), (1.1, 0.05, 1.0), (1.1, 0.0, 0.3)]:
        loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, "cispo", 0.2, eps_high, beta, True, top_entropy=rho)
        args = {"loss_type": "cispo", "epsilon_high": str(eps_high), "beta": str(beta)}
        if rho < 1.0:
            args["top_entropy_quantile"] = str(rho)
        configs.append({"args": args, "loss": loss, "grad": grad.tolist(), "clip": clip})
    # cispo in a generation of two steps: dapo's normaliser, the generation's loss tokens per step.
    tokens = sum(sum(x["loss_mask"]) for x in examples)
    loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, "cispo", 0.2, 1.1, 0.0, True, (tokens + 17) / 2)
    configs.append({"args": {"loss_type": "cispo", "epsilon_high": "1.1", "beta": "0.0"},
                    "loss_tokens_per_step": (tokens + 17) / 2, "loss": loss, "grad": grad.tolist(), "clip": clip})
    # top_entropy_quantile (the PPO term on the highest-entropy tokens only) at both levels.
    for level, loss_type, rho in [("token", "dapo", 0.2), ("token", "grpo", 0.5), ("sequence", "grpo", 0.2), ("token", "dr_grpo", 0.0)]:
        loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, loss_type, 0.1, 0.3, 0.05, True, level=level,
                                     top_entropy=rho)
        configs.append({"args": {"loss_type": loss_type, "epsilon": "0.1", "epsilon_high": "0.3", "beta": "0.05",
                                 "importance_sampling_level": level, "top_entropy_quantile": str(rho)},
                        "loss": loss, "grad": grad.tolist(), "clip": clip})
    # off_policy_mask_threshold (DeepSeek-V3.2's off-policy sequence mask) and entropy_coef (the
    # entropy bonus), alone and together, at both levels, with the KL and the entropy mask. The
    # rollouts with A < 0 are 1, 3 and 5, their mean drifts (sampling − current) 0.092, −0.547 and
    # 0.105: δ 0.1 masks rollout 5, 0.05 rollouts 1 and 5, −0.6 all three.
    for level, loss_type, opm, coef, rho, beta in [("token", "dapo", 0.1, 0.0, 1.0, 0.05), ("token", "grpo", -0.6, 0.0, 1.0, 0.0),
                                                  ("sequence", "grpo", 0.05, 0.0, 1.0, 0.05), ("token", "dapo", None, 0.05, 1.0, 0.0),
                                                  ("token", "bnpo", None, 0.3, 0.3, 0.05), ("sequence", "dr_grpo", None, 0.2, 1.0, 0.0),
                                                  ("token", "cispo", 0.1, 0.1, 0.5, 0.05), ("sequence", "grpo", 0.1, -0.1, 0.4, 0.0)]:
        eps_high = 1.1 if loss_type == "cispo" else 0.3
        loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, loss_type, 0.1, eps_high, beta, True, level=level,
                                     top_entropy=rho, off_policy=opm, entropy_coef=coef)
        args = {"loss_type": loss_type, "epsilon": "0.1", "epsilon_high": str(eps_high), "beta": str(beta), "importance_sampling_level": level}
        if loss_type == "cispo":
            del args["epsilon"]   # beside epsilon_high it does nothing there (refused)
        if opm is not None:
            args["off_policy_mask_threshold"] = str(opm)
        if coef != 0.0:
            args["entropy_coef"] = str(coef)
        if rho < 1.0:
            args["top_entropy_quantile"] = str(rho)
        configs.append({"args": args, "loss": loss, "grad": grad.tolist(), "clip": clip})
    # SAPO (arXiv 2511.20347): the soft gate at both levels, with the KL, other temperatures and the
    # entropy mask; LUSPO (arXiv 2602.05261): GSPO's term summed over each rollout's tokens.
    for loss_type, level, beta, temps, rho, eps in [("sapo", "token", 0.0, None, 1.0, 0.2), ("sapo", "token", 0.05, (0.5, 2.0), 1.0, 0.2),
                                                   ("sapo", "sequence", 0.05, None, 1.0, 0.2), ("sapo", "token", 0.0, (2.0, 3.0), 0.3, 0.2),
                                                   ("luspo", "sequence", 0.0, None, 1.0, 0.2), ("luspo", "sequence", 0.05, None, 1.0, 0.01),
                                                   ("vespo", "token", 0.0, None, 1.0, 0.2), ("vespo", "token", 0.05, None, 0.3, 0.2)]:
        loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, loss_type, eps, eps, beta, True, level=level,
                                     top_entropy=rho, sapo_temperatures=temps or (1.0, 1.05))
        args = {"loss_type": loss_type, "beta": str(beta), "importance_sampling_level": level}
        if loss_type == "luspo":   # (sapo's gate and vespo's weight have no clip: their epsilon is refused)
            args["epsilon"], args["epsilon_high"] = str(eps), str(eps)
        if temps is not None:
            args["sapo_temperature_pos"], args["sapo_temperature_neg"] = str(temps[0]), str(temps[1])
        if rho < 1.0:
            args["top_entropy_quantile"] = str(rho)
        configs.append({"args": args, "loss": loss, "grad": grad.tolist(), "clip": clip})
    # VESPO with other Gamma parameters (k, λ per advantage sign), and in a generation of two steps.
    loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, "vespo", 0.2, 0.2, 0.05, True, vespo=(1.0, 0.5, 4.0, 6.0))
    configs.append({"args": {"loss_type": "vespo", "beta": "0.05", "vespo_k_pos": "1.0",
                             "vespo_lambda_pos": "0.5", "vespo_k_neg": "4.0", "vespo_lambda_neg": "6.0"},
                    "loss": loss, "grad": grad.tolist(), "clip": clip})
    # k_neg 40, λ_neg 0.01: rollout 3 (A < 0, summed log-ratio 2.7) has log φ ≈ 109, beyond float32: φ = 0, as TRL's.
    loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, "vespo", 0.2, 0.2, 0.0, True, vespo=(2.0, 3.0, 40.0, 0.01))
    configs.append({"args": {"loss_type": "vespo", "beta": "0.0", "vespo_k_neg": "40.0", "vespo_lambda_neg": "0.01"},
                    "loss": loss, "grad": grad.tolist(), "clip": clip})
    tokens = sum(sum(x["loss_mask"]) for x in examples)
    loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, "vespo", 0.2, 0.2, 0.0, True, (tokens + 17) / 2)
    configs.append({"args": {"loss_type": "vespo", "beta": "0.0"},
                    "loss_tokens_per_step": (tokens + 17) / 2, "loss": loss, "grad": grad.tolist(), "clip": clip})
    # dapo in a generation of two steps: this batch and one with 17 loss tokens.
    tokens = sum(sum(x["loss_mask"]) for x in examples)
    per_step = (tokens + 17) / 2
    loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, "dapo", 0.2, 0.2, 0.0, True, per_step)
    configs.append({"args": {"loss_type": "dapo", "epsilon": "0.2", "epsilon_high": "0.2", "beta": "0.0"},
                    "loss_tokens_per_step": per_step, "loss": loss, "grad": grad.tolist(), "clip": clip})
    # Rollouts sampled at temperature 0.7: every log-prob at τ, the behaviour's too.
    tau = 0.7
    behaviour_tau = behaviour_at(examples, T, old, tau)
    tempered = []
    for loss_type, eps_low, eps_high, beta in [("dapo", 0.2, 0.2, 0.0), ("grpo", 0.1, 0.3, 0.05)]:
        loss, grad, clip = grpo_loss(examples, T, current, reference, advantages, loss_type, eps_low, eps_high, beta,
                                     temperature=tau, behaviour=behaviour_tau)
        tempered.append({"args": {"loss_type": loss_type, "epsilon": str(eps_low), "epsilon_high": str(eps_high), "beta": str(beta)},
                         "loss": loss, "grad": grad.tolist(), "clip": clip})
    # mask_truncated_completions: rollout 5 reached max_completion_length (7) without an end
    # token; TRL zeroes its completion mask after scoring (`completion_mask * ~is_truncated`), so
    # its advantage stays in its group, its tokens leave the loss and the token counts, and it
    # still counts in grpo's and dr_grpo's B.
    truncated = 5
    masked = [dict(x, loss_mask=[0] * len(x["loss_mask"])) if e == truncated else x for e, x in enumerate(examples)]
    masked_configs = []
    for loss_type in ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"]:
        level = "sequence" if loss_type == "luspo" else "token"
        loss, grad, clip = grpo_loss(masked, T, current, reference, advantages, loss_type, 0.1, 0.3, 0.05, True, level=level)
        args = {"loss_type": loss_type, "beta": "0.05"}
        if loss_type not in ("sapo", "vespo"):
            args["epsilon"], args["epsilon_high"] = "0.1", "0.3"
        if loss_type == "cispo":
            del args["epsilon"]   # beside epsilon_high it does nothing there (refused)
        if level == "sequence":
            args["importance_sampling_level"] = level
        masked_configs.append({"args": args, "loss": loss, "grad": grad.tolist(), "clip": clip})
    # At the sequence level the masked rollout still counts in the [B, 1] clip figures (ratio 1);
    # ε = 0.01 so that some rollouts' ratios are clipped and the denominator shows.
    loss, grad, clip = grpo_loss(masked, T, current, reference, advantages, "grpo", 0.01, 0.01, 0.05, True, level="sequence")
    masked_configs.append({"args": {"loss_type": "grpo", "epsilon": "0.01", "epsilon_high": "0.01", "beta": "0.05",
                                    "importance_sampling_level": "sequence"}, "loss": loss, "grad": grad.tolist(), "clip": clip})
    # CHORD: rollouts 1 and 4 replaced by demonstrations; μ at step 1 of a cosine decay
    # (W = 0, D = 4, peak 0.6, valley 0.1): 0.5·½(1 + cos(π/4)) + 0.1.
    import math
    expert = [False, True, False, False, True, False]
    mu = 0.5 * 0.5 * (1 + math.cos(math.pi / 4)) + 0.1
    chord = []
    # The dual clip at the default 3 bites on one rollout token (ratio 3.72 with A < 0), at
    # 1.05 on six.
    for phi, clip_c in [(True, 3.0), (False, 3.0), (True, 1.05)]:
        loss, grad = chord_loss(examples, T, current, advantages, expert, mu, phi, 0.2, clip_c)
        args = {"mu_peak": "0.6", "mu_valley": "0.1", "mu_warmup": "0", "mu_decay": "4", "phi": "true" if phi else "false"}
        if clip_c != 3.0:
            args["clip_ratio_c"] = str(clip_c)
        chord.append({"args": args, "loss": loss, "grad": grad.tolist()})
    out = {
        "vocab": V, "seq_len": T, "max_completion_length": MAX_COMPLETION_LENGTH,
        "advantages": [{"rewards": r, "group_size": G,
                        "expected": {s: trl_advantages(r, G, s) for s in ["group", "batch", "none"]},
                        "metrics": trl_reward_metrics(r, G)}
                       for r, G in ADVANTAGE_CASES],
        "examples": examples,
        "logits": {"current": current.tolist(), "reference": reference.tolist()},
        "configurations": configs,
        "chord_expert": expert,
        "chord": chord,
        "temperature": {"value": tau, "behaviour": behaviour_tau, "configurations": tempered},
        "truncated": {"rollout": truncated, "configurations": masked_configs},
    }
    write_fixture(OUT, out, f"{len(configs)} configurations, {len(examples)} rollouts, {len(ADVANTAGE_CASES)} advantage cases")


if __name__ == "__main__":
    main()
