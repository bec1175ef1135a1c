import pytest

from snndelay.engine import _impl

IMPLS = ["torch"] + (["numba"] if _impl.HAVE_NUMBA else [])


@pytest.fixture(params=IMPLS, autouse=True)
def engine_impl(request):
    """Every test runs once per CPU implementation of the engine (vectorised torch, numba)."""
    _impl.set_implementation(request.param)
    yield request.param
    _impl.set_implementation("auto")
