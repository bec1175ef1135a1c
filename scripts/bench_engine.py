"""Benchmark one layer's forward+backward: time per call and peak memory (tables in docs/results.md).

Usage: python scripts/bench_engine.py [--repeats N] [--ratio 2] [--case NAME] [--impl torch]
                                     [--threads N]
Each case runs in a fresh subprocess so that the peak resident memory (ru_maxrss) is its own.
"spiking": the fraction of (sample, neuron) pairs that fire; "spikes": spikes per pair (the
multi-spike case shd_ms, spike trains of up to 8 spikes).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

from snndelay.engine.types import DELAY_TYPES, DelayKind

# gain: each neuron's total input weight is drawn from this range (units of threshold), so that
# some neurons stay silent (and scan all their inputs) while others fire early.
CASES = {
    "yinyang_in": dict(batch=150, n_in=4, n_out=30, spikes=1, gain=(1.0, 6.0)),
    "yinyang_out": dict(batch=150, n_in=30, n_out=3, spikes=1, gain=(1.0, 6.0)),
    "mnist": dict(batch=80, n_in=784, n_out=350, spikes=1, gain=(1.5, 5.0)),
    "shd": dict(batch=32, n_in=700, n_out=128, spikes=10, gain=(3.0, 25.0)),
    # the same layer with multi-spike neurons (spike trains of up to 8 spikes, section 11)
    "shd_ms": dict(batch=32, n_in=700, n_out=128, spikes=10, gain=(3.0, 25.0), max_spikes=8),
}
DELAYS = DELAY_TYPES


def _run_one(case: str, delay: str, ratio: float, repeats: int, impl: str,
             threads: int = 0) -> dict:
    import torch

    from snndelay.engine import _impl, first_spike_times, set_implementation, spike_trains

    set_implementation(impl)
    if threads:  # exactly this many numba threads, for every layer size (no contention rule)
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        _impl.set_parallel_min_work(0)

    torch.manual_seed(0)
    p = CASES[case]
    b, n_in, n_out, spikes = p["batch"], p["n_in"], p["n_out"], p["spikes"]
    shape = (b, n_in) if spikes == 1 else (b, n_in, spikes)
    t_in = 0.15 + 1.85 * torch.rand(shape, dtype=torch.float64)
    if spikes > 1:  # event data: sorted spike trains over ~10 tau_s, some channels shorter
        t_in = torch.sort(10.0 * torch.rand(shape, dtype=torch.float64), dim=-1).values
        t_in[torch.rand(shape) < 0.3] = float("inf")
    lo, hi = p["gain"]
    gain = lo + (hi - lo) * torch.rand(n_out, dtype=torch.float64)
    if ratio == 1.0:  # the PSP peaks at w/e instead of w/2
        gain = gain * (math.e / 2.0)
    w = (torch.randn(n_in, n_out, dtype=torch.float64) + 1.0) * gain / (n_in * spikes)
    w.requires_grad_()
    d = DelayKind(delay).broadcast_shape(n_in, n_out)
    if d is not None:
        d = torch.rand(d, dtype=torch.float64).requires_grad_()

    k = p.get("max_spikes", 1)

    def call():
        if k > 1:
            out = spike_trains(t_in, w, d, tau_mem=ratio, max_spikes=k)
        else:
            out = first_spike_times(t_in, w, d, tau_mem=ratio)
        torch.where(torch.isfinite(out), out, 0.0).sum().backward()
        return out

    t0 = time.perf_counter()
    out = call()  # warm-up (and numba's compile-cache load)
    warm = time.perf_counter() - t0
    inner = max(1, min(1000, int(0.3 / max(warm, 1e-6))))  # small layers: average many calls
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            out = call()
        times.append((time.perf_counter() - t0) / inner)
    fin = torch.isfinite(out)
    frac_spiking = float((fin if k == 1 else fin[..., 0]).double().mean())
    # spikes per (sample, neuron): 0 or 1 for first-spike layers, up to max_spikes for trains
    per_neuron = float(fin.double().sum(-1).mean()) if k > 1 else frac_spiking
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return dict(case=case, delay=delay, ratio=ratio, seconds=min(times),
                peak_mb=peak_mb, spiking=frac_spiking, spikes=per_neuron)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ratio", type=float, default=2.0, help="tau_mem / tau_syn (1 or 2)")
    ap.add_argument("--case", choices=list(CASES), action="append")
    ap.add_argument("--delay", choices=DELAYS, action="append")
    ap.add_argument("--impl", choices=("auto", "torch", "numba"), default="auto",
                    help="engine implementation on CPU (auto = numba when installed)")
    ap.add_argument("--threads", type=int, default=0,
                    help="numba threads for every layer (default: the run-time policy)")
    ap.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        print(json.dumps(_run_one(args._child[0], args._child[1], args.ratio, args.repeats,
                                  args.impl, args.threads)))
        return
    print(f"implementation: {args.impl}; best of {args.repeats} timings of forward+backward after a warm-up")
    print(f"{'layer':<40}{'delay':<11}{'ms/call':>10}{'peak MB':>10}{'spiking':>9}"
          f"{'spikes':>8}")
    for case in args.case or CASES:
        for delay in args.delay or DELAYS:
            res = subprocess.run(
                [sys.executable, __file__, "--_child", case, delay, "--ratio", str(args.ratio),
                 "--repeats", str(args.repeats), "--impl", args.impl,
                 "--threads", str(args.threads)],
                capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            p = CASES[case]
            name = f"B={p['batch']} {p['n_in']}" + (f"x{p['spikes']}" if p["spikes"] > 1 else "") \
                + f"->{p['n_out']}" + (f" K={p['max_spikes']}" if "max_spikes" in p else "") \
                + f" (ratio {args.ratio:g})"
            print(f"{name:<40}{delay:<11}{1e3 * r['seconds']:>10.2f}{r['peak_mb']:>10.0f}"
                  f"{r['spiking']:>9.2f}{r['spikes']:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
