"""Reward-model fixtures: transformers' *ForSequenceClassification with num_labels=1, as TRL's
RewardTrainer trains them (run through scripts/make-hf-fixtures).

`reward-models` writes only new files under Tests/ModelsTests/Fixtures/hf/:
  models/gpt2-reward/     GPT2ForSequenceClassification, models/gpt2's shape and tokenizer files;
                          config.pad_token_id = eos (0), as TRL sets it for GPT-2 (no pad token), so
                          transformers reads the reward at the last token that is not <|endoftext|>.
  models/llama-reward/    LlamaForSequenceClassification, models/llama's shape and tokenizer files;
                          config.pad_token_id = 621 (<|end_of_text|>: in the vocabulary, neither eos
                          <|eot_id|> nor used in the texts), so the reward is read at the eos token.
  expected/{gpt2,llama}-reward.json   per text: ids, the position the reward is read from, and the
                          rewards on a right-padded batch and one text at a time.
Texts are prompt + completion + the eos token's text (RewardTrainer's add_eos for non-conversational
data), tokenised as TRL's _tokenize does: tokenizer(text=...) with its default add_special_tokens=True
(the gpt2 fixture tokenizer adds nothing; the llama3 one prepends <|begin_of_text|> itself).

`peft-reward-adapters` writes peft/{gpt2,llama}-reward-by-peft/: LoRA reward models peft saves
(task_type SEQ_CLS: the score head in modules_to_save) on models/{gpt2,llama}, and
expected/peft-{gpt2,llama}-reward-by-peft.json: peft's rewards on the texts above.
`check-reward-adapter BASE ADAPTER SCORES.jsonl` compares `sft-dist score --model BASE --adapter
ADAPTER`'s rewards with peft's (the base loaded with AutoModelForSequenceClassification, the pad
as TRL's RewardTrainer sets it: the tokenizer's, else its eos).

`check-reward DIR SCORES.jsonl` loads DIR with AutoModelForSequenceClassification (no missing or
unexpected key allowed) and compares each line's `reward` with transformers' on its `ids` alone.
"""
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer,
                          GPT2ForSequenceClassification, LlamaForSequenceClassification)

from hf_fixtures import OUT, randomize
from peft_fixtures import save_adapter

TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]

PAIRS = [  # (prompt, completion): lengths vary, the third much shorter than the rest
    ("user: what is 12 + 30?\nassistant:", " 42"),
    ("Hello world! I'm here, you're there, it's fine.", " The model reads tokens and learns to predict the next one."),
    ("Hi", "!"),
    ("def f3(x):\n", "    return x * 3 + 3\n"),
    ("café naïve résumé", " 日本語 😀 12345"),
]


