"""A utility that grows its worker's memory, importable by loky workers."""

from __future__ import annotations

import time

import numpy as np

_HELD: list[np.ndarray] = []


def leaky_utility(subset: np.ndarray) -> float:
    """u(S) = |S|. From a worker's second call on (loky measures its reference memory after
    the first), every call keeps 400 MB alive and outlasts loky's 1 s check delay, so loky
    replaces the worker while tasks are pending, as it does when a reused worker imports
    torch."""
    if _HELD or getattr(leaky_utility, "called", False):
        _HELD.append(np.ones(400 * 2**20 // 8))
    leaky_utility.called = True  # type: ignore[attr-defined]
    time.sleep(1.1)
    return float(len(subset))
