"""Where the PyTorch reference scripts (scripts/*_reference(s).py) put their output, and how they
write it: one JSON fixture under Tests/TrainingTests/Fixtures/ that the Swift tests read, and one
line naming it. The scripts differ only in the JSON's separators and a final newline, kept here
as options so every committed fixture regenerates byte for byte."""

import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def fixture_path(name):
    """Tests/TrainingTests/Fixtures/NAME of the repository."""
    return os.path.join(ROOT, "Tests", "TrainingTests", "Fixtures", name)


def write_fixture(path, out, summary, compact=True, newline=False):
    """Writes `out` as JSON to `path` (compact: no spaces after , and :) and prints
    `wrote PATH: SUMMARY`."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        json.dump(out, fh, separators=(",", ":") if compact else None)
        if newline:
            fh.write("\n")
    print(f"wrote {path}: {summary}")
