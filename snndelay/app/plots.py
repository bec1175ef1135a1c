"""Figures of a run (matplotlib, written without a display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from snndelay.app.records import EpochRow  # noqa: E402
from snndelay.app.rundir import atomic_write  # noqa: E402


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """Write a figure atomically (a killed run never leaves half a PNG) and close it."""
    try:  # fixed margins (_MARGINS): one draw, no layout engine (bbox_inches="tight" or a
        # constrained layout measure every text first: half of a default run's plot time)
        atomic_write(path, lambda f: fig.savefig(f, dpi=dpi, format="png"))
    finally:
        plt.close(fig)


# Figure margins (fractions of the figure) that fit the tick labels, axis labels and titles
# of these figures at their sizes.
_MARGINS = dict(left=0.1, right=0.98, bottom=0.13, top=0.91, wspace=0.25)


def learning_curves(rows: list[EpochRow], path: Path) -> None:
    ep = [r.epoch for r in rows]
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 3.8))
    fig.subplots_adjust(**_MARGINS)
    ax_l.plot(ep, [r.train_loss for r in rows], label="train")
    ax_l.plot(ep, [r.val_loss for r in rows], label="validation")
    positive = all(r.train_loss > 0 and r.val_loss > 0 for r in rows)
    ax_l.set(xlabel="epoch", ylabel="loss", yscale="log" if positive else "linear", title="loss")
    ax_a.plot(ep, [100 * r.train_acc for r in rows], label="train")
    ax_a.plot(ep, [100 * r.val_acc for r in rows], label="validation")
    ax_a.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_l, ax_a):
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def delay_histograms(delays: dict[str, torch.Tensor], path: Path) -> None:
    """One histogram per layer of the effective delays (tau_s)."""
    n = max(1, len(delays))
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.5), squeeze=False)
    fig.subplots_adjust(**{**_MARGINS, "left": 0.16 / n, "bottom": 0.14, "wspace": 0.3})
    if not delays:
        axes[0, 0].text(0.5, 0.5, "no delays in this network", ha="center", va="center")
        axes[0, 0].set_axis_off()
    for ax, (name, d) in zip(axes[0], delays.items()):
        ax.hist(d.detach().flatten().numpy(), bins=30, color="tab:blue", alpha=0.8)
        ax.set(title=f"{name} ({d.numel()} delays)", xlabel="delay (tau_s)", ylabel="count")
    save_figure(fig, path)


def yinyang_predictions(features: torch.Tensor, labels: torch.Tensor, pred: torch.Tensor,
                        path: Path) -> None:
    """Test points at (x, y) coloured by predicted class; errors circled in red."""
    colors = ["tab:blue", "tab:orange", "tab:green"]
    fig, ax = plt.subplots(figsize=(5, 5))
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.1, top=0.93)
    x, y = features[:, 0].numpy(), features[:, 1].numpy()
    for c in range(3):
        sel = (pred == c).numpy()
        ax.scatter(x[sel], y[sel], s=8, color=colors[c], label=f"predicted {c}")
    silent = (pred < 0).numpy()
    if silent.any():
        ax.scatter(x[silent], y[silent], s=8, color="gray", label="no output spike")
    wrong = (pred != labels).numpy()
    ax.scatter(x[wrong], y[wrong], s=40, facecolors="none", edgecolors="red", linewidths=0.8,
               label=f"wrong ({int(wrong.sum())})")
    acc = 100 * (1 - wrong.mean())
    ax.set(xlabel="x", ylabel="y", title=f"test predictions ({acc:.1f} % correct)", aspect="equal")
    ax.legend(loc="upper right", fontsize=7)
    save_figure(fig, path)