def load_checked(d):
    """AutoModelForSequenceClassification on d; exits unless every key matched and num_labels == 1."""
    model, info = AutoModelForSequenceClassification.from_pretrained(
        d, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
    if bad or model.config.num_labels != 1:
        print(f"LOAD FAILED for {d}: {bad or ''} num_labels={model.config.num_labels}")
        sys.exit(1)
    model.eval()
    return model


def reward_one(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, 0].item()


def build(name, source, cls, seed, pad_token_id):
    src = os.path.join(OUT, "models", source)
    d = os.path.join(OUT, "models", name)
    tok = AutoTokenizer.from_pretrained(src)
    config = AutoConfig.from_pretrained(src, num_labels=1, pad_token_id=pad_token_id)
    config.dtype = torch.float32
    config._attn_implementation = "eager"
    model = cls(config)
    randomize(model, seed)
    model.eval()
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True)
    for f in TOKENIZER_FILES:  # the tokenizer files as models/<source> has them, byte for byte
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(d, f))
    if os.path.exists(os.path.join(d, "generation_config.json")):
        os.remove(os.path.join(d, "generation_config.json"))

    model = load_checked(d)
    texts = [p + c + tok.eos_token for p, c in PAIRS]
    ids = [tok(text=t)["input_ids"] for t in texts]  # as TRL's _tokenize: add_special_tokens defaults to True
    assert all(i[-1] == tok.eos_token_id for i in ids)
    if pad_token_id != tok.eos_token_id:
        assert all(pad_token_id not in i for i in ids)
    L = max(map(len, ids))
    assert L <= config.get_text_config().max_position_embeddings
    batch = torch.full((len(ids), L), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(ids), L), dtype=torch.long)
    for r, i in enumerate(ids):
        batch[r, :len(i)] = torch.tensor(i)
        mask[r, :len(i)] = 1
    with torch.no_grad():
        batched = model(input_ids=batch, attention_mask=mask).logits[:, 0].tolist()
    single = [reward_one(model, i) for i in ids]
    # transformers' rule: the rightmost position whose id != config.pad_token_id (on the padded row)
    read_at = [max(t for t in range(L) if batch[r, t].item() != pad_token_id) for r in range(len(ids))]
    diff = max(abs(a - b) for a, b in zip(batched, single))
    from safetensors import safe_open
    with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
        keys = sorted(f.keys())
    out = {
        "model": f"models/{name}", "architecture": cls.__name__,
        "tokenisation": "tokenizer(text=prompt + completion + eos_token)['input_ids'] (add_special_tokens=True, "
                        "as TRL's _tokenize); the gpt2 tokenizer adds no special token, the llama3 one prepends "
                        "<|begin_of_text|>",
        "pad_token_id": pad_token_id, "eos_token_id": tok.eos_token_id, "bos_token_id": tok.bos_token_id,
        "padding_side": "right",
        "score_weight_shape": list(model.score.weight.shape),
        "safetensors_keys": keys,
        "texts": [{"prompt": p, "completion": c, "text": t, "ids": i, "reward_position": k,
                   "reward_batched": b, "reward_single": s}
                  for (p, c), t, i, k, b, s in zip(PAIRS, texts, ids, read_at, batched, single)],
        "rewards": batched, "rewards_single": single, "max_abs_diff_batched_vs_single": diff,
        "torch": torch.__version__, "transformers": transformers.__version__,
    }
    with open(os.path.join(OUT, "expected", name + ".json"), "w") as fh:
        json.dump(out, fh, ensure_ascii=False, indent=1)
    print(f"wrote models/{name} and expected/{name}.json: rewards {[round(x, 4) for x in batched]}, "
          f"read at {read_at} (lengths {[len(i) for i in ids]}), batched vs single {diff:.2e}")
    if diff > 1e-5:
        print("batched and single rewards disagree")
        sys.exit(1)


def make():
    llama_tok = AutoTokenizer.from_pretrained(os.path.join(OUT, "models", "llama"))
    gpt2_tok = AutoTokenizer.from_pretrained(os.path.join(OUT, "models", "gpt2"))
    build("gpt2-reward", "gpt2", GPT2ForSequenceClassification, 11, gpt2_tok.eos_token_id)
    build("llama-reward", "llama", LlamaForSequenceClassification, 12, llama_tok.convert_tokens_to_ids("<|end_of_text|>"))


def trl_pad(tok):
    """The pad TRL's RewardTrainer gives a reward model: the tokenizer's, else its eos (which TRL
    makes the pad), written into model.config.pad_token_id. peft's adapter does not record it."""
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def peft_reward_model(base_dir, adapter_dir):
    """A LoRA reward model as a user loads one: AutoModelForSequenceClassification on the causal
    base (num_labels=1, the pad as TRL set it), then PeftModel.from_pretrained; exits unless
    every tensor of the adapter file was loaded (peft loads with strict=False)."""
    from peft import PeftModel
    from safetensors.torch import load_file
    tok = AutoTokenizer.from_pretrained(adapter_dir if os.path.exists(os.path.join(adapter_dir, "tokenizer.json")) else base_dir)
    base = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1, pad_token_id=trl_pad(tok),
                                                              dtype=torch.float32, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    state = model.state_dict()
    for k, v in load_file(os.path.join(adapter_dir, "adapter_model.safetensors")).items():
        live = (k.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")
                .replace("score.weight", "score.modules_to_save.default.weight"))
        if live not in state or not torch.equal(state[live].float(), v.float()):
            sys.exit(f"peft did not load {k} (looked for {live})")
    return model, tok


