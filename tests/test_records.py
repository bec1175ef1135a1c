"""Typed run records: summary.json as RunSummary, checkpoint.pt as a versioned Checkpoint."""

import json

import pytest
import torch

from snndelay.app.records import CHECKPOINT_FORMAT, Checkpoint, RunSummary
from snndelay.app.runs import atomic_torch_save, load_checkpoint
from snndelay.errors import RunDirError

FIELDS = dict(epoch=2, model={"w": torch.ones(2)}, optimizer={}, shuffle_rng=torch.zeros(3),
              noise_rng=None, bump_layer=-1, bump_value=0.0, elapsed_s=1.5, rows=[{"epoch": 1}],
              best_epoch=1, best_model={"w": torch.zeros(2)})


def test_checkpoint_round_trip_carries_its_format_version(tmp_path):
    atomic_torch_save(Checkpoint(**FIELDS).to_dict(), tmp_path / "checkpoint.pt")
    raw = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.epoch == 2 and ckpt.rows == [{"epoch": 1}] and torch.equal(ckpt.model["w"],
                                                                           torch.ones(2))


def test_checkpoint_without_a_version_reads_as_format_1(tmp_path):
    atomic_torch_save(dict(FIELDS), tmp_path / "checkpoint.pt")  # written before "format"
    assert load_checkpoint(tmp_path).format == 1


@pytest.mark.parametrize("change,message", [
    ({"format": CHECKPOINT_FORMAT + 1}, "newer than this snndelay reads"),
    ({"epoch": None}, None),
])
def test_checkpoint_from_another_version_or_incomplete_is_one_clear_error(tmp_path, change,
                                                                          message):
    raw = {**FIELDS, **change}
    if message is None:  # incomplete: a required field is missing
        del raw["epoch"]
        message = "missing epoch"
    atomic_torch_save(raw, tmp_path / "checkpoint.pt")
    with pytest.raises(RunDirError, match=message):
        load_checkpoint(tmp_path)


def test_run_summary_reads_what_it_writes_and_ignores_unknown_keys(tmp_path):
    s = RunSummary("e", 0.9, 0.1, 0.8, 0.2, 3, 0.85, 0.88, 244, 5, 12.5, 0)
    raw = json.loads(s.to_json())
    raw["added_by_a_later_version"] = 1
    (tmp_path / "summary.json").write_text(json.dumps(raw))
    assert RunSummary.read(tmp_path) == s
    with pytest.raises(RunDirError, match="has not finished"):
        RunSummary.read(tmp_path / "nothing")
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(RunDirError, match="not a readable snndelay summary"):
        RunSummary.read(tmp_path)
