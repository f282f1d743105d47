"""sft-dist driven through scripts/launch: data, the base model, fine-tunes and evaluations.
Every product is cached under the output directory (a result file written last, atomically),
so an interrupted or repeated lab reuses what is done; a changed setting gets a new name."""
import hashlib
import json
import os
import subprocess
import sys
import time


def digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# Recipe keys that are mappings, and the repeatable flag each entry becomes.
MAPPING_FLAGS = {"objective_args": "--objective-arg", "selection_args": "--selection-arg",
                 "self_train_args": "--self-train-arg"}


def flag_args(flags, subst):
    """{"lr": 0.001, "objective_args": {"alpha": 10}, "merge_lora": true} -> ["--lr", "0.001",
    "--objective-arg", "alpha=10", "--merge-lora"] (false: "--no-merge-lora"); string values may
    name {strong} / {weak} / {base} (model directories), {data[NAME]} (a claim's data set) and
    {model[ARM]} (an earlier arm's model at the same seed)."""
    args = []
    for key, value in flags.items():
        if key in MAPPING_FLAGS:
            for k, v in value.items():
                args += [MAPPING_FLAGS[key], f"{k}={str(v).lower() if isinstance(v, bool) else v}"]
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + key.replace("_", "-"))
            continue
        if isinstance(value, str):
            try:
                value = value.format(**subst)
            except (KeyError, IndexError) as e:
                raise SystemExit(f"lab: flag {key} {value!r} names {e}, which is no data set and no arm listed before this one")
        args += [flag, str(value)]
    return args


class SFTDist:
    def __init__(self, root, out, ranks, log):
        self.root, self.out, self.ranks, self.log = root, out, ranks, log
        self.launch = os.path.join(root, "scripts/launch")
        self.seconds = 0.0

    def key(self, obj):
        """A cache name for obj that does not depend on where the repository or the output
        directory are, so a moved or copied output directory is still reused."""
        text = json.dumps(obj, sort_keys=True).replace(self.out, "$OUT").replace(self.root, "$ROOT")
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def run(self, args, ranks=None, capture=False):
        cmd = [self.launch, "-n", str(ranks or self.ranks)] + args
        self.log(" ".join(cmd))
        start = time.time()
        p = subprocess.run(cmd, cwd=self.root, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.seconds += time.time() - start
        if p.returncode != 0:
            sys.stderr.write(p.stderr[-2000:])
            raise SystemExit(f"lab: sft-dist {args[0]} failed (exit {p.returncode}): {' '.join(cmd)}")
        return p.stdout

    def make_data(self, spec):
        """A make-data JSONL for spec {"count", "seed", "kinds", "digits", ...} (cached by content)."""
        os.makedirs(os.path.join(self.out, "data"), exist_ok=True)
        path = os.path.join(self.out, "data", digest(spec) + ".jsonl")
        if not os.path.exists(path):
            args = ["make-data", "--out", path + ".tmp"]
            for key, value in spec.items():
                flag = "--" + key.replace("_", "-")
                args += [flag] if value is True else [flag, str(value)]
            self.run(args, ranks=1)
            os.replace(path + ".tmp", path)
        return path

    def train(self, out_dir, args):
        """One training run into out_dir; done when out_dir/lab-done.json exists."""
        done = os.path.join(out_dir, "lab-done.json")
        if os.path.exists(done):
            return
        self.run(["train", "--quiet", "--out", out_dir] + args)
        write_json(done, {"args": args})

    def merge(self, out_dir, models, weights):
        """sft-dist merge: sum of weights[i] * models[i], tensor by tensor; done when out_dir/config.json exists."""
        if not os.path.exists(os.path.join(out_dir, "config.json")):
            self.run(["merge"] + models + ["--weights", ",".join(str(w) for w in weights), "--out", out_dir], ranks=1)

    def eval(self, cache, model, data, examples, samples=0, pass_k=None, seed=0, max_new_tokens=12):
        if os.path.exists(cache):
            return read_json(cache)
        args = ["eval", "--model", model, "--data", data, "--scorer", "task", "--json",
                "--examples", str(examples), "--max-new-tokens", str(max_new_tokens), "--seed", str(seed)]
        if samples:
            args += ["--samples", str(samples), "--pass-k", ",".join(str(k) for k in pass_k), "--temperature", "1"]
        result = last_json_line(self.run(args))
        write_json(cache, result)
        return result

    def sampled_entropy(self, cache, model, data, examples, seed, max_new_tokens=12):
        """Per-token entropy of the model's own answers, estimated as -mean log p over the tokens
        of one temperature-1 sample per prompt (sampled with `generate`, scored with `score`)."""
        if os.path.exists(cache):
            return read_json(cache)
        work = cache + ".d"
        os.makedirs(work, exist_ok=True)
        prompts = os.path.join(work, "prompts.jsonl")
        with open(data, encoding="utf-8") as f, open(prompts, "w", encoding="utf-8") as g:
            for i, line in enumerate(f):
                if i == examples:
                    break
                g.write(json.dumps({"prompt": json.loads(line)["prompt"]}) + "\n")
        generated = self.run(["generate", "--model", model, "--prompts", prompts, "--json", "--temperature", "1",
                              "--seed", str(seed), "--max-new-tokens", str(max_new_tokens)])
        samples = os.path.join(work, "samples.jsonl")
        # `score` re-tokenizes the text, so only a sample whose text gives back its tokens is
        # scored: not an empty one (end-of-text at once; score refuses an empty completion) and
        # not one with bytes that are not UTF-8 (the text holds U+FFFD in their place). The
        # others are counted in "dropped".
        kept = dropped = 0
        with open(samples, "w", encoding="utf-8") as g:
            for line in generated.splitlines():
                if line.startswith("{"):
                    row = json.loads(line)
                    if not row["text"] or "\ufffd" in row["text"]:
                        dropped += 1
                        continue
                    kept += 1
                    g.write(json.dumps({"prompt": row["prompt"], "completion": row["text"]}) + "\n")
        logps = []
        if kept:
            for line in self.run(["score", "--model", model, "--data", samples]).splitlines():
                if line.startswith("{"):
                    logps += json.loads(line)["completion_logprobs"]
        if not logps:
            raise SystemExit(f"lab: every answer {model} sampled was empty or not UTF-8 ({dropped}); no entropy to estimate")
        if dropped:
            # Not silent: the dropped answers are the noisiest ones, so the estimate is low by them.
            self.log(f"entropy of {model}: {dropped} of {dropped + kept} sampled answers left out (empty or not UTF-8); "
                     "the estimate covers the rest")
        result = {"sampled_entropy": -sum(logps) / len(logps), "tokens": len(logps), "dropped": dropped}
        write_json(cache, result)
        return result


def last_json_line(text):
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit("lab: no JSON line in sft-dist's output")


def training_rows(run_dir):
    rows = []
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if "loss" in row:
                rows.append(row)
    return rows
