"""One real TRL SFTTrainer step against `sft-dist train --steps 1` on the committed
transformers fixtures (Tests/ModelsTests/Fixtures/hf/), for each loss mask TRL offers:
prompt/completion rows with completion_only_loss True and False, {"text"} rows (language
modeling: every token), conversations with
assistant_only_loss False (TRL's default; True needs a training template with
{% generation %} tags, which the fixtures' templates do not have).

The whole file is one batch (every row in one step, one micro-batch), so TRL's shuffling
does not matter: both losses are the sum of token losses over the trained tokens, divided
by their count. TRL's loss is read from compute_loss (its log rounds to 4 digits); bf16=False,
since TRL's configs turn bf16 autocast on by default, which moves the loss by ~1e-3.

transformers (5.25) divides by `num_items_in_batch`, counted over labels[..., 1:] only for models
whose loss_type maps to ForCausalLMLoss; GPT2LMHeadModel has none, so when position 0 has a
label (every token trained, no BOS) it is counted though nothing predicts it. The table shows
that divisor beside the predicted labels, and compares TRL's loss rescaled to the predicted
count (TRL × divisor / predicted) when the two differ.

Then num_train_epochs: a few TRL runs with a batch size that does not divide the rows, whose
step count and logged `epoch` values sft-dist's `--num-train-epochs` must give exactly, and,
after whole epochs, the same `num_tokens`.

  scripts/trl-sft-check                 # prints tables; exit 1 if a case differs
"""
import contextlib, io, json, math, os, subprocess, sys, tempfile

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

ROOT = os.path.join(os.path.dirname(__file__), "..")
FIXTURES = os.path.join(ROOT, "Tests/ModelsTests/Fixtures/hf")
BIN = os.environ.get("SFT_DIST_BIN", "sft-dist")


class Recording(SFTTrainer):
    """Keeps the exact loss of each compute_loss call and the number of trained labels."""
    seen = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        loss = out[0] if return_outputs else out
        labels = inputs["labels"]
        Recording.seen.append((loss.item(), int((labels[:, 1:] != -100).sum()), int(num_items_in_batch)))
        return out


