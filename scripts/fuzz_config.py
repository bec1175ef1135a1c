"""Every config key of `snndelay train --cfg` (for the Yin-Yang, emulator and SHD-format
presets) with hostile values (nan, inf, negative, zero, huge, wrong types), each through
`snndelay train` for 8 tiny epochs, classified as: refused (exit 2 with one line), trained
(exit 0: its test accuracy must be above 0 and finite), or a defect (a traceback, another exit
code, more than one line, or exit 0 with a 0 % / non-finite result; the presets themselves
reach 34-43 % in those 8 epochs). A measurement, not a test:

    python scripts/fuzz_config.py [--out fuzz.csv]

prints a count per class and lists every defect.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import tempfile
from pathlib import Path

import yaml
from typer.testing import CliRunner

from snndelay.cli import app

TINY = ["dataset.train_size=60", "dataset.val_size=30", "dataset.test_size=30",
        "training.batch_size=30", "training.epochs=8"]
PRESETS = [["experiment=yinyang_h5_ws"], ["experiment=yinyang_bss2_wa"]]
VALUES = ["nan", "inf", "-inf", "-1", "0", "1e300", "-1e300", "abc", "[1,2]", "true", "null"]


def keys(cfg: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in cfg.items():
        if isinstance(v, dict):
            out += keys(v, f"{prefix}{k}.")
        elif k != "name":
            out.append(f"{prefix}{k}")
    return out


def classify(res, run: Path) -> str:
    lines = [ln for ln in (res.stderr or "").strip().splitlines() if ln.strip()]
    if "Traceback" in res.output or res.exception is not None and res.exit_code not in (0, 2):
        return "defect: traceback"
    if res.exit_code == 2:
        return "refused" if len(lines) == 1 and lines[0].startswith("error: ") else \
            "defect: exit 2 with more than one line"
    if res.exit_code != 0:
        return f"defect: exit {res.exit_code}"
    try:
        acc = json.loads((run / "summary.json").read_text())["test_accuracy"]
    except (OSError, ValueError, KeyError):
        return "defect: exit 0 without summary.json"
    return "trained" if isinstance(acc, float) and math.isfinite(acc) and acc > 0 else \
        f"defect: exit 0 with test accuracy {acc}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    runner = CliRunner()
    rows = []
    for preset in PRESETS:
        shown = runner.invoke(app, ["train", "--cfg", *preset])
        cfg = yaml.safe_load(shown.output)
        for key in keys(cfg):
            for value in VALUES:
                with tempfile.TemporaryDirectory() as tmp:
                    run = Path(tmp) / "run"
                    res = runner.invoke(app, ["train", *preset, *TINY, f"{key}={value}",
                                              "--run-dir", str(run)])
                    verdict = classify(res, run)
                rows.append({"preset": preset[0], "override": f"{key}={value}",
                             "verdict": verdict,
                             "line": (res.stderr or "").strip().splitlines()[-1:] or [""]})
    counts: dict[str, int] = {}
    for r in rows:
        kind = r["verdict"].split(":")[0]
        counts[kind] = counts.get(kind, 0) + 1
    print(f"{len(rows)} cases: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    for r in rows:
        if r["verdict"].startswith("defect"):
            print(f"  {r['preset']} {r['override']}: {r['verdict']} {r['line'][0][:160]}")
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["preset", "override", "verdict", "line"])
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
