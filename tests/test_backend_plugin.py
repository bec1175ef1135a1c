"""A backend is a class with its own schema and rules: a stand-in backend added here, without
touching a file outside this test, is chosen with backend=NAME, its keys are typed and
checked, its rules refuse what it cannot run, and it trains."""

from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from snndelay import backends
from snndelay.backends.base import REGISTRY, BackendConfig, SimulatorBackend, register
from snndelay.cli import app
from snndelay.config import compose, resolve
from snndelay.errors import ConfigError, need

runner = CliRunner()
CALLS: list[int] = []


@dataclass
class StandInConfig(BackendConfig):
    name: str = "standin"
    delay_shift: float = 0.0  # added to every output spike time (tau_s)

    def check(self, network) -> None:
        need(0 <= self.delay_shift <= 10, "backend.delay_shift", "must be in [0, 10] tau_s",
             self.delay_shift)


class StandIn(SimulatorBackend):
    name = "standin"
    Config = StandInConfig

    def __init__(self, shift: float):
        self.shift = shift

    @classmethod
    def check(cls, spec) -> None:
        super().check(spec)
        need(len(spec.network.layers) == 2, "network.hidden",
             "backend=standin runs one hidden layer only", spec.network.sizes)

    @classmethod
    def from_spec(cls, spec, *, seed=0, bundle=None):
        return cls(spec.backend.delay_shift)

    def run(self, net, t_in, *, training=False):
        CALLS.append(len(t_in))
        out = super().run(net, t_in, training=training)
        out.times[-1] = out.times[-1] + self.shift
        return out


@pytest.fixture
def standin():
    register(StandIn)
    CALLS.clear()
    yield StandIn
    del REGISTRY["standin"]


def test_a_stand_in_backend_with_its_own_schema_is_chosen_checked_and_trains(standin, tmp_path):
    _, cfg = compose(["backend=standin", "backend.delay_shift=0.5"])
    assert isinstance(cfg.backend, StandInConfig) and cfg.backend.delay_shift == 0.5
    spec = resolve(cfg)
    assert isinstance(backends.make_backend(spec), StandIn)
    assert "standin" in REGISTRY and "standin" not in backends.deploy_targets()
    with pytest.raises(ConfigError, match="backend.delay_shift: must be in"):
        compose(["backend=standin", "backend.delay_shift=20"])
    with pytest.raises(ConfigError, match="one hidden layer only"):
        compose(["backend=standin", "network.hidden=[4,4]"])
    with pytest.raises(ConfigError, match="backend.chip_seed: the chosen backend option does "
                                          "not use it; it applies to backend=bss2_emulator"):
        compose(["backend=standin", "backend.chip_seed=1"])
    res = runner.invoke(app, ["train", "experiment=yinyang_h5_ws", "backend=standin",
                              "training.epochs=2", "dataset.train_size=60",
                              "dataset.val_size=30", "dataset.test_size=30",
                              "--run-dir", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert CALLS and sum(CALLS) >= 2 * (60 + 30) + 30  # every batch ran on the stand-in
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "name: standin" in saved and "delay_shift: 0.0" in saved
    res = runner.invoke(app, ["evaluate", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output


def test_an_unknown_backend_is_one_line_listing_the_registered_ones():
    res = runner.invoke(app, ["train", "backend=nosuch"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "backend: no option 'nosuch'; available: bss2, bss2_emulator, pynn, simulator" \
        in res.output
