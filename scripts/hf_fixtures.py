"""Hugging Face fixtures for sft-dist's tests (run through scripts/make-hf-fixtures).

Writes Tests/ModelsTests/Fixtures/hf/:
  tokenizers/{gpt2,qwen2,llama3,qwen3}/   tokenizer.json (+ tokenizer_config.json with a chat template)
  models/{gpt2,llama,qwen2,qwen3}/   tiny random checkpoints saved by transformers (qwen2 in bfloat16)
  models/mistral-sharded/            sharded checkpoint (model.safetensors.index.json), sliding window
  expected/tokenizer_cases.json      ids (plain and with specials) and decoded text per test string
  expected/chat.json                 apply_chat_template ids for the chatml and llama3 tokenizers
  expected/<model>.json + .safetensors   input ids and transformers' float32 logits
  data/chat.jsonl                    a small chat + prompt/completion training set

`qwen3` rewrites only models/qwen3, tokenizers/qwen3 and their expected logits (from the committed qwen2 tokenizer).
`check-export DIR SCORES` loads a directory sft-dist exported and compares log-probabilities.

LoRA adapters and peft: scripts/peft_fixtures.py.
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, AddedToken, decoders, models, normalizers, pre_tokenizers, processors, trainers
import transformers
from transformers import (AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig,
                          LlamaForCausalLM, MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast,
                          Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures", "hf")

GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# Qwen2-Instruct's and Llama-3-Instruct's chat templates as they ship.
QWEN2_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                  "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
                  "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
                   "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
                   "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
                   "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")


def corpus():
    """Deterministic training text: prose, code, numbers, unicode, chat-like lines."""
    words = ("the model reads tokens and learns to predict the next one while gradients flow back "
             "through every layer of the network it is trained on many examples").split()
    lines = []
    for i in range(400):
        w = [words[(i * 7 + j * 3) % len(words)] for j in range(6 + i % 5)]
        lines.append(" ".join(w).capitalize() + f". Step {i} of {i * 37 % 1000}; loss {i / 7:.3f}")
        lines.append(f"def f{i}(x):\n    return x * {i} + {i % 13}\n")
        lines.append("Hello world! I'm here, you're there, it's fine — we'll see. " * (1 + i % 2))
        lines.append("café naïve résumé 日本語 中文 😀 👍 " + str(i * 12345))
        lines.append("user: what is 12 + 30?\nassistant: 42\n\n")
    return lines


def train_tokenizer(kind):
    tok = Tokenizer(models.BPE(ignore_merges=(kind == "llama3")))
    if kind == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        pat = LLAMA3_RE if kind == "llama3" else QWEN2_RE
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pat), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    if kind == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size={"gpt2": 600, "qwen2": 560, "llama3": 620}[kind],
                                  special_tokens=["<|endoftext|>"] if kind == "gpt2" else [],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2,
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    if kind == "qwen2":
        tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        tok.add_tokens([AddedToken("<think>", special=False, normalized=False),
                        AddedToken("</think>", special=False, normalized=False),
                        AddedToken("@@user", special=False, normalized=True)])
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    elif kind == "llama3":
        tok.add_special_tokens(["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                "<|end_header_id|>", "<|eot_id|>"])
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[("<|begin_of_text|>", bos)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def save_tokenizer(kind, tok, d):
    os.makedirs(d, exist_ok=True)
    kw = {"gpt2": dict(eos_token="<|endoftext|>", bos_token="<|endoftext|>"),
          "qwen2": dict(eos_token="<|im_end|>", pad_token="<|endoftext|>"),
          "llama3": dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")}[kind]
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **kw)
    if kind != "gpt2":
        fast.chat_template = QWEN2_TEMPLATE if kind == "qwen2" else LLAMA3_TEMPLATE
    fast.save_pretrained(d)
    if kind == "gpt2":  # legacy "a b" merges, as older tokenizer.json files have them
        p = os.path.join(d, "tokenizer.json")
        j = json.load(open(p))
        j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
        json.dump(j, open(p, "w"), ensure_ascii=False, indent=2)
    return AutoTokenizer.from_pretrained(d)


CASES = [
    "Hello world", "hello  world", "   leading spaces", "trailing spaces   ", "tabs\tand\nnewlines\r\n\r\nend",
    "I'm can't we'll they've she'd it's you're", "I'M CAN'T WE'LL THEY'VE SHE'D", "'ſ test 'S 'Re",
    "numbers 1 12 123 1234 12345 3.14159 1,000,000", "٣٤٥ ½ Ⅻ ²", "x1y22z333w4444",
    "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷!", "日本語のテキスト 中文 한국어", "café naïve résumé", "e\u0301 combining cafe\u0301",
    "nbsp\u00a0here", "ideographic\u3000space", "thin\u2009space", "nel\u0085x", "vt\x0bff\x0cx", "zero\u200bwidth",
    "  \n  \n\n   x", "x   \n", "\n\n\n", "", " ", "  ", "!!!??? ...", "a-b_c/d\\e", "```code```\n\t\tindent",
    "<|endoftext|> inside", "a<|im_start|>user\nhi<|im_end|>b", "<|im_end|><|im_end|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "partial <|im_sta", "<think>reasoning</think> done", "hi @@user mentions", "The model reads tokens and learns.",
    "def f12(x):\n    return x * 12 + 7\n", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "ab" * 40, "\u00ff\u0100\u0120 bytes",
]

CHAT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "what is 12 + 30?"},
        {"role": "assistant", "content": "42"}, {"role": "user", "content": "and  twice that?"},
        {"role": "assistant", "content": " 84 \n"}]


def write_tokenizer_cases(toks):
    out = {}
    for kind, fast in toks.items():
        raw = fast.backend_tokenizer
        rows = []
        for s in CASES:
            raw.encode_special_tokens = False
            ids = raw.encode(s, add_special_tokens=False).ids
            raw.encode_special_tokens = True
            plain = raw.encode(s, add_special_tokens=False).ids
            raw.encode_special_tokens = False
            rows.append({"text": s, "ids": ids, "plain_ids": plain,
                         "decoded": raw.decode(ids, skip_special_tokens=False)})
        out[kind] = rows
    json.dump(out, open(os.path.join(OUT, "expected", "tokenizer_cases.json"), "w"), ensure_ascii=False, indent=1)
    chat = {}
    for kind in ["qwen2", "llama3"]:
        ids = toks[kind].apply_chat_template(CHAT, tokenize=True, return_dict=False)
        text = toks[kind].apply_chat_template(CHAT, tokenize=False)
        chat[kind] = {"messages": CHAT, "ids": list(ids), "text": text}
    json.dump(chat, open(os.path.join(OUT, "expected", "chat.json"), "w"), ensure_ascii=False, indent=1)


def write_prefix_cases():
    """The gpt2 fixture tokenizer with ByteLevel(add_prefix_space=True): a space is prepended to
    every segment between added tokens that does not start with one."""
    j = json.load(open(os.path.join(OUT, "tokenizers", "gpt2", "tokenizer.json")))
    j["pre_tokenizer"]["add_prefix_space"] = True
    raw = Tokenizer.from_str(json.dumps(j))
    rows = [{"text": s, "ids": raw.encode(s, add_special_tokens=False).ids} for s in CASES]
    json.dump(rows, open(os.path.join(OUT, "expected", "tokenizer_cases_prefix_space.json"), "w"), ensure_ascii=False, indent=1)


FUZZ_POOL = [" ", "  ", "\n", "\r\n", "\t", "\u00a0", "\u3000", "\u2009", "\u0085", "\x0b", "\x0c", "'s", "'S", "'ll",
             "'LL", "'ve", "'ſ", "0123456789", "١٢٣", "½", "Ⅻ", "²", "abc", "Hello", "WORLD", "café", "e\u0301", "日本語",
             "한국어", "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "!!", "?.", "...", "—", "-", "_", "/", "\\", "`", "(", ")", "{", "}",
             "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<think>", "@@user", "\u200b", "ǅ", "ʰ", "\ufeff",
             "\x00", "\x7f"]


def write_fuzz_cases(n=250):
    """Random strings from FUZZ_POOL and random code points. The random code points are drawn
    from characters already assigned in Unicode 3.2, because tokenizers' Oniguruma and
    unicode-normalization tables are older than Swift's: a character assigned recently (U+088F
    in Unicode 17, U+1ACA in 14) is a letter or combining mark to Swift but unassigned to them."""
    import random, unicodedata
    rng = random.Random(7)
    old = [c for c in range(32, 0x3000) if unicodedata.ucd_3_2_0.category(chr(c)) != "Cn"
           and not 0xD800 <= c < 0xE000]
    texts = []
    for _ in range(n):
        k = rng.randint(1, 25)
        texts.append("".join(rng.choice(FUZZ_POOL) if rng.random() < 0.7 else chr(rng.choice(old)) for _ in range(k)))
    out = {"texts": texts}
    for kind in ["gpt2", "qwen2", "llama3"]:
        t = Tokenizer.from_file(os.path.join(OUT, "tokenizers", kind, "tokenizer.json"))
        out[kind] = [t.encode(x, add_special_tokens=False).ids for x in texts]
    json.dump(out, open(os.path.join(OUT, "expected", "tokenizer_fuzz.json"), "w"), ensure_ascii=False, separators=(",", ":"))


def randomize(model, seed, std=0.15):
    """Random weights large enough that attention and every bias matter (HF zero-inits biases)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or "ln_f" in name:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def expected_logits(name, model, fast, texts):
    model.eval()
    ids_list, tensors = [], {}
    for i, t in enumerate(texts):
        ids = fast.backend_tokenizer.encode(t, add_special_tokens=False).ids
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
        ids_list.append(ids)
        tensors[f"logits.{i}"] = logits.contiguous()
    save_file(tensors, os.path.join(OUT, "expected", name + ".safetensors"))
    json.dump({"inputs": ids_list}, open(os.path.join(OUT, "expected", name + ".json"), "w"))


