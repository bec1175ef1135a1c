import os

# backend=pynn's tests run NEST in the same worker as engine tests: numba's loops must not run
# on the system's OpenMP beside NEST's own (snndelay.backends.pynn._numba_without_openmp);
# results do not depend on the threading layer.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

# Encoded recordings are cached on disk (snndelay/data/cache.py): tests keep theirs in a
# directory of their own, removed when the session (or xdist worker) ends.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

if "SNNDELAY_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="snndelay-test-cache-")
    os.environ["SNNDELAY_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, True)

import pytest

from snndelay.engine import _impl

IMPLS = ["torch"] + (["numba"] if _impl.HAVE_NUMBA else [])


@pytest.fixture(params=IMPLS)
def engine_impl(request):
    """Runs a test once per CPU implementation of the engine (vectorised torch, numba); engine
    test modules use it for every test (pytestmark)."""
    _impl.set_implementation(request.param)
    yield request.param
    _impl.set_implementation("auto")


@pytest.fixture(autouse=True)
def _restore_engine_impl():
    """Tests that pick an implementation themselves leave the default behind."""
    yield
    _impl.set_implementation("auto")
