"""Independent references for sft-dist's twelve training objectives (run through
scripts/make-objective-references).

Each objective is written here from its paper's formula in PyTorch, with the gradient taken by
autograd (stop-gradients as `.detach()`), not from sft-dist's hand-derived gradients. The batch
is several multi-token sequences with prompt tokens out of the loss, one optimizer step, every
objective at its default arguments. The normalisers are the global counts of the whole step
(sft-dist's rule, which makes results rank-count invariant):

  nll          L = Σ ℓ / N                                         (TRL SFTTrainer, B)
  nll ε=0.1    L = Σ [(1−ε)ℓ + (ε/V)Σ_v −log p_v] / N               (transformers LabelSmoother)
  dft          L = Σ −sg(p) log p / N                              arXiv 2508.05629
  p            L = Σ (1 − p) / N                                   arXiv 2510.00526
  power        L = Σ (1 − p^α)/α / N, α = 10                       arXiv 2510.00526 (GeneralFamily)
  threshold    L = Σ (1 − p)·1[sg(p) ≥ q] / #selected, q = 0.5    arXiv 2510.00526 (OnlyTopP)
  asft         L = Σ [−sg(p) log p + λ KL(π_ref ‖ π_θ)] / N, λ=0.1 arXiv 2509.23753
  psft         L = Σ −min(r, clip(r, 1−0.2, 1+0.28)) / N,          arXiv 2508.17784
               r = exp(clamp(log π_θ − sg(log π_old), −20, 20))
  talr         L = Σ sg(max(max(p,1e-6)^{1/τ}, 0.01))·ℓ / N,       arXiv 2509.20758 (reimpl.)
               τ = lower median over sequences of the mean token loss
  iwsft        L = Σ_b Σ_t sg(clip(exp(mean_t(log p − log p_ref)), 0, 16))·ℓ / N   arXiv 2507.12856
  otr          E over the K = 8 draws a ~ softmax(sg(z)/τ), τ = 1, β = −0.1 of     arXiv 2509.26313
               L = −(c/K) log p_y − (β/K) Σ_{a_k ≠ y} log p_{a_k},  c = max(#hits, 1):
               E[c] = K·π(y) + (1 − π(y))^K, E[Σ_{wrong} onehot(a_k)]_v = K·π(v) (v ≠ y)
  token-clean  keep the global top ⌈0.6·N⌉ loss tokens by sg(ℓ_base − ℓ_ref),   arXiv 2502.01968
               L = Σ_kept ℓ / |kept|; ℓ_base by the initial weights (`old`, what the
               harness's model holds when the trainer scores), or by θ with scores=online
  forgetting   P = global top ⌈0.7·N⌉ by sg(ℓ_base − ℓ_ref), N = the rest,      arXiv 2508.04329
               L = Σ_P ℓ/|P| − λ(s) Σ_N 1[sg(p) > 0.01]·ℓ/|N|, λ(s) = (0.25 − 1e-5)·s/S

OTR samples, so its reference is the expectation over the draws (loss and gradient are linear
in the draw counts); the Swift test averages the trainer's result over many steps.

Writes Tests/TrainingTests/Fixtures/objective-references.json: the examples (token ids and
loss masks), the current, reference and old-policy logits per (example, position), and per
objective the loss and dL/dlogits.
"""
import math

import torch

from reference_fixtures import fixture_path, write_fixture

OUT = fixture_path("objective-references.json")

V = 12            # vocabulary
STEP, TOTAL_STEPS = 1, 4
# (prompt length, completion length) per example; the first id of each example is its index,
# which is how the test's logit-table model finds the example's rows.
SHAPES = [(2, 4), (1, 6), (3, 3), (2, 5), (1, 2), (3, 4)]


def make_batch():
    g = torch.Generator().manual_seed(20261201)
    examples = []
    for e, (prompt, completion) in enumerate(SHAPES):
        ids = [e] + torch.randint(0, V, (prompt + completion - 1,), generator=g).tolist()
        mask = [0] * prompt + [1] * completion
        examples.append({"ids": ids, "loss_mask": mask})
    T = max(len(x["ids"]) for x in examples) - 1
    rows = len(examples) * T
    current = torch.randn(rows, V, generator=g) * 2
    # Half of the loss tokens predicted confidently, so top-p selection and p^10 have mass.
    for e, x in enumerate(examples):
        for t in range(len(x["ids"]) - 1):
            if (e + t) % 2 == 0:
                current[e * T + t, x["ids"][t + 1]] += 6
    reference = current + torch.randn(rows, V, generator=g) * 1.5
    old = current + torch.randn(rows, V, generator=g) * 0.6
    # float32, as the fixture stores and the trainer computes; the references below in float64.
    return examples, T, current.float(), reference.float(), old.float()


def loss_rows(examples, T):
    """(table row, target, sequence) for every loss token, in example order."""
    out = []
    for e, x in enumerate(examples):
        for t in range(len(x["ids"]) - 1):
            if x["loss_mask"][t + 1]:
                out.append((e * T + t, x["ids"][t + 1], e))
    return out


