"""How fits are seeded: by their subset, so that ``u(S)`` is a function of ``S``.

The same subset gives the same seed in any process, which is what makes a run reproducible
whatever the number of jobs, and what makes caching it sound. Coupled training
(:mod:`~dvl_jupyter.valuation.coupling`) uses the seed of the empty set for every fit.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Iterator

import numpy as np

__all__ = ["seeded", "subset_seed"]


def subset_seed(subset: np.ndarray, random_state: int = 0) -> int:
    """A 31-bit seed from the sorted subset and a base seed: ``u(S)`` depends on S only."""
    h = hashlib.sha256(np.sort(np.asarray(subset, dtype=np.int64)).tobytes())
    h.update(int(random_state).to_bytes(8, "little", signed=True))
    return int.from_bytes(h.digest()[:4], "little") & 0x7FFFFFFF


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed numpy's and torch's global RNGs for one fit, restoring them afterwards.

    Models with ``random_state=None`` (sklearn) or torch's default initialisation draw from the
    global generators; seeding them per subset makes fits reproducible without leaving the
    user's generators changed.
    """
    np_state = np.random.get_state()
    np.random.seed(seed)
    torch = sys.modules.get("torch")
    try:
        if torch is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                yield
        else:
            yield
    finally:
        np.random.set_state(np_state)
