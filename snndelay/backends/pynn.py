"""backend=pynn: a first-spike network run in a PyNN simulator (NEST or Brian2), the spike
times it returns taken by the exact backward on the host, as on the chip (docs/model.md
section 8). The network construction is backends/pynn_net.py.

NEST runs the precise-spike-time neuron iaf_psc_exp_ps (spikes off the time grid, exact
integration between events), so its spike times match the engine's closed form to the
simulator's round-off. Brian2 runs PyNN's IF_curr_exp on its time step. Both fire once: a
refractory period longer than the run. Delays must lie on the simulator's grid: the backend
realises them rounded to it (training and the gradient then see the rounded network) and
reports how far they moved and how that moved the spike times (`rounding`)."""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from snndelay.backends.base import Backend, BackendConfig, BackendRun, register
from snndelay.backends.bss2.rules import check_first_spike_only
from snndelay.engine.types import DelayKind, LayerParams
from snndelay.errors import BackendUnavailable, need

if TYPE_CHECKING:
    from snndelay.model.network import Network
    from snndelay.spec import NetworkSpec, RunSpec

SIMULATORS = ("nest", "brian2")
RESET = "PyNN's standard cells reset to a value after a spike, not by subtraction"
REFRACTORY_MS = 1e7  # longer than any run: every neuron fires at most once


@dataclass
class PynnConfig(BackendConfig):
    name: str = "pynn"
    simulator: str = "nest"  # nest (precise spike times) or brian2 (its time step)
    time_unit_ms: float = 10.0  # ms per model time unit (tau_s = 1 -> 10 ms)
    resolution_ms: float = 0.01  # the simulator's step; delays are realised on this grid
    batch_size: int = 100  # samples per simulator run (each its own copy of the network)

    def check(self, network: NetworkSpec) -> None:
        need(self.simulator in SIMULATORS, "backend.simulator",
             f"must be one of {', '.join(SIMULATORS)}", self.simulator)
        need(0 < self.time_unit_ms <= 1e4, "backend.time_unit_ms", "must be in (0, 1e4] ms",
             self.time_unit_ms)
        need(0 < self.resolution_ms <= self.time_unit_ms / 10, "backend.resolution_ms",
             "must be in (0, time_unit_ms / 10] (a tenth of tau_s at most)", self.resolution_ms)
        need(isinstance(self.batch_size, int) and 1 <= self.batch_size <= 10_000,
             "backend.batch_size", "must be an integer in [1, 10000]", self.batch_size)


def _numba_without_openmp() -> None:
    """NEST's wheel brings its own OpenMP runtime; the engine's numba loops on the system's
    OpenMP (numba's "omp" threading layer) beside it crash NEST's next ResetKernel. So, before
    numba starts its threads, choose its own "workqueue" layer (results do not depend on the
    layer); where they run on OpenMP already, refuse with the way out."""
    try:
        import numba
    except ImportError:
        return
    try:
        layer = numba.threading_layer()
    except ValueError:  # not started yet
        numba.config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]
        return
    if layer == "omp":
        raise BackendUnavailable("backend=pynn on NEST cannot run beside numba's OpenMP threads "
                                 "(two OpenMP runtimes in one process); set "
                                 "NUMBA_THREADING_LAYER=workqueue")


def _import(simulator: str) -> Any:
    """pyNN.nest or pyNN.brian2; BackendUnavailable (one line) where it does not import."""
    os.environ.setdefault("PYNEST_QUIET", "1")  # no NEST banner on stdout
    if simulator == "nest":
        _numba_without_openmp()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if simulator == "nest":
                import pyNN.nest as sim
            else:
                import pyNN.brian2 as sim
    except Exception as exc:  # a simulator that fails to load raises more than ImportError
        raise BackendUnavailable(f"backend=pynn with backend.simulator={simulator} needs PyNN "
                                 f"and {simulator} ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}); pip install "
                                 "'snndelay[pynn]'") from None
    return sim


@functools.lru_cache(maxsize=None)
def _native_cell(sim: Any, model: str) -> Any:
    """PyNN's cell type of a native NEST model, made once per process: a second one made after
    the kernel ran crashes NEST 3.10 in its next ResetKernel."""
    cell = sim.native_cell_type(model)
    cell.default_parameters.pop("is_refractory", None)  # read-only in NEST 3
    return cell


