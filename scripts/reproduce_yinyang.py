"""Reproduce the Yin-Yang rows of docs/model.md section 6: train each preset for several seeds and
write a table of test accuracy (median and interquartile range) and wall time.

Usage: python scripts/reproduce_yinyang.py [--seeds 5] [--epochs 300] [--jobs 1]
           [--presets yinyang_h30_w,...] [--out outputs/reproduce_yinyang]
Each run is an ordinary run directory (snndelay train) under --out; finished runs are reused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path

from snndelay.app.jobs import Job
from snndelay.app.launchers import load_launcher, threads_per_job
from snndelay.app.records import RunSummary
from snndelay.app.sweep import run_jobs
from snndelay.app.tables import Stats

PRESETS = ("yinyang_h30_w", "yinyang_h30_wa", "yinyang_h30_wd", "yinyang_h30_ws", "yinyang_h5_ws")
TARGETS = {"yinyang_h30_w": 96.7, "yinyang_h30_wa": 97.5, "yinyang_h30_wd": 97.5,
           "yinyang_h30_ws": 98.2, "yinyang_h5_ws": 95.0, "fastdeep_yinyang": 96.0}


def run_all(presets: list[str], seeds: int, epochs: int, n_jobs: int, out: Path) -> dict:
    """Every (preset, seed) as a sweep job (joblib processes, cores / n_jobs threads each);
    finished runs under out are reused."""
    jobs = [Job(f"{p}_seed{s}", (f"experiment={p}", f"training.seed={s}",
                                 f"training.epochs={epochs}"),
                str(out / f"{p}_seed{s}"), threads_per_job(n_jobs))
            for p in presets for s in range(seeds)]

    def report(row: dict) -> None:
        if row.failed:
            print(f"{row.job}: FAILED {row.error}", flush=True)
        else:
            print(f"{row.job}: test {100 * (row.test_accuracy or 0.0):.2f} %, "
                  f"{row.wall_time_s or 0.0:.1f} s ({row.status})", flush=True)

    rows = run_jobs(jobs, load_launcher("local", []), n_jobs, out, report)
    failed = [r.job for r in rows if r.failed]
    if failed:
        sys.exit(f"failed runs: {', '.join(failed)}")
    return {r.job: asdict(RunSummary.read(Path(r.run_dir))) for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=1,
                    help="runs at once (each gets cores / jobs threads)")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--out", type=Path, default=Path("outputs/reproduce_yinyang"))
    args = ap.parse_args()
    presets = [p for p in args.presets.split(",") if p]
    args.out.mkdir(parents=True, exist_ok=True)
    results = run_all(presets, args.seeds, args.epochs, args.jobs, args.out)
    lines = ["| preset | parameters | test accuracy, median [IQR] (%) | min-max (%) | target (%) "
             "| at best val. epoch, median (%) | wall time per run, median (s) |",
             "|---|---|---|---|---|---|---|"]
    rows = []
    for p in presets:
        res = [results[f"{p}_seed{s}"] for s in range(args.seeds)]
        acc = sorted(100 * r["test_accuracy"] for r in res)
        st = Stats.of(acc)
        q1, med, q3 = st.q1, st.median, st.q3
        wall = statistics.median(r["wall_time_s"] for r in res)
        best = statistics.median(100 * r["test_accuracy_at_best_val"] for r in res)
        lines.append(f"| {p} | {res[0]['n_params']} | {med:.2f} [{q1:.2f}, {q3:.2f}] | "
                     f"{acc[0]:.1f}-{acc[-1]:.1f} | {TARGETS.get(p, float('nan')):.1f} | "
                     f"{best:.2f} | {wall:.1f} |")
        rows.append({"preset": p, "n_params": res[0]["n_params"], "median": med, "q1": q1,
                     "q3": q3, "accuracies": acc, "median_at_best_val": best,
                     "wall_time_median_s": wall})
    table = "\n".join(lines)
    (args.out / "table.md").write_text(
        f"{args.seeds} seeds, {args.epochs} epochs each, test split (1000 samples)\n\n{table}\n")
    (args.out / "table.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
