"""Training at the scale of SHD and SSC: synthetic recordings with SHD's layout and statistics
(700 channels, clips of about 1 s, --events events per clip), at SHD's size (8,156 training /
2,264 test clips, 20 classes) or SSC's (75,466 / 20,382, 35 classes).

For each network (shd_ms: 140 x 8 -> 256 spike-train neurons -> max-voltage readout; 2x256:
two such hidden layers) and each device (cpu: the compiled path; cuda when torch sees a GPU),
in a fresh process each (peak memory is the process's own):
- the time before the first epoch: composing the config and reading, checking and encoding
  every split, cold (empty cache) and cached (data/cache.py);
- one training epoch and one evaluation of the test split, timed on --batches batches of the
  training file (and as many test samples) and scaled to the whole file (the per-sample cost
  does not depend on the position in the file);
- peak memory: the process's maximum resident set, and on a GPU torch's peak allocation.

    python scripts/bench_scale.py --size shd [--nets shd_ms,2x256] [--devices cpu,cuda]
        [--batches 20] [--threads 2] [--json out.json]

The files are written once to --data-dir (default /tmp/snndelay-bench-SIZE).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

SIZES = {"shd": (8156, 2264, 20), "ssc": (75466, 20382, 35)}
NETS = {
    "shd_ms": [],
    "2x256": ["network.hidden=[256,256]", "neuron.max_spikes=[8,8,1]",
              "network.weight_mean=[0.0,0.0,0.0]", "network.weight_std=[0.15,0.15,0.1]",
              "training.lr=[0.002,0.002,0.002]", "training.lr_delay=[0.01,0.01,0.01]"],
}


def write_files(root: Path, n_train: int, n_test: int, classes: int, events: int,
                seed: int = 0) -> None:
    """SHD-format files: per clip a duration U(0.6, 1.3) s and ~events events (Poisson) on
    700 channels, drawn from three class-dependent bands (formant-like) over a spread
    background, at uniform times within the clip."""
    import h5py

    folder = root / "SHD"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.uniform(50, 650, (classes, 3))
    for part, n in (("train", n_train), ("test", n_test)):
        path = folder / f"shd_{part}.h5"
        if path.is_file():
            continue
        labels = rng.integers(0, classes, n)
        labels[0] = classes - 1
        tmp = path.with_suffix(".tmp")
        with h5py.File(tmp, "w") as f:
            vf, vu = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
            times = f.create_dataset("spikes/times", (n,), dtype=vf)
            units = f.create_dataset("spikes/units", (n,), dtype=vu)
            for k in range(n):
                m = max(1, rng.poisson(events))
                band = rng.integers(0, 4, m)  # 3: the background
                ch = np.where(band < 3, rng.normal(centres[labels[k]][np.minimum(band, 2)], 25),
                              rng.uniform(0, 700, m))
                ch = np.clip(ch, 0, 699).astype(np.uint16)
                t = np.sort(rng.uniform(0, rng.uniform(0.6, 1.3), m)).astype(np.float32)
                times[k], units[k] = t, ch
            f.create_dataset("labels", data=labels.astype(np.uint16))
            # what tonic's reader opens besides the spikes
            f.create_dataset("extra/keys", data=np.array([f"c{k}".encode()
                                                          for k in range(classes)]))
            f.create_dataset("extra/speaker", data=rng.integers(0, 12, n).astype(np.uint16))
        os.replace(tmp, path)
        with zipfile.ZipFile(str(path) + ".zip", "w"):
            pass  # tonic wants the archive beside the file; it is never read


def _overrides(args: argparse.Namespace, net: str, device: str, train_size: int | None
               ) -> list[str]:
    out = ["experiment=shd_ms", f"dataset.root={args.data_dir}", "dataset.val_size=300",
           f"training.threads={args.threads}", *NETS[net]]
    if device != "cpu":
        out.append(f"training.device={device}")
    if train_size is not None:
        out += [f"dataset.train_size={train_size}", f"dataset.test_size={train_size}"]
    return out


def _before_first_epoch(overrides: list[str]) -> float:
    """Seconds of composing the config and reading every split (a fresh process's imports
    included: the time a user waits)."""
    t0 = time.perf_counter()
    from snndelay.app.trainer import check_data
    from snndelay.config import compose

    check_data(compose(overrides)[1].dataset)
    return time.perf_counter() - t0


def one(args: argparse.Namespace) -> dict:
    """In this process: one network on one device (args.net, args.device)."""
    import torch

    from snndelay.app.runs import use_threads
    from snndelay.app.trainer import Trainer, evaluate, load_split
    from snndelay.config import compose, resolve

    n_train, n_test, _ = SIZES[args.size]
    subset = args.batches * 32
    spec = resolve(compose(_overrides(args, args.net, args.device, subset))[1])
    threads = use_threads(spec)
    trainer = Trainer(spec)
    trainer.train_epoch()  # warm-up (numba's cache, the allocator); not timed
    t0 = time.perf_counter()
    trainer.train_epoch()
    epoch = time.perf_counter() - t0
    test = load_split(spec.dataset, "test")
    t0 = time.perf_counter()
    evaluate(trainer.net, test, spec, trainer.backend)
    evaluation = time.perf_counter() - t0
    n_fit = len(trainer.train_split.labels)
    out = {"net": args.net, "device": args.device, "threads": threads,
           "params": trainer.net.n_params(), "timed_train_samples": n_fit,
           "epoch_s": epoch * (n_train - 300) / n_fit,
           "eval_test_s": evaluation * n_test / len(test.labels),
           "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}
    if args.device == "cuda":
        out["gpu_peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
        out["gpu"] = torch.cuda.get_device_name()
    return out


def _run_self(argv: list[str], env: dict[str, str]) -> dict:
    res = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True,
                         env=env)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="shd")
    ap.add_argument("--nets", default="shd_ms,2x256")
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--batches", type=int, default=20, help="training batches timed")
    ap.add_argument("--threads", type=int, default=0, help="training.threads (0: all)")
    ap.add_argument("--events", type=int, default=8000, help="mean events per clip")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--one", nargs=2, metavar=("NET", "DEVICE"), help=argparse.SUPPRESS)
    ap.add_argument("--before", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.data_dir = args.data_dir or Path(f"/tmp/snndelay-bench-{args.size}")
    if args.before:
        print(json.dumps({"s": _before_first_epoch(_overrides(args, "shd_ms", "cpu", None))}))
        return
    if args.one:
        args.net, args.device = args.one
        print(json.dumps(one(args)))
        return
    n_train, n_test, classes = SIZES[args.size]
    t0 = time.perf_counter()
    write_files(args.data_dir, n_train, n_test, classes, args.events)
    print(f"files: {args.data_dir} ({time.perf_counter() - t0:.0f} s)", flush=True)
    common = ["--size", args.size, "--data-dir", str(args.data_dir), "--threads",
              str(args.threads), "--batches", str(args.batches)]
    results: dict = {"size": args.size, "train": n_train, "test": n_test, "classes": classes,
                     "events_per_clip": args.events, "runs": []}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SNNDELAY_CACHE_DIR": cache}
        results["before_first_epoch_cold_s"] = _run_self([*common, "--before"], env).get("s")
        results["before_first_epoch_cached_s"] = _run_self([*common, "--before"], env).get("s")
        print(f"before the first epoch: cold {results['before_first_epoch_cold_s']:.1f} s, "
              f"cached {results['before_first_epoch_cached_s']:.1f} s", flush=True)
        import torch

        for device in args.devices.split(","):
            if device == "cuda" and not torch.cuda.is_available():
                results["runs"].append({"device": "cuda", "error": "no GPU visible: not measured"})
                print("cuda: no GPU visible, not measured", flush=True)
                continue
            for net in args.nets.split(","):
                row = _run_self([*common, "--one", net, device], env)
                results["runs"].append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
