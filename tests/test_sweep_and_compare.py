"""`snndelay sweep` and `snndelay compare-delays` on tiny budgets: Hydra sweep expansion,
parallel joblib jobs, failing jobs, reruns, the submitit path, the comparison outputs."""

import csv
import json

import pytest
from typer.testing import CliRunner

from snndelay.app.compare import aggregate, sweep_overrides
from snndelay.app.jobs import Job, expand, make_jobs
from snndelay.app.launchers import load_launcher
from snndelay.app.sweep import run_jobs
from snndelay.app.tables import Stats, SweepRow, groups, read_summary, summary_csv
from snndelay.cli import app
from snndelay.errors import ConfigError

runner = CliRunner()
TINY = ["dataset.train_size=150", "dataset.val_size=60", "dataset.test_size=60",
        "training.batch_size=50", "training.epochs=1"]


def _summary(sweep_dir):
    with open(sweep_dir / "summary.csv") as f:
        return {r["job"]: r for r in csv.DictReader(f)}


# -- expansion --------------------------------------------------------------------------------
def test_expand_lists_ranges_and_several_keys():
    jobs = expand(["experiment=yinyang_h30_wa,yinyang_h30_ws", "training.seed=range(3)",
                   "training.epochs=5", "network.hidden=[5,5]"])
    assert len(jobs) == 6
    full, swept = jobs[0]
    assert full == ["experiment=yinyang_h30_wa", "training.seed=0", "training.epochs=5",
                    "network.hidden=[5,5]"]
    assert swept == ["experiment=yinyang_h30_wa", "training.seed=0"]
    assert {tuple(s) for _, s in jobs} == {(f"experiment={e}", f"training.seed={k}")
                                           for e in ("yinyang_h30_wa", "yinyang_h30_ws")
                                           for k in range(3)}
    assert [s for _, s in expand(["training.seed=range(1,7,3)"])] == [["training.seed=1"],
                                                                      ["training.seed=4"]]
    assert expand(["training.epochs=2"]) == [(["training.epochs=2"], [])]


@pytest.mark.parametrize("bad,fragment", [("training.lr=interval(0,1)", "discrete"),
                                          ("delay=glob(*)", "glob"),
                                          ("training.lr=[0.1", "training.lr")])
