"""Fixtures shared by every test directory."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_torch_thread():
    """Training tests stay on one torch thread: the two cores are shared with other tests'
    workers, and one thread per small fit was measured fastest (see ``torch_threads``)."""
    from dvl_jupyter.valuation.utils import torch_threads

    with torch_threads(1):
        yield