def peft_reward_adapters():
    """LoRA reward models peft itself saves (task_type SEQ_CLS, so modules_to_save holds the new
    score head, as TRL's RewardTrainer recommends) on the committed tiny GPT-2 and Llama causal
    LMs, with random A, B and score, and expected/peft-NAME-reward-by-peft.json: the rewards
    peft computes on the PAIRS texts (each alone)."""
    from peft import LoraConfig, TaskType, get_peft_model
    import peft
    cases = [("gpt2", ["c_attn", "c_fc"], True, 4, 8.0), ("llama", ["q_proj", "v_proj", "down_proj"], False, 3, 6.0)]
    for name, targets, fan, r, alpha in cases:
        base_dir = os.path.join(OUT, "models", name)
        tok = AutoTokenizer.from_pretrained(base_dir)
        base = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1, pad_token_id=trl_pad(tok),
                                                                  dtype=torch.float32, attn_implementation="eager")
        model = get_peft_model(base, LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, fan_in_fan_out=fan,
                                                lora_dropout=0.0, task_type=TaskType.SEQ_CLS))
        g = torch.Generator().manual_seed(21)
        with torch.no_grad():  # B is zero at peft's init: random A, B and head so each part matters
            for pname, p in model.named_parameters():
                if p.requires_grad:
                    p.copy_(0.3 * torch.randn(p.shape, generator=g))
        dest = save_adapter(model, name, name + "-reward-by-peft", sets=("target_modules", "modules_to_save"))
        model, tok = peft_reward_model(base_dir, dest)
        plain = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1, pad_token_id=trl_pad(tok),
                                                                   dtype=torch.float32, attn_implementation="eager").eval()
        texts = [p + c + tok.eos_token for p, c in PAIRS]
        ids = [tok(text=t)["input_ids"] for t in texts]
        rewards = [reward_one(model, i) for i in ids]
        lora_only = [reward_one(plain, i) for i in ids]  # the base's head is random: compare the adapter's effect
        out = {"base": f"models/{name}", "adapter": f"peft/{name}-reward-by-peft", "pad_token_id": trl_pad(tok),
               "texts": [{"text": t, "ids": i, "reward": x} for t, i, x in zip(texts, ids, rewards)],
               "peft": peft.__version__, "torch": torch.__version__, "transformers": transformers.__version__}
        with open(os.path.join(OUT, "expected", f"peft-{name}-reward-by-peft.json"), "w") as fh:
            json.dump(out, fh, ensure_ascii=False, indent=1)
        print(f"wrote {dest} and expected/peft-{name}-reward-by-peft.json: rewards {[round(x, 4) for x in rewards]} "
              f"(pad {trl_pad(tok)}; the base with another random head: {[round(x, 4) for x in lora_only]})")


def check_reward_adapter(base_dir, adapter_dir, scores_path):
    """peft's reward for each line `sft-dist score --model BASE --adapter DIR` printed, on its ids."""
    model, tok = peft_reward_model(base_dir, adapter_dir)
    worst, n = 0.0, 0
    for line in open(scores_path):
        if line.strip():
            rec = json.loads(line)
            worst, n = max(worst, abs(reward_one(model, rec["ids"]) - rec["reward"])), n + 1
    print(f"peft: {n} rewards, pad_token_id={model.config.pad_token_id}, max |sft-dist − peft| = {worst:.2e}")
    if n == 0 or worst > 1e-4:
        print("MISMATCH")
        sys.exit(1)
    print("OK")


def check_reward(model_dir, scores_path):
    """A directory sft-dist wrote → transformers' reward for each SCORES.jsonl line's ids, alone."""
    model = load_checked(model_dir)
    worst, worst_line, n = 0.0, None, 0
    for k, line in enumerate(open(scores_path), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        ref = reward_one(model, rec["ids"])
        d = abs(ref - rec["reward"])
        n += 1
        if d >= worst:
            worst, worst_line = d, (k, rec["reward"], ref, len(rec["ids"]))
    print(f"transformers {transformers.__version__}: {n} rewards, pad_token_id={model.config.get_text_config().pad_token_id}, "
          f"max |sft-dist − transformers| = {worst:.2e}")
    if n == 0 or worst > 1e-4:
        if worst_line:
            print("MISMATCH, worst line %d: sft-dist %r, transformers %r (%d ids)" % worst_line)
        else:
            print("MISMATCH: no scores")
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "check-reward":
        if len(sys.argv) != 4:
            sys.exit("usage: check-reward DIR SCORES.jsonl")
        check_reward(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 2 and sys.argv[1] == "reward-models":
        make()
    elif len(sys.argv) >= 2 and sys.argv[1] == "peft-reward-adapters":
        peft_reward_adapters()
    elif len(sys.argv) == 5 and sys.argv[1] == "check-reward-adapter":
        check_reward_adapter(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: reward_model_fixtures.py reward-models | peft-reward-adapters | check-reward DIR SCORES.jsonl"
                 " | check-reward-adapter BASE ADAPTER SCORES.jsonl")
