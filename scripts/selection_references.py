"""Independent references for the online selectors (issue 13), written from the formulas
with numpy and torch, not from the Swift code:
  - UDS (arXiv 2510.16882): nuclear norm = sum of numpy.linalg.svd singular values; the JL
    sketch with torch.fft exactly as the authors' FastJLProjector (pad to T, *d2, FFT over the
    vocabulary, real part, columns idx2, *sqrt(V/r2); *d1, FFT over time, real part, rows idx1,
    *sqrt(T/r1)); diversity = mean Euclidean distance (torch.cdist) to a queue of sketches;
    score = utility + alpha * diversity, top keep.
  - Q-Tuning (arXiv 2509.23873): token NLL and entropy from log_softmax; sample PPL and
    entropy; numpy.quantile thresholds; the alpha = beta bisection (raising alpha while more
    than the budget is kept); quadrants; neighbour-smoothed token PPL; lowest scores kept.
Writes Tests/TrainingTests/Fixtures/selection-references.json.
"""
import math
import sys

import numpy as np
import torch

from reference_fixtures import write_fixture

rng = np.random.default_rng(20261201)
f32 = lambda a: np.asarray(a, dtype=np.float32)


def uds_case():
    V, T, r1, r2 = 16, 24, 3, 5
    d1 = rng.choice([-1.0, 1.0], size=T)
    d2 = rng.choice([-1.0, 1.0], size=V)
    idx1 = rng.integers(0, T, size=r1)
    idx2 = rng.integers(0, V, size=r2)

    def sketch(L):
        X = torch.zeros(T, V, dtype=torch.float64)
        X[: L.shape[0]] = torch.tensor(L, dtype=torch.float64)
        X = X * torch.tensor(d2)
        X = torch.fft.fft(X, dim=-1).real[:, idx2] * math.sqrt(V / r2)
        X = X * torch.tensor(d1).view(T, 1)
        X = torch.fft.fft(X, dim=0).real[idx1, :] * math.sqrt(T / r1)
        return X.reshape(-1).numpy()

    def logits(n, scale):
        return f32(rng.normal(size=(n, V)) * scale)

    previous = [logits(n, s) for n, s in [(5, 1.0), (9, 2.0), (4, 0.5)]]
    # The last candidate has more rows than V: the nuclear norm's other Gram matrix.
    pool = [logits(n, s) for n, s in [(6, 1.0), (3, 3.0), (11, 0.7), (8, 1.5), (7, 0.2), (20, 1.0)]]
    queue = np.stack([sketch(L.astype(np.float64)) for L in previous])
    utility = [float(np.linalg.svd(L.astype(np.float64), compute_uv=False).sum()) for L in pool]
    sketches = [sketch(L.astype(np.float64)) for L in pool]
    diversity = torch.cdist(torch.tensor(np.stack(sketches)), torch.tensor(queue)).mean(dim=1).numpy()
    alpha, keep = 0.05, 2
    score = np.array(utility) + alpha * diversity
    chosen = sorted(np.argsort(-score, kind="stable")[:keep].tolist())
    return dict(V=V, T=T, d1=d1.tolist(), d2=d2.tolist(), idx1=idx1.tolist(), idx2=idx2.tolist(),
                previous=[L.tolist() for L in previous], pool=[L.tolist() for L in pool],
                utility=utility, sketches=[s.tolist() for s in sketches], diversity=diversity.tolist(),
                alpha=alpha, keep=keep, chosen=chosen)


def quantile_classes(ppl, ent, a):
    t = (np.quantile(ppl, a), np.quantile(ppl, 1 - a), np.quantile(ent, a), np.quantile(ent, 1 - a))
    out = []
    for p, e in zip(ppl, ent):
        pc = "high" if p >= t[1] else ("low" if p < t[0] else "mid")
        ec = "high" if e >= t[3] else ("low" if e < t[2] else "mid")
        q = {("high", "high"): 1, ("high", "low"): 2, ("high", "mid"): 2, ("low", "low"): 3, ("low", "mid"): 3,
             ("mid", "low"): 3, ("low", "high"): 4, ("mid", "high"): 4, ("mid", "mid"): 4}[(pc, ec)]
        out.append(q)
    return out


def qtuning_case():
    V, N = 16, 14
    budget, token_budget, lam, iters = 0.6, 0.5, 0.5, 10
    cands = []
    for i in range(N):
        prompt = int(rng.integers(1, 4))
        m = int(rng.integers(3, 9))
        n = prompt + m  # rows: positions 0..n-1 predict ids 1..n
        scale = float(rng.choice([0.3, 1.0, 3.0, 6.0]))
        L = f32(rng.normal(size=(n, V)) * scale)
        ids = rng.integers(0, V, size=n + 1)
        # Some candidates' targets are the argmax (low PPL), others random.
        if i % 3 == 0:
            ids[1:] = L.argmax(axis=1)
        mask = [0] * (prompt + 1) + [1] * m
        cands.append(dict(logits=L, ids=ids.tolist(), mask=mask))
    ppl, ent, tok_nll = [], [], []
    for c in cands:
        lp = torch.log_softmax(torch.tensor(c["logits"], dtype=torch.float64), dim=-1)
        rows = [t - 1 for t in range(1, len(c["ids"])) if c["mask"][t]]
        nll = [float(-lp[r, c["ids"][r + 1]]) for r in rows]
        h = [float(-(lp[r].exp() * lp[r]).sum()) for r in rows]
        tok_nll.append(nll)
        ppl.append(math.exp(np.mean(nll)))
        ent.append(float(np.mean(h)))
    lo, hi = 0.0, 0.49
    for _ in range(iters):
        a = (lo + hi) / 2
        q = quantile_classes(ppl, ent, a)
        kept = sum(1 for x in q if x in (2, 4)) / N
        if kept > budget:
            lo = a
        else:
            hi = a
    quadrants = quantile_classes(ppl, ent, a)
    selected = [i for i, x in enumerate(quadrants) if x in (2, 4)]
    masks = []
    for i in selected:
        mask = list(cands[i]["mask"])
        if quadrants[i] == 2:
            p = np.exp(np.array(tok_nll[i]))
            m = len(p)
            s = [(1 - lam) * p[k] + lam * ((p[k - 1] if k > 0 else p[k]) + (p[k + 1] if k < m - 1 else p[k])) / 2 for k in range(m)]
            keep = set(np.argsort(s, kind="stable")[: max(1, int(m * token_budget))].tolist())
            positions = [t for t in range(1, len(mask)) if mask[t]]
            for k, t in enumerate(positions):
                if k not in keep:
                    mask[t] = 0
            masks.append(mask)
        else:
            masks.append([])
    return dict(V=V, budget=budget, token_budget=token_budget, **{"lambda": lam}, iterations=iters,
                candidates=[dict(logits=c["logits"].tolist(), ids=c["ids"], mask=c["mask"]) for c in cands],
                ppl=ppl, entropy=ent, alpha=a, quadrants=quadrants, selected=selected, masks=masks)


out = dict(uds=uds_case(), qtuning=qtuning_case())
path = sys.argv[1] if len(sys.argv) > 1 else "Tests/TrainingTests/Fixtures/selection-references.json"
q = out["qtuning"]
write_fixture(path, out, f"uds chosen {out['uds']['chosen']}; q-tuning quadrants {q['quadrants']}, alpha {q['alpha']:.4f}, "
              f"selected {len(q['selected'])}/{len(q['quadrants'])}", compact=False)
