"""Independent reference for sft-dist's kto objective (run through scripts/make-kto-references),
from TRL 1.16's own code: `KTOTrainer._compute_loss` (and the `_compute_kl_logps` it calls) on a
batch made by TRL's own `DataCollatorForUnpairedPreference`, with the mismatched answers of the
KL term rotated by one as TRL's `_prepare_dataset` rotates them ([y_n, y_1, ..., y_{n-1}]).

KTO (Ethayarajh et al., arXiv 2402.01306, Eq. 7): with r = log pi(y|x) - log pi_ref(y|x), summed
over the answer's tokens, and z0 = max(0, mean over the mismatched pairs of r), detached, each
desirable row's loss is 1 - sigmoid(beta (r - z0)), each undesirable one's 1 - sigmoid(beta (z0 - r)),
weighted by desirable_weight / undesirable_weight, the loss their mean. apo_zero_unpaired (APO,
arXiv 2408.06266): 1 - sigmoid(beta r) and sigmoid(beta r), no KL term.

The "model" is a table of logits, one row per (example, position), looked up by a sequence's
first token (its example's index) and the position, as the Swift tests' LogitTableModel does:
a mismatched sequence starts with its prompt's example, so it reads that example's rows. The
table stands in for the model TRL calls with `fused_lm_head=True`: it returns the per-token
log-probs of the labels (0 where a label is -100), the entropy and the mean logit, shifted as
TRL's fused head shifts them. dL/dlogits is autograd's gradient of the table. Logits are float64.
Two logit sets: one where the KL estimate is positive, and the same with policy and reference
swapped, where it is negative and TRL's clamp makes it 0.

Writes Tests/TrainingTests/Fixtures/kto-reference.json.
"""
import types
from collections import defaultdict

import torch
from trl.trainer.kto_trainer import DataCollatorForUnpairedPreference, KTOTrainer

from reference_fixtures import fixture_path, write_fixture

OUT = fixture_path("kto-reference.json")
V = 11
# (prompt length including the example's index token, answer length, label) per row, in batch order.
ROWS = [(2, 3, True), (1, 4, False), (3, 2, True), (2, 2, False), (1, 3, False), (2, 4, True), (3, 1, False)]
# (loss_type, beta, desirable_weight, undesirable_weight, swapped)
CONFIGS = [("kto", 0.1, 1.0, 1.0, False), ("kto", 0.5, 1.0, 1.0, False), ("kto", 1.0, 1.33, 0.8, False),
           ("kto", 0.5, 1.0, 1.0, True), ("apo_zero_unpaired", 0.1, 1.0, 1.0, False),
           ("apo_zero_unpaired", 0.5, 1.2, 1.0, False)]


def make_rows():
    g = torch.Generator().manual_seed(7)
    rows = []
    for e, (p, a, label) in enumerate(ROWS):
        ids = [e] + torch.randint(0, V, (p - 1 + a,), generator=g).tolist()
        rows.append({"ids": ids, "loss_mask": [0] * p + [1] * a, "label": label, "prompt": p})
    return rows


class Table:
    """The logit table as the model TRL calls: `model(input_ids=..., labels=..., fused_lm_head=True)`."""

    def __init__(self, logits):
        self.logits = logits

    def __call__(self, input_ids, labels, fused_lm_head, **kwargs):
        assert fused_lm_head
        B, L = input_ids.shape
        z = torch.stack([self.logits[int(input_ids[b, 0])][:L] for b in range(B)])[:, :-1]
        target = labels[:, 1:]
        mask = target != -100
        lp = torch.log_softmax(z, -1)
        log_probs = lp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1).masked_fill(~mask, 0)
        entropy = -(lp.exp() * lp).sum(-1).masked_fill(~mask, 0)
        return types.SimpleNamespace(log_probs=log_probs, entropy=entropy, mean_logits=z.mean(-1).masked_fill(~mask, 0),
                                     aux_loss=None)


def trl_loss(rows, current, reference, loss_type, beta, dw, uw):
    examples = [{"prompt_ids": r["ids"][:r["prompt"]], "completion_ids": r["ids"][r["prompt"]:], "label": r["label"]} for r in rows]
    kl = loss_type != "apo_zero_unpaired"
    if kl:
        completions = [x["completion_ids"] for x in examples]
        for x, c in zip(examples, [completions[-1]] + completions[:-1]):
            x["KL_completion_ids"] = c
    batch = DataCollatorForUnpairedPreference(pad_token_id=0)(examples)
    z = current.clone().requires_grad_(True)
    metrics = {"train": defaultdict(list)}
    trained = torch.nn.Module()   # what `self.model` is asked: training mode, not PEFT, no checkpointing
    trained.is_gradient_checkpointing = False
    me = types.SimpleNamespace(model=trained,
                               accelerator=types.SimpleNamespace(device="cpu", gather_for_metrics=lambda x: x),
                               aux_loss_enabled=False, precompute_ref_logps=False, ref_model=Table(reference),
                               calculate_KL=kl, loss_type=loss_type, beta=beta, desirable_weight=dw, undesirable_weight=uw,
                               _metrics=metrics, _total_train_tokens=0, _tp_size=1,
                               args=types.SimpleNamespace(gradient_checkpointing_kwargs=None))
    me._compute_kl_logps = types.MethodType(KTOTrainer._compute_kl_logps, me)
    loss = KTOTrainer._compute_loss(me, Table(z), batch, False)
    loss.backward()
    m = {k: v[-1] for k, v in metrics["train"].items() if k != "num_tokens"}
    return loss.item(), z.grad.reshape(-1, V).tolist(), m


def main():
    torch.set_default_dtype(torch.float64)
    rows = make_rows()
    T = max(len(r["ids"]) for r in rows) + max(r["prompt"] for r in rows)   # every mismatched sequence fits
    g = torch.Generator().manual_seed(11)
    current = torch.randn(len(rows), T, V, generator=g) * 1.5
    reference = current + torch.randn(len(rows), T, V, generator=g) * 0.8
    refs = []
    for loss_type, beta, dw, uw, swapped in CONFIGS:
        cur, ref = (reference, current) if swapped else (current, reference)
        loss, grad, m = trl_loss(rows, cur, ref, loss_type, beta, dw, uw)
        refs.append({"loss_type": loss_type, "beta": beta, "desirable_weight": dw, "undesirable_weight": uw,
                     "swapped": swapped, "loss": loss, "grad": grad, "metrics": m})
    kls = [r["metrics"]["kl"] for r in refs if r["loss_type"] == "kto"]
    assert kls[0] > 0 and kls[-1] == 0, f"one positive KL estimate and one clamped to 0: {kls}"
    out = {"vocab": V, "seq_len": T, "examples": [{k: r[k] for k in ("ids", "loss_mask", "label")} for r in rows],
           "logits": current.reshape(-1, V).tolist(), "reference": reference.reshape(-1, V).tolist(), "references": refs}
    write_fixture(OUT, out, f"{len(rows)} rows, losses " + ", ".join(f"{r['loss']:.6f}" for r in refs) + f", kl {kls}",
                  compact=False, newline=True)


if __name__ == "__main__":
    main()
