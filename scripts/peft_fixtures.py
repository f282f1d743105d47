"""LoRA fixtures for sft-dist's tests: adapters and peft, both ways (run through
scripts/make-hf-fixtures, which installs peft beside transformers).

  peft-adapters                      peft/{gpt2,llama}-by-peft/: adapters peft itself saves on the tiny
                                     GPT-2 (Conv1D, fan_in_fan_out) and Llama, with random A and B, and
                                     expected/peft-<name>.safetensors: the adapted model's logits
  record-adapter BASE DIR NAME       an adapter sft-dist wrote → peft/NAME + the logits peft computes
                                     with it on BASE (refused unless peft loads every tensor and the
                                     adapter changes the logits)
  check-adapter BASE DIR SCORES      peft's log-probs vs `sft-dist score --model BASE --adapter DIR`
  record-scores BASE DIR SCORES NAME expected/NAME.json: for each example `sft-dist score --model BASE
                                     --adapter DIR` printed into SCORES, its ids and the completion
                                     log-probs peft computes on them (LoRACLITests compares `score`)
"""
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_fixtures import OUT, ROOT, expected_logits, max_logprob_error

ADAPTER_TEXTS = ["Hello world! I'm here.", "add 12 30 = 42"]


def peft_model(base_dir, adapter_dir):
    """PeftModel.from_pretrained as a user would call it; fails unless every adapter tensor of
    the file was used (peft loads with strict=False and only warns about unexpected keys)."""
    from peft import PeftModel
    from safetensors.torch import load_file
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, adapter_dir)
    model.eval()
    saved = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    state = model.state_dict()
    for k, v in saved.items():
        live = k.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")
        if live not in state:
            sys.exit(f"peft has no parameter for {k} (looked for {live})")
        if not torch.equal(state[live].float(), v.float()):
            sys.exit(f"peft did not load {k}")
    return model


def adapted_logits(name, base_dir, adapter_dir, tok):
    model = peft_model(base_dir, adapter_dir)
    expected_logits(name, model, tok, ADAPTER_TEXTS)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager").eval()
    ids = tok.backend_tokenizer.encode(ADAPTER_TEXTS[0], add_special_tokens=False).ids
    with torch.no_grad():
        diff = (model(torch.tensor([ids])).logits - base(torch.tensor([ids])).logits).abs().max().item()
    if diff < 1e-3:
        sys.exit(f"the adapter changes the logits by only {diff:.2e}: it does nothing")
    print(f"{name}: adapter changes the logits by up to {diff:.3f}")


def save_adapter(model, name, folder, sets=("target_modules",)):
    """`model`'s adapter as peft saves it, under Fixtures/hf/peft/FOLDER, made repeatable: no
    model card, the base named by its repository path, the config's `sets` (peft writes Python
    sets, in hash order) sorted. The directory."""
    dest = os.path.join(OUT, "peft", folder)
    shutil.rmtree(dest, ignore_errors=True)
    model.save_pretrained(dest)
    os.remove(os.path.join(dest, "README.md"))  # peft's model card template
    cfg = json.load(open(os.path.join(dest, "adapter_config.json")))
    cfg["base_model_name_or_path"] = "Tests/ModelsTests/Fixtures/hf/models/" + name  # not this machine's path
    for key in sets:
        cfg[key] = sorted(cfg[key])
    json.dump(cfg, open(os.path.join(dest, "adapter_config.json"), "w"), indent=2, sort_keys=True)
    return dest