def trl_loss(model_dir, rows, **mask):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(model_dir)
    with tempfile.TemporaryDirectory() as out:
        cfg = SFTConfig(output_dir=out, max_steps=1, per_device_train_batch_size=len(rows), gradient_accumulation_steps=1,
                        learning_rate=1e-6, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
                        max_length=256, packing=False, dataloader_drop_last=False, seed=0, bf16=False, **mask)
        Recording.seen = []
        trainer = Recording(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            trainer.train()
    assert len(Recording.seen) == 1, Recording.seen
    return Recording.seen[0]


def ours(model_dir, path, flags):
    with tempfile.TemporaryDirectory() as out:
        n = sum(1 for _ in open(path))
        args = [BIN, "train", "--model", model_dir, "--data", path, "--heldout", path, "--steps", "1",
                "--batch-size", str(n), "--micro-batch-size", str(n), "--max-length", "256", "--lr", "1e-6",
                "--eval-every", "0", "--eval-examples", "0", "--quiet", "--out", out + "/run"] + flags
        subprocess.run(args, check=True)
        for line in open(out + "/run/metrics.jsonl"):
            row = json.loads(line)
            if "loss" in row:
                return row["loss"]
    raise SystemExit("no training row in metrics.jsonl")


def trl_epochs(model_dir, rows, epochs, batch):
    """The epoch TRL logs after each optimizer step of num_train_epochs."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(model_dir)
    with tempfile.TemporaryDirectory() as out:
        cfg = SFTConfig(output_dir=out, num_train_epochs=epochs, disable_tqdm=True, per_device_train_batch_size=batch, gradient_accumulation_steps=1,
                        learning_rate=1e-6, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
                        max_length=256, packing=False, dataloader_drop_last=False, seed=0, bf16=False)
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            trainer.train()   # (its progress bars and log lines)
        logged = [h for h in trainer.state.log_history if "loss" in h]
        return [round(h["epoch"], 6) for h in logged], logged[-1]["num_tokens"]


def our_epochs(model_dir, path, epochs, batch):
    with tempfile.TemporaryDirectory() as out:
        args = [BIN, "train", "--model", model_dir, "--data", path, "--heldout", path, "--num-train-epochs", str(epochs),
                "--batch-size", str(batch), "--max-length", "256", "--lr", "1e-6",
                "--eval-every", "0", "--eval-examples", "0", "--quiet", "--out", out + "/run"]
        subprocess.run(args, check=True)
        logged = [r for r in map(json.loads, open(out + "/run/metrics.jsonl")) if "loss" in r]
        return [round(r["epoch"], 6) for r in logged], logged[-1]["num_tokens"]


def check_epochs(pc):
    print(f"{'rows':>4} {'batch':>5} {'epochs':>6} {'TRL steps':>9} {'sft-dist':>8} {'num_tokens':>15}  epochs logged")
    same = True
    model_dir = os.path.join(FIXTURES, "models", "llama")
    with tempfile.TemporaryDirectory() as tmp:
        for n, batch, epochs in [(len(pc), 5, 2), (len(pc), 7, 1.5), (10, 4, 3)]:
            path = os.path.join(tmp, f"rows-{n}.jsonl")
            with open(path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in pc[:n])
            (t, t_tokens), (s, s_tokens) = trl_epochs(model_dir, pc[:n], epochs, batch), our_epochs(model_dir, path, epochs, batch)
            # num_tokens (every token of the rows trained, summed) after whole epochs: TRL shuffles
            # the rows, so only a whole number of passes has the same total.
            tokens_same = t_tokens == s_tokens or epochs != int(epochs)
            same = same and t == s and tokens_same
            shown = " ".join(f"{e:g}" for e in t)
            tokens = f"{t_tokens:g}/{s_tokens:g}" + ("" if tokens_same else " DIFFERENT")
            print(f"{n:4} {batch:5} {epochs:6g} {len(t):9} {len(s):8} {tokens:>15}  {'same' if t == s else 'DIFFERENT'}: {shown}", flush=True)
            if t != s:
                print(f"  sft-dist: {' '.join(f'{e:g}' for e in s)}")
    return same


def main():
    rows = [json.loads(l) for l in open(os.path.join(FIXTURES, "data/chat.jsonl"))]
    pc = [r for r in rows if "prompt" in r]
    chat = [r for r in rows if "messages" in r]
    text = [{"text": r["prompt"] + r["completion"]} for r in pc]   # language modeling rows
    cases = []
    for name in ["gpt2", "llama", "qwen2"]:
        cases.append((name, "prompt/completion", pc, dict(completion_only_loss=True), []))
        cases.append((name, "prompt/completion", pc, dict(completion_only_loss=False), ["--no-completion-only-loss"]))
        cases.append((name, "text", text, dict(dataset_text_field="text"), []))
        if os.path.exists(os.path.join(FIXTURES, "models", name, "chat_template.jinja")):
            # Transcripts the model's template rendered, as text rows: their special tokens count.
            tok = AutoTokenizer.from_pretrained(os.path.join(FIXTURES, "models", name))
            rendered = [{"text": tok.apply_chat_template(r["messages"], tokenize=False)} for r in chat]
            # Llama 3's template writes <|begin_of_text|>, and tokenizer(text) adds another: TRL
            # would train two BOS, sft-dist adds none to a text that starts with it. TRL gets the
            # text without it, so both see the same ids.
            bos = tok.bos_token if tok("x")["input_ids"][:1] == [tok.bos_token_id] else None
            for_trl = [{"text": r["text"][len(bos):] if bos and r["text"].startswith(bos) else r["text"]} for r in rendered]
            cases.append((name, "rendered text", rendered, dict(dataset_text_field="text"), [], for_trl))
            cases.append((name, "messages", chat, dict(assistant_only_loss=False), ["--no-assistant-only-loss"]))
            # TRL's conversational prompt/completion: the turns before the last reply, and the reply.
            split = [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in chat
                     if r["messages"][-1]["role"] == "assistant" and r["messages"][-2]["role"] != "assistant"]
            cases.append((name, "conv. prompt/compl.", split, dict(assistant_only_loss=False), ["--no-assistant-only-loss"]))
            cases.append((name, "conv. prompt/compl.", split, dict(completion_only_loss=False, assistant_only_loss=False),
                          ["--no-assistant-only-loss", "--no-completion-only-loss"]))
    worst = 0.0
    print(f"{'model':6} {'rows':18} {'TRL setting':28} {'TRL loss':>10} {'rescaled':>10} {'sft-dist':>10} {'|diff|':>9}  predicted/divisor")
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind, data, mask, flags, *trl_data in cases:
            path = os.path.join(tmp, f"{name}-{len(data)}-{kind[0]}.jsonl")
            with open(path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in data)
            model_dir = os.path.join(FIXTURES, "models", name)
            t, labels, divisor = trl_loss(model_dir, trl_data[0] if trl_data else data, **mask)
            s = ours(model_dir, path, flags)
            rescaled = t * divisor / labels
            d = abs(rescaled - s)
            worst = max(worst, d / max(abs(t), 1e-12))
            setting = ", ".join(f"{k}={v}" for k, v in mask.items())
            shown = f"{rescaled:10.6f}" if divisor != labels else f"{'':10}"
            print(f"{name:6} {kind:18} {setting:28} {t:10.6f} {shown} {s:10.6f} {d:9.2e}  {labels}/{divisor}", flush=True)
    print(f"worst relative difference {worst:.2e}\n")
    epochs_same = check_epochs(pc)
    sys.exit(0 if worst <= 1e-5 and epochs_same else 1)


main()
