"""Independent reference for sft-dist's tpo objective (Triple Preference Optimization, arXiv
2405.16681), run through scripts/make-tpo-references, from TRL 1.16's own code: the loss, its
figures and, by autograd, dL/dlogits of trl.experimental.tpo's TPOTrainer._compute_loss, called
as it is on a batch its DataCollatorForTriplePreference lays out (chosen rows, rejected rows,
then the gold `reference` rows, right-padded, with a completion mask), with a model whose
logits are given. TRL's collator drops the gold rows at tpo_alpha 0, and so does the batch here.

The batch: P triples, each a shared prompt and three answers of different lengths; the first
id of every sequence is its row in the Swift test's logit table (pair i's chosen answer at 2i,
rejected at 2i + 1, gold at 2P + i), so the table's gradient is dL/dlogits.

Writes Tests/TrainingTests/Fixtures/tpo-reference.json.
"""
import types
from collections import defaultdict

import torch
from trl.experimental.tpo.tpo_trainer import DataCollatorForTriplePreference, TPOTrainer

from reference_fixtures import fixture_path, write_fixture

OUT = fixture_path("tpo-reference.json")
V = 7
# (prompt tokens, chosen, rejected, gold answer tokens)
TRIPLES = [(3, 2, 4, 3), (2, 5, 1, 2), (4, 3, 3, 5), (2, 1, 2, 3)]   # 11 chosen, 13 gold answer tokens
# (loss_type, beta, label_smoothing, tpo_alpha, tpo_l_gamma)
CONFIGS = [("sigmoid", 0.01, 0.0, 1.0, 0.5), ("sigmoid", 0.5, 0.1, 0.5, 0.5), ("hinge", 0.5, 0.0, 1.0, 0.5),
           ("ipo", 0.5, 0.0, 2.0, 0.5), ("tpo-l", 2.0, 0.0, 1.0, 0.5), ("tpo-l", 2.0, 0.1, 0.3, 1.0),
           ("sigmoid", 0.5, 0.0, 0.0, 0.5)]
FIGURES = ["entropy", "logits/chosen", "logits/rejected", "mean_token_accuracy", "rewards/chosen",
           "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"]


def make_batch():
    g = torch.Generator().manual_seed(11)
    P = len(TRIPLES)
    sides, golds = [], []
    for i, (prompt, *answers) in enumerate(TRIPLES):
        shared = torch.randint(0, V, (prompt - 1,), generator=g).tolist()
        rows = [2 * i, 2 * i + 1, 2 * P + i]
        made = [{"ids": [row] + shared + torch.randint(0, V, (n,), generator=g).tolist(), "loss_mask": [0] * prompt + [1] * n}
                for row, n in zip(rows, answers)]
        sides += made[:2]
        golds.append(made[2])
    T = max(len(x["ids"]) for x in sides + golds) - 1
    logits = torch.randn(3 * P, T, V, generator=g, dtype=torch.float64) * 1.5
    return sides, golds, T, logits


def reference(sides, golds, T, table, loss_type, beta, eps, tpo_alpha, gamma):
    P = len(golds)
    # The collator's input: prompt ids and each answer's ids (the first id is the table row, so it is the "prompt").
    def split(x):
        k = x["loss_mask"].index(1)
        return x["ids"][:k], x["ids"][k:]
    examples = []
    for i in range(P):
        prompt, chosen = split(sides[2 * i])
        _, rejected = split(sides[2 * i + 1])
        _, gold = split(golds[i])
        examples.append({"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected, "reference_ids": gold})
    collator = DataCollatorForTriplePreference(pad_token_id=0, include_reference=tpo_alpha != 0.0)
    batch = collator.torch_call(examples)
    # The rows of the collated batch in the table: chosen i → 2i, rejected i → 2i + 1, gold i → 2P + i.
    # The three prompts differ in their first id only, which is never a label: the collator's rows
    # (the chosen answer's prompt for all three) are the table's sequences from the second id on.
    rows = [2 * i for i in range(P)] + [2 * i + 1 for i in range(P)] + ([2 * P + i for i in range(P)] if tpo_alpha != 0.0 else [])
    table_rows = sides + golds
    for b, e in enumerate(rows):
        x = table_rows[e]
        assert batch["input_ids"][b, 1:len(x["ids"])].tolist() == x["ids"][1:]
        assert batch["completion_mask"][b].sum().item() == sum(x["loss_mask"])
    L = batch["input_ids"].shape[1]
    z = torch.zeros(len(rows), L, V, dtype=torch.float64)
    for b, e in enumerate(rows):
        n = min(T, L)
        z[b, :n] = table[e, :n]
    z.requires_grad_(True)
    model = lambda **kw: types.SimpleNamespace(logits=z)
    identity = lambda x: x
    me = types.SimpleNamespace(model=types.SimpleNamespace(training=True), tpo_alpha=tpo_alpha, loss_type=loss_type, beta=beta,
                               label_smoothing=eps, tpo_l_gamma=gamma, _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
                               _total_train_tokens=0, _tp_size=1,
                               accelerator=types.SimpleNamespace(gather_for_metrics=identity, gather=identity))
    loss = TPOTrainer._compute_loss(me, model, batch, False)
    loss.backward()
    grad = torch.zeros(3 * P, T, V, dtype=torch.float64)
    for b, e in enumerate(rows):
        n = min(T, L)
        grad[e, :n] = z.grad[b, :n]
        assert L <= n or z.grad[b, n:].abs().max().item() == 0   # past the table: padding and the last position
    figures = {k: me._metrics["train"][k][0] for k in FIGURES}
    return {"loss_type": loss_type, "beta": beta, "label_smoothing": eps, "tpo_alpha": tpo_alpha, "tpo_l_gamma": gamma,
            "loss": loss.item(), "grad": grad.reshape(-1, V).tolist(), "figures": figures}


def main():
    torch.set_default_dtype(torch.float64)
    sides, golds, T, table = make_batch()
    refs = [reference(sides, golds, T, table, *c) for c in CONFIGS]
    out = {"vocab": V, "seq_len": T, "examples": sides, "golds": golds, "logits": table.reshape(-1, V).tolist(), "references": refs}
    write_fixture(OUT, out, f"{len(golds)} triples, losses " + ", ".join(f"{r['loss']:.6f}" for r in refs), compact=False, newline=True)


if __name__ == "__main__":
    main()