def build_models(toks):
    texts = ["Hello world! I'm here.", "def f3(x):\n    return x * 3 + 3\n"]
    short = ["Hello world!", "café 😀 42"]
    mk = os.path.join(OUT, "models")

    V = len(toks["gpt2"])
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0,
                                      resid_pdrop=0, embd_pdrop=0, attn_pdrop=0))
    randomize(gpt2, 1)
    save_model(gpt2, toks["gpt2"], os.path.join(mk, "gpt2"))
    expected_logits("gpt2", gpt2, toks["gpt2"], texts)

    V = len(toks["llama3"])
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                         rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
                                         bos_token_id=toks["llama3"].bos_token_id,
                                         eos_token_id=toks["llama3"].eos_token_id,
                                         attn_implementation="eager"))
    randomize(llama, 2)
    save_model(llama, toks["llama3"], os.path.join(mk, "llama"))
    expected_logits("llama", llama, toks["llama3"], texts)

    V = (len(toks["qwen2"]) + 15) // 16 * 16  # padded past the tokenizer, as Qwen's real vocabularies are
    qwen = Qwen2ForCausalLM(Qwen2Config(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=64,
                                        rope_theta=1000000.0, tie_word_embeddings=True, attn_implementation="eager"))
    randomize(qwen, 3)
    with torch.no_grad():  # the weights as bfloat16 holds them, so the float32 logits are exact
        for p in qwen.parameters():
            p.copy_(p.bfloat16().float())
    expected_logits("qwen2", qwen, toks["qwen2"], texts)
    qwen.to(torch.bfloat16)
    save_model(qwen, toks["qwen2"], os.path.join(mk, "qwen2"))

    V = len(toks["gpt2"])
    mistral = MistralForCausalLM(MistralConfig(vocab_size=V, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                                               num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                                               sliding_window=8, rope_theta=10000.0, attn_implementation="eager"))
    randomize(mistral, 4)
    save_model(mistral, toks["gpt2"], os.path.join(mk, "mistral-sharded"), max_shard_size="30KB")
    expected_logits("mistral-sharded", mistral, toks["gpt2"], short)
    build_qwen3(os.path.join(OUT, "tokenizers", "qwen2"))


