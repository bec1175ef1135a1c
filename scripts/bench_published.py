"""The whole default command against the published code's whole process, side by side in one
sitting (issue 33): `snndelay train` (yinyang_h30_ws, 300 epochs) and the published code's
`python experiment.py train CONFIG` run alternately, each as a fresh process, and the
whole-process times, the training-loop times and their ratios printed.

The published code (JulianGoeltz/fastAndDeep, GPL) is not part of snndelay: check it out
yourself with its Yin-Yang data submodule, give it an environment of its own (torch, numba,
matplotlib, pyyaml, scipy) and run it for comparison only. Its MNIST loader imports
torchvision; where no torchvision fits the installed torch, an empty `torchvision` package on
--published-env PYTHONPATH=... stands in (the Yin-Yang path never uses it).

    python scripts/bench_published.py --published-src PATH/fastAndDeep/src \\
        [--published-python PATH/venv/bin/python] [--published-env PYTHONPATH=/tmp/stub] \\
        [--rounds 2] [--ours 2] [--base-checkout PATH] [OVERRIDES...]

--base-checkout: an older snndelay checkout, run with PYTHONPATH pointing at it, after each of
ours (a before/after comparison in the same sitting).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_contention import run_once  # scripts/ is on sys.path when a script runs


def published(src: Path, python: str, config: str, env: dict[str, str]) -> tuple[float, float]:
    """(whole-process seconds, its own training duration in seconds) of one published run."""
    t0 = time.perf_counter()
    out = subprocess.run([python, "experiment.py", "train", config], cwd=src, check=True,
                         capture_output=True, text=True, env={**os.environ, **env})
    whole = time.perf_counter() - t0
    found = re.search(r"duration: ([0-9.]+) seconds", out.stdout + out.stderr)
    return whole, float(found.group(1)) if found else float("nan")


def ours(overrides: list[str], checkout: Path | None) -> tuple[float, float]:
    """(whole-command seconds, training-loop seconds) of one `snndelay train` (of the
    snndelay in `checkout` where given)."""
    env = None if checkout is None else {**os.environ, "PYTHONPATH": str(checkout)}
    loop, whole = run_once(overrides, env=env)
    return whole, loop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--published-src", type=Path, required=True,
                    help="fastAndDeep's src directory (holding experiment.py)")
    ap.add_argument("--published-python", default=sys.executable)
    ap.add_argument("--published-config", default="../experiment_configs/yin_yang_H30_WS.yaml")
    ap.add_argument("--published-env", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--rounds", type=int, default=2, help="published runs")
    ap.add_argument("--ours", type=int, default=2, help="runs of ours after each published run")
    ap.add_argument("--base-checkout", type=Path)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    if not (args.published_src / "experiment.py").is_file():
        sys.exit(f"--published-src {args.published_src}: no experiment.py there; give "
                 "fastAndDeep's src directory")
    env = dict(kv.split("=", 1) for kv in args.published_env)
    rows: dict[str, list[tuple[float, float]]] = {"published": [], "ours": [], "base": []}
    for r in range(args.rounds):
        rows["published"].append(published(args.published_src, args.published_python,
                                           args.published_config, env))
        print(f"round {r + 1}: published {rows['published'][-1][0]:.1f} s", flush=True)
        for _ in range(args.ours):
            rows["ours"].append(ours(args.overrides, None))
            if args.base_checkout is not None:
                rows["base"].append(ours(args.overrides, args.base_checkout))
    pub_whole = statistics.mean(w for w, _ in rows["published"])
    pub_loop = statistics.mean(t for _, t in rows["published"])
    print("| run | whole (s) | loop (s) | whole ratio | loop ratio |\n|---|---|---|---|---|")
    for name, runs in rows.items():
        for whole, loop in runs:
            ratio = "" if name == "published" else f"{pub_whole / whole:.1f}x"
            loop_ratio = "" if name == "published" else f"{pub_loop / loop:.1f}x"
            print(f"| {name} | {whole:.2f} | {loop:.2f} | {ratio} | {loop_ratio} |")
    print(f"ratios against the published code's means: whole {pub_whole:.1f} s, "
          f"training {pub_loop:.1f} s")


if __name__ == "__main__":
    main()
