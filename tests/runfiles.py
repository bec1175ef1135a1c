"""Reading run directories in tests."""

import csv
from pathlib import Path


def metrics(run: Path) -> list[dict[str, str]]:
    """metrics.csv's rows without time_s, the one column that differs between two runs that
    trained the same (it is the epoch's wall time)."""
    with open(Path(run) / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]