@register
class PynnBackend(Backend):
    """First spikes from a PyNN simulator; the backward is the engine's at those times."""

    name = "pynn"
    Config = PynnConfig
    deploys = True  # `deploy --hw --backend pynn`: the trained network itself, in the simulator
    runs_bundle = False

    def __init__(self, cfg: PynnConfig):
        from snndelay.backends import pynn_net

        self.cfg = cfg
        sim = _import(cfg.simulator)
        if cfg.simulator == "nest":
            self.simulator = pynn_net.Simulator(sim, self._nest_cell(sim), -1.0,
                                                {"spike_precision": "off_grid",
                                                 "verbosity": "error"}, "V_m")
        else:
            self.simulator = pynn_net.Simulator(sim, self._brian2_cell(sim), -1.0, {})
        self.rounding: dict[str, float] = {}

    @classmethod
    def check(cls, spec: RunSpec) -> None:
        super().check(spec)
        check_first_spike_only(spec.network, cls.name, RESET)

    @classmethod
    def ensure_available(cls, cfg: BackendConfig | None = None) -> None:
        _import(cfg.simulator if isinstance(cfg, PynnConfig) else "nest")

    @classmethod
    def from_spec(cls, spec: RunSpec, *, seed: int = 0,
                  bundle: list[LayerParams] | None = None) -> PynnBackend:
        assert isinstance(spec.backend, PynnConfig)
        return cls(spec.backend)

    # -- cells ---------------------------------------------------------------------------------
    def _nest_cell(self, sim: Any) -> Any:
        cell = _native_cell(sim, "iaf_psc_exp_ps")
        unit = self.cfg.time_unit_ms

        def make(layer: LayerParams) -> Any:
            n = layer.neuron
            return cell(C_m=1000.0, tau_m=n.tau_mem * unit, tau_syn_ex=n.tau_syn * unit,
                        tau_syn_in=n.tau_syn * unit, E_L=0.0, V_reset=0.0,
                        V_th=float(n.threshold), t_ref=REFRACTORY_MS, I_e=0.0)
        return make

    def _brian2_cell(self, sim: Any) -> Any:
        unit = self.cfg.time_unit_ms

        def make(layer: LayerParams) -> Any:
            n = layer.neuron
            return sim.IF_curr_exp(cm=1.0, tau_m=n.tau_mem * unit, tau_syn_E=n.tau_syn * unit,
                                   tau_syn_I=n.tau_syn * unit, v_rest=0.0, v_reset=0.0,
                                   v_thresh=float(n.threshold), tau_refrac=REFRACTORY_MS,
                                   i_offset=0.0)
        return make

    # -- running -------------------------------------------------------------------------------
    def realise(self, net: Network) -> list[LayerParams]:
        """The network's layers with every delay rounded to the simulator's grid."""
        step = self.cfg.resolution_ms / self.cfg.time_unit_ms
        out, moved = [], 0.0
        for layer in net.layer_params():
            if layer.kind is not DelayKind.NONE:
                d = np.asarray(layer.delays, dtype=np.float64)
                r = np.round(d / step) * step
                moved = max(moved, float(np.abs(r - d).max(initial=0.0)))
                layer = replace(layer, delays=r)
            out.append(layer)
        self.rounding["max_delay_change"] = moved
        return out

    def run(self, net: Network, t_in: np.ndarray, *, training: bool = False) -> BackendRun:
        from snndelay.backends.pynn_net import run_network

        params = self.realise(net)
        # After its last arrival a membrane has one extremum (docs/model.md section 2): a
        # crossing comes within a few tau_m of it.
        horizon = 5.0 * max(net.tau_mem, net.tau_syn)
        bs = self.cfg.batch_size
        with warnings.catch_warnings():  # PyNN 0.13 calls NEST APIs that NEST 3.10 deprecates
            warnings.simplefilter("ignore")
            chunks = [run_network(self.simulator, params, np.asarray(t_in[b:b + bs]),
                                  self.cfg.time_unit_ms, self.cfg.resolution_ms, horizon)
                      for b in range(0, len(t_in), bs)]
        times = [np.concatenate([c[k] for c in chunks]) for k in range(len(params))]
        return self.result(net, times, params)

    def realisation(self, net: Network, t_in: np.ndarray) -> dict[str, float]:
        """How far rounding the delays to the simulator's grid moved them (max, tau_s) and the
        engine's spike times of every layer (max over spikes present before and after, tau_s;
        spikes that appear or vanish, as a fraction of (sample, neuron) pairs): what the
        simulator cannot represent, measured with the engine."""
        exact = net.forward(t_in)[0]
        rounded = net.forward(t_in, params=self.realise(net))[0]
        diffs = [np.abs(a[m] - b[m]) for a, b in zip(exact, rounded)
                 for m in [np.isfinite(a) & np.isfinite(b)]]
        flips = sum(int((np.isfinite(a) != np.isfinite(b)).sum()) for a, b in zip(exact, rounded))
        pairs = sum(a.size for a in exact)
        return {"max_delay_change": self.rounding["max_delay_change"],
                "max_spike_time_change": max((float(d.max(initial=0.0)) for d in diffs),
                                             default=0.0),
                "spikes_appearing_or_vanishing": flips / max(pairs, 1)}

    @staticmethod
    def describe_realisation(figures: dict[str, float]) -> str:
        return (f"delays rounded to the simulator's grid: moved by up to "
                f"{figures['max_delay_change']:.2g} tau_s, which moves the engine's spike times by "
                f"up to {figures['max_spike_time_change']:.2g} tau_s; "
                f"{100 * figures['spikes_appearing_or_vanishing']:.2f} % of spikes appear or "
                "vanish")

    def info(self) -> dict:
        return {"name": self.name, "simulator": self.cfg.simulator,
                "time_unit_ms": self.cfg.time_unit_ms, "resolution_ms": self.cfg.resolution_ms,
                **self.rounding}
