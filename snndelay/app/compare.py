"""The delay-type comparison (the paper's central experiment): for each delay type, hidden size
and seed one run through the sweep machinery; test error per (delay type, hidden size) as
comparison.csv, comparison.md and comparison.png."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from snndelay.app.sweep import default_sweep_dir
from snndelay.app.tables import COMPARE_FIELDS, CompareCell, SweepRow
from snndelay.errors import ConfigError
from snndelay.model.sharing import DELAY_TYPES, DelayKind

DELAYS = DELAY_TYPES
# Without an experiment= override each delay type runs with its own published Yin-Yang recipe
# (docs/model.md section 6: learning rates and weight initialisation differ between the rows).
YINYANG_PRESETS = {DelayKind.NONE: "yinyang_h30_w", DelayKind.AXONAL: "yinyang_h30_wa",
                   DelayKind.DENDRITIC: "yinyang_h30_wd", DelayKind.SYNAPTIC: "yinyang_h30_ws"}


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def sweep_overrides(user: list[str], hidden: list[int], seeds: int) -> list[str]:
    """The sweep: the user's overrides + delay type x hidden size x seed."""
    for o in user:
        owned = {"delay": "the delay type", "network.hidden": "--hidden", "training.seed": "--seeds"}
        if _key(o) in owned:
            raise ConfigError(f"{_key(o)}: compare-delays sweeps it itself ({owned[_key(o)]}); "
                              "drop this override")
    if not hidden or any(h < 1 for h in hidden):
        raise ConfigError(f"--hidden: needs hidden sizes >= 1, got {hidden}")
    if seeds < 1:
        raise ConfigError(f"--seeds: must be >= 1, got {seeds}")
    if any(_key(o) == "experiment" for o in user):
        axis = "delay=" + ",".join(DELAYS)
    else:
        axis = "experiment=" + ",".join(YINYANG_PRESETS[DelayKind(d)] for d in DELAYS)
    return list(user) + [axis, "network.hidden=" + ",".join(str(h) for h in hidden),
                         f"training.seed=range({seeds})"]


def aggregate(rows: list[SweepRow]) -> list[CompareCell]:
    """One cell per (delay type, hidden size): the test errors (percent) of its runs."""
    cells: dict[tuple[str, str], CompareCell] = {}
    for row in rows:
        if not row.delay:
            continue  # the job failed before its config was known
        c = cells.setdefault((row.delay, row.hidden), CompareCell(row.delay, row.hidden))
        if row.failed or row.test_accuracy is None:
            c.failed += 1
            continue
        c.errors.append(100.0 * (1.0 - row.test_accuracy))
        c.n_params = row.n_params
    order = {d: k for k, d in enumerate(DELAYS)}
    return sorted(cells.values(), key=lambda c: (order.get(c.delay, 9), _hidden_num(c.hidden)))


def _hidden_num(hidden: str) -> float:
    try:
        return float(sum(int(h) for h in str(hidden).split(",")))
    except ValueError:
        return math.inf


def to_csv(cells: list[CompareCell]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COMPARE_FIELDS))
    writer.writeheader()
    for c in cells:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v)
                         for k, v in c.to_dict().items()})
    return buf.getvalue()


def _cell_text(c: CompareCell | None) -> str:
    if c is None:
        return "-"
    s = c.stats
    if s.n == 0:
        return f"failed ({c.failed})"
    text = f"{s.median:.2f} [{s.q1:.2f}, {s.q3:.2f}] ({c.n_params})"
    return text + (f", {c.failed} failed" if c.failed else "")


def table_rows(cells: list[CompareCell]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per hidden size, one column per delay type."""
    delays = [d for d in DELAYS if any(c.delay == d for c in cells)]
    hiddens = sorted({c.hidden for c in cells}, key=_hidden_num)
    index = {(c.delay, c.hidden): c for c in cells}
    header = ["hidden"] + delays
    return header, [[h] + [_cell_text(index.get((d, h))) for d in delays] for h in hiddens]


def to_markdown(cells: list[CompareCell], title: str) -> str:
    header, rows = table_rows(cells)
    lines = [f"# {title}", "",
             "Test error in %: median [interquartile range] (number of parameters).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(cells: list[CompareCell], path: Path, title: str) -> None:
    """Two panels: test error vs hidden neurons and vs parameters; IQR bands."""
    from snndelay.app.plots import plt, save_figure

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for d in DELAYS:
        pts = sorted((c for c in cells if c.delay == d and c.errors),
                     key=lambda c: _hidden_num(c.hidden))
        if not pts:
            continue
        med = [c.stats.median for c in pts]
        lo = [c.stats.q1 for c in pts]
        hi = [c.stats.q3 for c in pts]
        for ax, xs in ((axes[0], [_hidden_num(c.hidden) for c in pts]),
                       (axes[1], [c.n_params or 0 for c in pts])):
            line, = ax.plot(xs, med, marker="o", label=d)
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    axes[0].set(xlabel="hidden neurons", ylabel="test error (%)")
    axes[1].set(xlabel="parameters (log scale)", ylabel="test error (%)", xscale="log")
    params = [c.n_params for c in cells if c.errors and c.n_params]
    if params:  # readable ticks (50, 100, 200, ...) instead of powers of ten
        nice = [m * 10 ** e for e in range(0, 8) for m in (1, 2, 5)]
        axes[1].set_xticks([v for v in nice if min(params) <= v <= max(params)] or [min(params)])
    axes[1].xaxis.set_major_formatter(ScalarFormatter())
    axes[1].xaxis.set_minor_formatter(NullFormatter())
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # nothing to label when every job failed
            ax.legend(title="delays")
    fig.suptitle(title)
    save_figure(fig, path, dpi=120)


def default_out(root: Path = Path("outputs/compare")) -> Path:
    return default_sweep_dir(root)