def assert_margin(gap, what):
    """A selection decided by less than float32 round-off could differ between this float64
    reference and the float32 trainer: the batch must keep every decision clear of it."""
    if float(gap) < 1e-4:
        raise SystemExit(f"{what}: a token is within {float(gap):.2e} of the threshold; change the seed")


def objectives(rows, n_seq, ref_z, old_z, functions=None):
    """name, args, f(z) → scalar loss over the table of live logits z (float64)."""
    idx = torch.tensor([r for r, _, _ in rows])
    y = torch.tensor([t for _, t, _ in rows])
    seq = torch.tensor([s for _, _, s in rows])
    N = len(rows)

    def logp_all(z):
        return torch.log_softmax(z[idx], dim=-1)

    def logp_y(z):
        return logp_all(z).gather(1, y[:, None])[:, 0]

    def nll(z):
        return (-logp_y(z)).sum() / N

    def nll_smoothed(z, eps=0.1):
        lp = logp_all(z)
        return ((1 - eps) * -lp.gather(1, y[:, None])[:, 0] + eps / z.shape[-1] * (-lp).sum(-1)).sum() / N

    def dft(z):
        lp = logp_y(z)
        return (-lp.exp().detach() * lp).sum() / N

    def p_loss(z):
        return (1 - logp_y(z).exp()).sum() / N

    def power(z, alpha=10.0):
        return ((1 - logp_y(z).exp() ** alpha) / alpha).sum() / N

    def threshold(z, q=0.5):
        p = logp_y(z).exp()
        assert_margin((p.detach() - q).abs().min(), "top-p selection")
        selected = (p.detach() >= q).double()
        return (selected * (1 - p)).sum() / selected.sum()

    def asft(z, lam=0.1):
        lp_all = logp_all(z)
        lp = lp_all.gather(1, y[:, None])[:, 0]
        lq = torch.log_softmax(ref_z[idx], dim=-1)
        kl = (lq.exp() * (lq - lp_all)).sum(-1)
        return (-lp.exp().detach() * lp + lam * kl).sum() / N

    def psft(z, lo=0.2, hi=0.28):
        lp = logp_y(z)
        lp_old = torch.log_softmax(old_z[idx], dim=-1).gather(1, y[:, None])[:, 0]
        r = torch.exp(torch.clamp(lp - lp_old, -20, 20))
        return (-torch.minimum(r, torch.clamp(r, 1 - lo, 1 + hi))).sum() / N

    def talr(z, floor=0.01, tau=None):
        lp = logp_y(z)
        ell = -lp.detach()
        if tau is None:
            means = torch.stack([ell[seq == s].mean() for s in range(n_seq) if (seq == s).any()])
            tau = max(torch.sort(means).values[(len(means) - 1) // 2].item(), 1e-6)
        w = torch.clamp(torch.clamp(lp.detach().exp(), min=1e-6) ** (1 / tau), min=floor)
        return (w * -lp).sum() / N

    def iwsft(z, temp=1.0, w_max=16.0):
        lp = logp_y(z)
        lp_ref = torch.log_softmax(ref_z[idx], dim=-1).gather(1, y[:, None])[:, 0]
        w = torch.zeros(N, dtype=z.dtype)
        for s in range(n_seq):
            sel = seq == s
            if sel.any():
                w[sel] = torch.clamp(torch.exp(temp * (lp.detach()[sel] - lp_ref[sel]).mean()), 0, w_max)
        return (w * -lp).sum() / N

    def otr_expected(z, k=8, tau=1.0, beta=-0.1):
        lp_all = logp_all(z)
        pi = torch.softmax(z[idx].detach() / tau, dim=-1)
        pi_y = pi.gather(1, y[:, None])[:, 0]
        expected_c = k * pi_y + (1 - pi_y) ** k
        wrong = pi.scatter(1, y[:, None], 0.0)          # K·π(v) draws of each wrong v, ÷ K
        per_token = -(expected_c / k) * lp_all.gather(1, y[:, None])[:, 0] - beta * (wrong * lp_all).sum(-1)
        return per_token.sum() / N

    def excess_selection(z, ratio, fixed=True):
        lp = logp_y(z)
        lp_ref = torch.log_softmax(ref_z[idx], dim=-1).gather(1, y[:, None])[:, 0]
        # ℓ_base − ℓ_ref: fixed (the papers'), ℓ_base by the initial weights — the harness's
        # model holds `old` when the trainer is built; online, by the current model.
        lp_base = logp_y(old_z) if fixed else lp
        score = (lp_ref - lp_base).detach()
        kept = math.ceil(ratio * N)
        ordered = torch.sort(score, descending=True).values
        assert_margin(ordered[kept - 1] - ordered[kept], "excess-loss selection")
        return lp, score >= ordered[kept - 1]

    def token_clean(z, ratio=0.6, fixed=True):
        lp, keep = excess_selection(z, ratio, fixed)
        return -(lp * keep).sum() / keep.sum()

    def token_clean_online(z):
        return token_clean(z, fixed=False)

    def forgetting(z, ratio=0.7, lam_max=0.25, lam_min=1e-5, p_floor=0.01, step=STEP, total_steps=TOTAL_STEPS, fixed=True):
        lp, keep = excess_selection(z, ratio, fixed)
        lam = (lam_max - lam_min) * step / total_steps
        assert_margin((lp.detach().exp() - p_floor).abs().min(), "forgetting's p_floor gate")
        ascend = (~keep) & (lp.detach().exp() > p_floor)
        return -(lp * keep).sum() / keep.sum() + lam * (lp * ascend).sum() / (~keep).sum()

    def forgetting_online(z):
        return forgetting(z, fixed=False)

    if functions is not None:
        functions.update({k: v for k, v in locals().items() if callable(v)})
    return [("nll", {}, nll), ("nll", {"label_smoothing": "0.1"}, nll_smoothed), ("dft", {}, dft),
            ("p", {}, p_loss), ("power", {}, power), ("threshold", {}, threshold), ("asft", {}, asft),
            ("psft", {}, psft), ("talr", {}, talr), ("iwsft", {}, iwsft), ("otr", {}, otr_expected),
            ("token-clean", {}, token_clean), ("token-clean", {"scores": "online"}, token_clean_online),
            ("forgetting", {}, forgetting), ("forgetting", {"scores": "online"}, forgetting_online)]


def vectors():
    """The single-token vectors ObjectiveVectorTests checks (V = 4, target logit ln(3p/(1−p)),
    the others 0, so the target has probability p), recomputed from the formulas above."""
    def one(p):
        return [math.log(3 * p / (1 - p)), 0.0, 0.0, 0.0]
    uniform = [0.0] * 4
    cases = [  # (function, keyword arguments, target probabilities, reference row, old row)
        ("nll", {}, [0.2], None, None), ("nll", {}, [0.9], None, None),
        ("nll_smoothed", {"eps": 0.1}, [0.2], None, None), ("nll_smoothed", {"eps": 0.1}, [0.9], None, None),
        ("p_loss", {}, [0.2], None, None), ("p_loss", {}, [0.9], None, None),
    ] + [("power", {"alpha": a}, [p], None, None) for a in (10.0, 8.0, 2.0) for p in (0.2, 0.9)] + [
        ("threshold", {"q": 0.5}, [0.9], None, None),
        ("dft", {}, [0.2], None, None), ("dft", {}, [0.9], None, None),
    ] + [("asft", {"lam": lam}, [p], uniform, None) for lam in (0.1, 0.05) for p in (0.2, 0.9)] + [
        ("psft", {}, [p], None, one(p_old)) for p_old, p in ((0.2, 0.2), (0.2, 0.25), (0.2, 0.3), (0.2, 0.1), (0.9, 0.9))
    ] + [("talr", {"tau": t}, [p], None, None) for t in (1.0, 0.5, 2.0) for p in (0.2, 0.9)] + [
        ("iwsft", {}, [p], one(p_ref), None) for p, p_ref in ((0.2, 0.5), (0.9, 0.5), (0.9, 0.05))
    ] + [("forgetting", {"ratio": 0.5, "lam_max": 0.5, "lam_min": 0.0, "step": 2, "total_steps": 4},
          [0.2, 0.9], [uniform, uniform], None)]
    for name, kw, ps, ref, old in cases:
        rows = [(i, 0, i) for i in range(len(ps))]
        def table(row):
            rows_ = row if row is not None and isinstance(row[0], list) else [row] * len(ps)
            return torch.tensor(rows_ if row is not None else [one(p) for p in ps], dtype=torch.float64)
        functions = {}
        objectives(rows, len(ps), table(ref), table(old), functions)
        z = torch.tensor([one(p) for p in ps], dtype=torch.float64, requires_grad=True)
        loss = functions[name](z, **kw)
        (grad,) = torch.autograd.grad(loss, z)
        dz = ", ".join(f"{grad[i, 0].item():.6g}" for i in range(len(ps)))
        print(f"{name:13} {str(kw):70} p={ps}: L = {loss.item():.6f}, dL/dz_y = {dz}")


def main():
    examples, T, current, reference, old = make_batch()
    rows = loss_rows(examples, T)
    ref64, old64 = reference.double(), old.double()
    records = []
    for name, args, f in objectives(rows, len(examples), ref64, old64):
        z = current.double().clone().requires_grad_(True)
        loss = f(z)
        (grad,) = torch.autograd.grad(loss, z)
        records.append({"name": name, "args": args, "loss": loss.item(), "grad": grad.tolist()})
    out = {
        "generator": "scripts/make-objective-references (scripts/objective_references.py)",
        "torch": torch.__version__,
        "vocab": V, "seq_len": T, "step": STEP, "total_steps": TOTAL_STEPS,
        "examples": examples,
        "logits": {"current": current.tolist(), "reference": reference.tolist(), "old": old.tolist()},
        "objectives": records,
    }
    write_fixture(OUT, out, f"{len(records)} objectives, {len(rows)} loss tokens in {len(examples)} sequences", newline=True)


if __name__ == "__main__":
    import sys
    vectors() if sys.argv[1:] == ["vectors"] else main()
