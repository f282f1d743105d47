"""Every training arm's sft-dist flags, as scripts/lab would pass them, for a check that needs
no run: `python3 scripts/lab_lib/arms.py [SIZE]` prints one JSON line per arm, {claim, arm,
args}, with placeholder paths for models and data (`sft-dist train --dry-run` reads neither)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lab_lib.recipes import load_claims, load_lab  # noqa: E402
from lab_lib.sftdist import flag_args  # noqa: E402


def main(size="tiny"):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    lab = load_lab(root, size)
    for c in load_claims(root, size):
        train = c.get("train", {})
        for arm in c["arms"]:
            if not arm.get("data"):
                continue
            flags = dict(train.get("flags", {}))
            flags.update(arm.get("flags", {}))
            subst = {"strong": "BASE", "weak": "BASE", "base": "BASE", "data": {k: f"DATA-{k}.jsonl" for k in c.get("data", {})},
                     "model": {a["name"]: f"MODEL-{a['name']}" for a in c["arms"]}}
            args = ["--config", os.path.join(root, train.get("config", lab["finetune_config"])), "--model", "BASE",
                    "--data", f"DATA-{arm['data']}.jsonl", "--heldout", f"DATA-{train.get('heldout', arm['data'])}.jsonl",
                    "--steps", str(arm.get("steps", train.get("steps")))] + flag_args(flags, subst)
            print(json.dumps({"claim": c["id"], "arm": arm["name"], "args": args}))


if __name__ == "__main__":
    main(*sys.argv[1:])