def build_qwen3(qwen2_tok_dir):
    """Qwen3: QK-Norm (q_norm, k_norm per head), no biases, head_dim 16 where hidden_size / heads
    is 8 (as Qwen3-0.6B's 128 against 1024 / 16), GQA 4 over 2, tied head, float32. Its
    tokenizer (also tokenizers/qwen3) is the qwen2 fixture's with Qwen3's <think> and </think>
    added tokens and Qwen3's chat template."""
    from chat_template_fixtures import QWEN3_TEMPLATES
    tok = PreTrainedTokenizerFast.from_pretrained(qwen2_tok_dir)
    tok.add_tokens(["<think>", "</think>"])
    tok.chat_template = QWEN3_TEMPLATES["qwen3"]
    tok.save_pretrained(os.path.join(OUT, "tokenizers", "qwen3"))
    texts = ["Hello world! I'm here.", "def f3(x):\n    return x * 3 + 3\n"]
    V = (len(tok) + 15) // 16 * 16
    qwen3 = Qwen3ForCausalLM(Qwen3Config(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                         max_position_embeddings=64, rope_theta=1000000.0, rms_norm_eps=1e-6,
                                         tie_word_embeddings=True, attn_implementation="eager"))
    randomize(qwen3, 5)
    expected_logits("qwen3", qwen3, tok, texts)
    save_model(qwen3, tok, os.path.join(OUT, "models", "qwen3"))


