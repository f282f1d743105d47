"""Independent reference for sft-dist's DPO objective (run through scripts/make-dpo-reference).

Written from the paper's loss (Rafailov et al., arXiv:2305.18290, §4, Eq. 7) in PyTorch, with
the gradient by autograd, on preference pairs of several tokens with prompt tokens out of the
loss (the prompt of a pair is shared, the answers differ in length):

  log π(y|x) = Σ_t M_t log softmax(z_t)[y_t],    r(y) = β (log π_θ(y|x) − log π_ref(y|x))
  L = mean over the P pairs of −log σ(r(y_w) − r(y_l))
  rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies: means over pairs,
  as TRL's DPOTrainer logs them.

Writes Tests/TrainingTests/Fixtures/dpo-reference.json: the examples (pair i = examples 2i
chosen, 2i + 1 rejected), the current and reference logits per (example, position), and per β
the loss, dL/dlogits and the reward means.
"""
import torch

from reference_fixtures import fixture_path, write_fixture

OUT = fixture_path("dpo-reference.json")

V = 11
# (prompt length, chosen length, rejected length) per pair
PAIRS = [(2, 4, 3), (1, 5, 5), (3, 2, 4), (2, 3, 1)]
BETAS = [0.1, 0.5]


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


def dpo(examples, current, reference, beta):
    z = current.clone().requires_grad_(True)

    def seq_logp(logits, e):
        x = examples[e]
        total = logits.new_zeros(())
        for t in range(1, len(x["ids"])):
            if x["loss_mask"][t]:
                total = total + torch.log_softmax(logits[e, t - 1], -1)[x["ids"][t]]
        return total

    pairs = len(examples) // 2
    rw = torch.stack([beta * (seq_logp(z, 2 * i) - seq_logp(reference, 2 * i)) for i in range(pairs)])
    rl = torch.stack([beta * (seq_logp(z, 2 * i + 1) - seq_logp(reference, 2 * i + 1)) for i in range(pairs)])
    loss = -torch.nn.functional.logsigmoid(rw - rl).mean()
    loss.backward()
    rw, rl = rw.detach(), rl.detach()
    return {"beta": beta, "loss": loss.item(), "grad": z.grad.reshape(-1, V).tolist(),
            "rewards_chosen": rw.mean().item(), "rewards_rejected": rl.mean().item(),
            "rewards_margins": (rw - rl).mean().item(), "rewards_accuracies": (rw > rl).double().mean().item()}


def main():
    examples, T, current, reference = make_batch()
    out = {"vocab": V, "seq_len": T, "examples": examples,
           "logits": {"current": current.reshape(-1, V).tolist(), "reference": reference.reshape(-1, V).tolist()},
           "references": [dpo(examples, current, reference, b) for b in BETAS]}
    accuracies = out["references"][0]["rewards_accuracies"]
    assert 0 < accuracies < 1, "the batch should hold pairs ranked both ways"
    write_fixture(OUT, out, f"{len(examples) // 2} pairs, losses " + ", ".join(f"{r['loss']:.6f}" for r in out["references"]),
                  compact=False, newline=True)


if __name__ == "__main__":
    main()
