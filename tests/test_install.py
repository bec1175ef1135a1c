"""A non-editable install from a wheel works without the source tree: the configs travel inside
the package, and the command runs from an unrelated working directory."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # about 1 minute: a fresh install compiles the numba kernels

REPO = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300
         ) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh virtual environment holding only the built wheel; the dependencies (torch ...)
    are reused from this interpreter's site-packages through a .pth path entry, which does not
    run that directory's .pth files, so the editable install of the source tree stays out."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SNNDELAY_CONFIG_DIR", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(tmp / "dist"), str(REPO)], tmp, env)
    (wheel,) = (tmp / "dist").glob("snndelay-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "snndelay/configs/config.yaml" in names
    assert "snndelay/configs/experiment/yinyang_h30_ws.yaml" in names
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, env)
    py = venv / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                   tmp, env).stdout.strip()
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib, "_snndelay_test_deps.pth").write_text("\n".join(deps) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
          "-q", str(wheel)], tmp, env)
    return venv, env


def test_wheel_install_runs_from_unrelated_directory(wheel_venv, tmp_path: Path) -> None:
    venv, env = wheel_venv
    where = _run([str(venv / "bin" / "python"), "-c",
                  "import snndelay.config as c; print(c.__file__); print(c.config_dir())"],
                 tmp_path, env).stdout.split()
    assert str(REPO) not in where[0], "the wheel test imported the source tree"
    assert Path(where[1]) == Path(where[0]).parent.parent / "configs"  # snndelay/configs
    snndelay = str(venv / "bin" / "snndelay")
    cfg = _run([snndelay, "train", "--cfg", "experiment=yinyang_h5_ws"], tmp_path, env).stdout
    assert "name: yinyang_h5_ws" in cfg
    _run([snndelay, "train", "experiment=yinyang_h5_ws", "training.epochs=2",
          "dataset.train_size=300", "dataset.val_size=100", "dataset.test_size=100",
          "--run-dir", "run"], tmp_path, env)
    assert (tmp_path / "run" / "summary.json").is_file()
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
