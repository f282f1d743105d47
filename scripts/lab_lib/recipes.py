"""Lab recipes: recipes/lab/lab.json (the base model, seeds) and recipes/lab/claims/*.json
(one claim each). Any number may be given per size, {"tiny": 10, "quick": 60, "full": 300};
`sized` picks the run's. A claim is added by dropping a new file into recipes/lab/claims/."""
import glob
import json
import os

SIZES = ("tiny", "quick", "full")
CLAIM_KEYS = {"id", "paper", "claim", "experiment", "data", "train", "arms", "measures", "rule", "chart", "requires"}


def sized(value, size):
    if isinstance(value, dict) and set(value) <= set(SIZES) and value:
        if size not in value:
            raise ValueError(f"no value for size {size!r} in {value}")
        return value[size]
    if isinstance(value, dict):
        return {k: sized(v, size) for k, v in value.items()}
    if isinstance(value, list):
        return [sized(v, size) for v in value]
    return value


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise SystemExit(f"lab: {path}:{e.lineno}: {e.msg}")


def load_lab(root, size):
    return sized(load_json(os.path.join(root, "recipes/lab/lab.json")), size)


def load_claims(root, size, only=None):
    claims = []
    for path in sorted(glob.glob(os.path.join(root, "recipes/lab/claims/*.json"))):
        c = load_json(path)
        unknown = set(c) - CLAIM_KEYS
        if unknown:
            raise SystemExit(f"lab: {path}: unknown keys {sorted(unknown)}")
        c = sized(c, size)
        c["recipe"] = os.path.relpath(path, root)
        check_claim(c, path)
        claims.append(c)
    # An empty --only ("" from an unset shell variable) named nothing and ran every claim.
    if only is not None:
        names = only.split(",")
        missing = [n for n in names if n not in {c["id"] for c in claims}]
        if missing:
            raise SystemExit(f"lab: --only: no claim {missing[0]!r}; known: {', '.join(c['id'] for c in claims)}")
        claims = [c for c in claims if c["id"] in names]
    return claims


def check_claim(c, path):
    arms = {a["name"] for a in c["arms"]}
    for part in c["rule"]["parts"]:
        for key in (part["a"], part["b"]):
            arm, _, measure = key.rpartition(".")
            if arm not in arms or measure not in c["measures"]:
                raise SystemExit(f"lab: {path}: rule names {key!r}, not an arm.measure of this claim")
    earlier = set()
    for a in c["arms"]:
        if a.get("data") and a["data"] not in c["data"]:
            raise SystemExit(f"lab: {path}: arm {a['name']} trains on unknown data {a['data']!r}")
        if a.get("merge"):
            unknown = [m for m in a["merge"] if m not in earlier]
            if unknown or len(a.get("weights", [])) != len(a["merge"]) or a.get("data"):
                raise SystemExit(f"lab: {path}: arm {a['name']} merges {a['merge']}: each must be an arm listed "
                                 f"before it, with one weight per model and no data")
        if a.get("from") and (a["from"] not in earlier or not a.get("data")):
            raise SystemExit(f"lab: {path}: arm {a['name']} starts from {a['from']!r}: it must be an arm listed "
                             f"before it, and the arm must train on data")
        earlier.add(a["name"])
    for name, m in c["measures"].items():
        if "selected" in m and m.get("data") not in c["data"]:
            raise SystemExit(f"lab: {path}: measure {name} reads unknown data {m.get('data')!r}")