def test_expand_rejects_what_it_cannot_enumerate(bad, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        expand([bad])


def test_job_names_are_the_swept_values(tmp_path):
    jobs = make_jobs(["delay=none,axonal", "training.epochs=1"], tmp_path)
    assert [j.name for j in jobs] == ["delay=none", "delay=axonal"]
    assert jobs[1].run_dir == str(tmp_path / "delay=axonal")


def test_stats_median_iqr_mean_std():
    s = Stats.of([0.90, 0.92, 0.94, 0.96, 0.98])
    assert (s.n, s.median, s.q1, s.q3) == (5, 0.94, 0.92, 0.96)
    assert s.mean == pytest.approx(0.94)
    assert s.std == pytest.approx(0.0316227766, rel=1e-8)


def test_groups_pool_seeds_only():
    rows = [SweepRow.from_dict({"job": f"j{k}", "swept": f"delay={d} training.seed={s}",
                                "status": "done", "test_accuracy": str(a)})
            for k, (d, s, a) in enumerate([("none", 0, 0.9), ("none", 1, 0.8),
                                            ("axonal", 0, 0.7)])]
    rows.append(SweepRow.from_dict({"job": "j3", "swept": "delay=axonal training.seed=1",
                                    "status": "failed", "test_accuracy": ""}))
    by = {g.group: g for g in groups(rows)}
    assert by["delay=none"].stats.n == 2 and by["delay=none"].stats.median == pytest.approx(0.85)
    assert by["delay=axonal"].stats.n == 1 and by["delay=axonal"].failed == 1


def test_sweep_rows_round_trip_through_summary_csv(tmp_path):
    rows = [SweepRow("b", "done", "delay=axonal", "x=1", "e", "axonal", "5", 3, 0.75, 0.5,
                     0.7, 35, 1.5, 2.5, 12.5, 410.0, 280, "", "/r/b"),
            SweepRow("a", "failed", error="training.lr: must be in (0, 10], got 20")]
    path = tmp_path / "summary.csv"
    path.write_text(summary_csv(rows))
    assert read_summary(path) == sorted(rows, key=lambda r: r.job)
    assert read_summary(path)[0].failed and not read_summary(path)[1].failed


# -- running ----------------------------------------------------------------------------------
@pytest.mark.slow  # end to end, several seconds; CI runs it (pytest -m slow)
def test_parallel_sweep_reports_a_failing_job_and_rerun_skips_finished(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["sweep", *TINY, "delay=none,axonal", "training.lr=0.01,-1", "--jobs", "2",
            "--sweep-dir", str(sweep_dir)]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output  # some jobs failed
    rows = _summary(sweep_dir)
    assert len(rows) == 4
    bad = [r for r in rows.values() if r["status"] == "failed"]
    good = [r for r in rows.values() if r["status"] == "done"]
    assert len(bad) == 2 and len(good) == 2
    assert all("training.lr" in r["error"] for r in bad)
    for r in good:  # ordinary run directories
        assert (sweep_dir / r["job"] / "summary.json").is_file()
        assert 0 <= float(r["test_accuracy"]) <= 1 and int(r["n_params"]) > 0
    assert json.loads((sweep_dir / "sweep.json").read_text())["jobs"] == 2

    # Rerun: finished jobs are reused, not retrained; a removed summary reruns that job.
    finished = good[0]["job"]
    (sweep_dir / finished / "summary.json").unlink()
    res = runner.invoke(app, args)
    rows2 = _summary(sweep_dir)
    assert rows2[finished]["status"] == "done"
    assert rows2[good[1]["job"]]["status"] == "reused"
    assert rows2[good[1]["job"]]["test_accuracy"] == good[1]["test_accuracy"]
    assert sum(r["status"] == "failed" for r in rows2.values()) == 2


def test_interrupted_job_continues_from_its_checkpoint(tmp_path):
    from snndelay.app.runs import train_run
    from snndelay.config import compose

    overrides = [*TINY[:-1], "training.epochs=3", "delay=axonal"]
    cfg = compose(overrides)[1]
    ref = train_run(cfg, tmp_path / "ref", overrides).summary

    def node_failure(row):
        if row.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, tmp_path / "j", overrides, on_epoch=node_failure)
    assert not (tmp_path / "j" / "summary.json").exists()
    job = Job("j", tuple(overrides), str(tmp_path / "j"), 1, ("delay=axonal",))
    row = run_jobs([job], load_launcher("local", []), 1, tmp_path)[0]
    assert row.status == "done"
    assert row.test_accuracy == ref.test_accuracy
    assert json.loads((tmp_path / "j" / "summary.json").read_text())["epochs"] == 3


@pytest.mark.slow  # end to end, several seconds; CI runs it (pytest -m slow)
def test_slurm_path_runs_through_submitit_debug_executor(tmp_path):
    pytest.importorskip("submitit")
    sweep_dir = tmp_path / "slurm"
    res = runner.invoke(app, ["sweep", *TINY, "training.seed=0,1", "--launcher", "slurm",
                              "launcher.cluster=debug", "launcher.partition=cpu",
                              "--sweep-dir", str(sweep_dir)])
    assert res.exit_code == 0, res.output
    rows = _summary(sweep_dir)
    assert {r["status"] for r in rows.values()} == {"done"}
    assert (sweep_dir / ".submitit").is_dir()


@pytest.mark.parametrize("args,fragment", [
    (["--launcher", "pbs"], "--launcher"),
    (["launcher.cluster=moon", "--launcher", "slurm"], "launcher.cluster"),
    (["launcher.timeout_min=0", "--launcher", "slurm"], "launcher.timeout_min"),
    (["launcher.bogus=1"], "launcher.bogus: unknown key"),
    (["training.lr=-1,-2"], "training.lr"),
    (["--jobs", "0"], "--jobs"),
])
def test_sweep_user_errors_exit_2(tmp_path, args, fragment):
    res = runner.invoke(app, ["sweep", *TINY, *args, "--sweep-dir", str(tmp_path / "s")])
    assert res.exit_code == 2
    assert fragment in res.output
    assert "Traceback" not in res.output


# -- compare-delays ---------------------------------------------------------------------------
def test_compare_overrides_use_the_published_recipes_unless_an_experiment_is_given():
    ov = sweep_overrides(["training.epochs=3"], [5, 10], 2)
    assert ov == ["training.epochs=3",
                  "experiment=yinyang_h30_w,yinyang_h30_wa,yinyang_h30_wd,yinyang_h30_ws",
                  "network.hidden=5,10", "training.seed=range(2)"]
    assert sweep_overrides(["experiment=yinyang_h5_ws"], [5], 1)[1] == \
        "delay=none,axonal,dendritic,synaptic"
    for bad in (["delay=axonal"], ["network.hidden=3"], ["training.seed=1"]):
        with pytest.raises(ConfigError, match="compare-delays sweeps it"):
            sweep_overrides(bad, [5], 1)


def test_aggregate_per_delay_and_hidden_in_percent_error():
    rows = [SweepRow.from_dict({"job": f"j{a}", "delay": "none", "hidden": "5",
                                "status": "done", "test_accuracy": a, "n_params": "35"})
            for a in ("0.9", "0.8", "0.7")]
    rows.append(SweepRow.from_dict({"job": "jf", "delay": "none", "hidden": "5",
                                    "status": "failed", "test_accuracy": "", "n_params": ""}))
    (cell,) = aggregate(rows)
    c = cell.to_dict()
    assert c["runs"] == 3 and c["failed"] == 1 and c["n_params"] == 35
    assert c["median_error"] == pytest.approx(20.0)
    assert (c["q1_error"], c["q3_error"]) == (pytest.approx(15.0), pytest.approx(25.0))


@pytest.mark.slow  # end to end, several seconds; CI runs it (pytest -m slow)
def test_compare_delays_writes_csv_markdown_and_figure(tmp_path):
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare-delays", *TINY, "--hidden", "3,4", "--seeds", "1",
                              "--jobs", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with open(out / "comparison.csv") as f:
        cells = list(csv.DictReader(f))
    assert {c["delay"] for c in cells} == {"none", "axonal", "dendritic", "synaptic"}
    assert {c["hidden"] for c in cells} == {"3", "4"}
    params = {(c["delay"], c["hidden"]): int(c["n_params"]) for c in cells}
    assert params[("none", "3")] == 21 and params[("synaptic", "4")] == 56  # docs/model.md 3
    assert params[("axonal", "4")] == 36 and params[("dendritic", "3")] == 27
    md = (out / "comparison.md").read_text()
    assert "| hidden | none | axonal | dendritic | synaptic |" in md
    assert (out / "comparison.png").stat().st_size > 10_000
    assert (out / "runs" / "summary.csv").is_file()
