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