def save_model(model, fast, d, **kw):
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, **kw)
    fast.save_pretrained(d)
    for f in ["generation_config.json"]:
        if os.path.exists(os.path.join(d, f)):
            os.remove(os.path.join(d, f))


def write_data():
    os.makedirs(os.path.join(OUT, "data"), exist_ok=True)
    with open(os.path.join(OUT, "data", "chat.jsonl"), "w") as f:
        for i in range(48):
            a, b = i % 17, (i * 7) % 23
            if i % 2:
                f.write(json.dumps({"messages": [{"role": "user", "content": f"what is {a} + {b}?"},
                                                 {"role": "assistant", "content": str(a + b)}]}) + "\n")
            else:
                f.write(json.dumps({"prompt": f"add {a} {b} =", "completion": f" {a + b}"}) + "\n")


def make():
    for sub in ["tokenizers", "models", "expected"]:
        shutil.rmtree(os.path.join(OUT, sub), ignore_errors=True)
        os.makedirs(os.path.join(OUT, sub))
    toks = {}
    for kind in ["gpt2", "qwen2", "llama3"]:
        toks[kind] = save_tokenizer(kind, train_tokenizer(kind), os.path.join(OUT, "tokenizers", kind))
    write_tokenizer_cases(toks)
    write_prefix_cases()
    write_fuzz_cases()
    build_models(toks)
    write_data()
    json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
               "tokenizers": __import__("tokenizers").__version__},
              open(os.path.join(OUT, "expected", "versions.json"), "w"), indent=1)
    print("wrote", OUT)


def max_logprob_error(model, scores_path):
    """Max |model's − sft-dist score's| completion log-probability, and how many were compared."""
    worst, n = 0.0, 0
    for line in open(scores_path):
        rec = json.loads(line)
        ids, lps = rec["ids"], rec["completion_logprobs"]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids[:-1]])).logits[0].float(), dim=-1)
        k = len(lps)  # the loss tokens are the last k (one answer at the end)
        ref = [logp[t, ids[t + 1]].item() for t in range(len(ids) - 1 - k, len(ids) - 1)]
        worst = max(worst, max(abs(a - b) for a, b in zip(ref, lps)))
        n += k
    return worst, n


def check_export(model_dir, scores_path):
    """Exported directory → transformers; compare with sft-dist score's log-probabilities."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    worst, n = max_logprob_error(model, scores_path)
    # The exported tokenizer must encode like sft-dist: re-encoding the decoded ids of every
    # scored example gives the same ids back (sft-dist's ids came from its own tokenizer).
    ids_ok = True
    for line in open(scores_path):
        ids = json.loads(line)["ids"]
        again = tok.backend_tokenizer.encode(tok.decode(ids), add_special_tokens=False).ids
        if again != ids:
            print("tokenizer mismatch:", ids, again)
            ids_ok = False
    print(f"transformers {transformers.__version__}: {n} completion log-probs, max |sft-dist − transformers| = {worst:.2e}")
    if worst > 1e-4 or not ids_ok:
        print("MISMATCH")
        sys.exit(1)
    print("OK")


def record_export(model_dir, name):
    """A directory sft-dist wrote (train --save-format hf / export) → committed fixture plus what
    transformers computes from it: logits on fixed texts and, for the tokenizer, ids of CASES."""
    dest = os.path.join(OUT, "exported", name)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(model_dir, dest)
    model = AutoModelForCausalLM.from_pretrained(dest, dtype=torch.float32, attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(dest)
    texts = ["add 12 30 = 42", "<|im_start|>user\nhi<|im_end|>\n", "Hello world! I'm here."]
    expected_logits("exported-" + name, model, tok, texts)
    meta = json.load(open(os.path.join(OUT, "expected", "exported-" + name + ".json")))
    meta["token_cases"] = [{"text": s, "ids": tok.backend_tokenizer.encode(s, add_special_tokens=False).ids} for s in CASES]
    meta["transformers"] = transformers.__version__
    json.dump(meta, open(os.path.join(OUT, "expected", "exported-" + name + ".json"), "w"), ensure_ascii=False)
    print("recorded", dest)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "check-export":
        check_export(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 2 and sys.argv[1] == "fuzz-cases":
        write_fuzz_cases()
    elif len(sys.argv) >= 2 and sys.argv[1] == "prefix-cases":
        write_prefix_cases()
    elif len(sys.argv) >= 2 and sys.argv[1] == "qwen3":
        build_qwen3(os.path.join(OUT, "tokenizers", "qwen2"))
    elif len(sys.argv) >= 2 and sys.argv[1] == "record-export":
        record_export(sys.argv[2], sys.argv[3])
    else:
        make()