def peft_adapters():
    """Adapters made by peft itself on the committed tiny GPT-2 and Llama."""
    from peft import LoraConfig, get_peft_model
    import peft
    cases = [("gpt2", ["c_attn", "c_proj", "c_fc"], True, 4, 8.0),
             ("llama", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], False, 3, 6.0)]
    for name, targets, fan, r, alpha in cases:
        base_dir = os.path.join(OUT, "models", name)
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager")
        model = get_peft_model(base, LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, fan_in_fan_out=fan,
                                                lora_dropout=0.0, task_type="CAUSAL_LM"))
        g = torch.Generator().manual_seed(11)
        with torch.no_grad():  # B is zero at peft's init: random A and B so the adapter matters
            for pname, p in model.named_parameters():
                if "lora_" in pname:
                    p.copy_(0.3 * torch.randn(p.shape, generator=g))
        dest = save_adapter(model, name, name + "-by-peft")
        tok = AutoTokenizer.from_pretrained(base_dir)
        adapted_logits("peft-" + name + "-by-peft", base_dir, dest, tok)
    json.dump({"peft": peft.__version__, "torch": torch.__version__, "transformers": transformers.__version__},
              open(os.path.join(OUT, "expected", "peft-versions.json"), "w"), indent=1)


def record_adapter(base_dir, adapter_dir, name):
    """An adapter directory sft-dist wrote → peft/NAME and the logits peft computes with it."""
    dest = os.path.join(OUT, "peft", name)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(adapter_dir, dest)
    cfg = json.load(open(os.path.join(dest, "adapter_config.json")))
    cfg["base_model_name_or_path"] = os.path.relpath(os.path.abspath(base_dir), ROOT)  # not this machine's path
    json.dump(cfg, open(os.path.join(dest, "adapter_config.json"), "w"), indent=2, sort_keys=True)
    adapted_logits("peft-" + name, base_dir, dest, AutoTokenizer.from_pretrained(base_dir))
    print("recorded", dest)


def check_adapter(base_dir, adapter_dir, scores_path):
    """peft's completion log-probs vs those `sft-dist score --adapter` printed."""
    worst, n = max_logprob_error(peft_model(base_dir, adapter_dir), scores_path)
    print(f"peft: {n} completion log-probs, max |sft-dist − peft| = {worst:.2e}")
    if worst > 1e-4:
        print("MISMATCH")
        sys.exit(1)
    print("OK")


def record_scores(base_dir, adapter_dir, scores_path, name):
    """peft's completion log-probs on the ids `sft-dist score --adapter` used, committed so the
    tests can compare `score` itself with peft (the ids are sft-dist's; its tokenizers are
    checked against transformers' by the tokenizer fixtures)."""
    import peft
    model = peft_model(base_dir, adapter_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager").eval()
    records, change = [], 0.0
    for line in open(scores_path):
        rec = json.loads(line)
        ids, k = rec["ids"], len(rec["completion_logprobs"])
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids[:-1]])).logits[0].float(), dim=-1)
            plain = torch.log_softmax(base(torch.tensor([ids[:-1]])).logits[0].float(), dim=-1)
        positions = range(len(ids) - 1 - k, len(ids) - 1)  # the completion: the last k tokens
        lps = [logp[t, ids[t + 1]].item() for t in positions]
        change = max(change, max(abs(logp[t, ids[t + 1]].item() - plain[t, ids[t + 1]].item()) for t in positions))
        records.append({"ids": ids, "completion_logprobs": lps})
    if change < 1e-3:
        sys.exit(f"the adapter changes the log-probs by only {change:.2e}: it does nothing")
    dest = os.path.join(OUT, "expected", name + ".json")
    with open(dest, "w") as f:
        json.dump({"peft": peft.__version__, "transformers": transformers.__version__,
                   "records": records}, f)
    print(f"recorded {dest}: {len(records)} examples, the adapter moves log-probs by up to {change:.3f}")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "peft-adapters":
        peft_adapters()
    elif len(sys.argv) == 5 and sys.argv[1] == "record-adapter":
        record_adapter(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 5 and sys.argv[1] == "check-adapter":
        check_adapter(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 6 and sys.argv[1] == "record-scores":
        record_scores(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit("usage: peft_fixtures.py peft-adapters | record-adapter BASE DIR NAME | check-adapter BASE DIR SCORES | record-scores BASE DIR SCORES NAME")
