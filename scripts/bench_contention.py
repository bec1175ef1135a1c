"""Training speed on a busy machine: the same short training alone and next to busy processes.

Runs `snndelay train <preset> training.epochs=N` as a fresh process (as a user would) with
0, 1 and 2 processes spinning a core beside it, and prints the training-loop time
(`wall_time_s` in summary.json) and the whole command's time, with the slowdown ratios against
running alone. The scenarios are interleaved and repeated, and medians reported, because a
shared machine's speed drifts.

Usage: python scripts/bench_contention.py [--epochs 30] [--repeats 3] [--busy 0,1,2]
                                          [--preset yinyang_h30_ws] [OVERRIDES...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from snndelay.app.records import RunSummary

SPIN = "while True: pass"


def run_once(train_args: list[str], busy: int = 0,
             env: dict[str, str] | None = None) -> tuple[float, float]:
    """(training-loop seconds, whole-command seconds) of one `snndelay train TRAIN_ARGS` in a
    fresh process (environment env, default this one's) with `busy` spinners beside it."""
    exe = str(Path(sys.executable).parent / "snndelay")
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(busy)]
    try:
        time.sleep(0.3 if busy else 0.0)  # let the spinners occupy their cores
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            t0 = time.perf_counter()
            subprocess.run([exe, "train", *train_args, "--run-dir", str(run)], check=True,
                           stdout=subprocess.DEVNULL, env=env)
            whole = time.perf_counter() - t0
            loop = RunSummary.read(run).wall_time_s
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    return loop, whole


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", default="0,1,2", help="numbers of busy processes, comma-separated")
    ap.add_argument("--preset", default="yinyang_h30_ws")
    args, overrides = ap.parse_known_args()
    busy = [int(b) for b in args.busy.split(",")]
    loops: dict[int, list[float]] = {b: [] for b in busy}
    wholes: dict[int, list[float]] = {b: [] for b in busy}
    for r in range(args.repeats):
        for b in busy:  # interleaved, so that drift hits every scenario alike
            loop, whole = run_once([f"experiment={args.preset}", f"training.epochs={args.epochs}",
                                    *overrides], b)
            loops[b].append(loop)
            wholes[b].append(whole)
            print(f"repeat {r + 1}, {b} busy: loop {loop:.2f} s, whole command {whole:.2f} s",
                  flush=True)
    base = statistics.median(loops[busy[0]])
    print(f"\n{args.preset}, {args.epochs} epochs, median of {args.repeats} runs"
          f" ({' '.join(overrides) or 'no overrides'})")
    print("| busy processes | training loop (s) | ratio | whole command (s) |")
    print("|---|---|---|---|")
    for b in busy:
        med = statistics.median(loops[b])
        print(f"| {b} | {med:.2f} | {med / base:.2f}x | {statistics.median(wholes[b]):.2f} |")


if __name__ == "__main__":
    main()
