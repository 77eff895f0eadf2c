"""Permutation sampling for TMC, reproducible per permutation.

Permutation ``i`` of a run is drawn from its own generator
``SeedSequence(entropy, spawn_key=(i,))``, so it does not depend on how many permutations were
drawn before it, by whom, or in which order: the same seed gives the same permutations whatever
the number of jobs, and a resumed run draws the same ones again.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PermutationSampler", "resolve_entropy"]


def resolve_entropy(seed: int | np.random.SeedSequence | None) -> int:
    """An integer entropy for the run: the seed itself, or fresh entropy recorded on the result."""
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.entropy)  # type: ignore[arg-type]
    if seed is None:
        return int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    if isinstance(seed, (bool, float)) or int(seed) != seed or seed < 0:
        from .exceptions import DvlValueError

        raise DvlValueError(f"seed must be a non-negative integer or None; got {seed!r}.")
    return int(seed)


class PermutationSampler:
    """Permutations of ``n`` points; with ``antithetic`` each odd one reverses the one before.

    Antithetic pairs walk the same points from both ends, which lowers the variance of the
    estimates at no extra cost.
    """

    def __init__(self, n: int, entropy: int, antithetic: bool = False) -> None:
        self.n = n
        self.entropy = entropy
        self.antithetic = antithetic

    def permutation(self, i: int) -> np.ndarray:
        base = i - (i % 2) if self.antithetic else i
        rng = np.random.default_rng(np.random.SeedSequence(self.entropy, spawn_key=(base,)))
        perm = rng.permutation(self.n).astype(np.int64)
        return perm[::-1].copy() if self.antithetic and i % 2 else perm
