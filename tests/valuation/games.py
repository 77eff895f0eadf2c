"""Small cooperative games with known structure, and exact Shapley values by enumeration."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np


def exact_shapley(u: Callable[[np.ndarray], float], n: int) -> np.ndarray:
    """phi_i = sum over S not containing i of |S|!(n-|S|-1)!/n! (u(S+i) - u(S)); n <= 10."""
    assert n <= 10, "enumeration is 2^n subsets"
    cache: dict[frozenset, float] = {}

    def value(s: frozenset) -> float:
        if s not in cache:
            cache[s] = float(u(np.array(sorted(s), dtype=np.int64)))
        return cache[s]

    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for k in range(n):
            w = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for s in itertools.combinations(others, k):
                s = frozenset(s)
                phi[i] += w * (value(s | {i}) - value(s))
    return phi


class WeightedVotingGame:
    """u(S) = 1 if the weights of S exceed the quota: a step function, strongly non-additive."""

    def __init__(self, weights: list[float], quota: float) -> None:
        self.weights = np.asarray(weights, dtype=float)
        self.quota = quota

    def __call__(self, s: np.ndarray) -> float:
        return float(self.weights[s].sum() > self.quota)


class SaturatingGame:
    """u(S) = sqrt(sum of weights): diminishing returns, every point's marginal varies with S."""

    def __init__(self, weights: list[float]) -> None:
        self.weights = np.asarray(weights, dtype=float)

    def __call__(self, s: np.ndarray) -> float:
        return float(np.sqrt(self.weights[s].sum()))


class PairsGame:
    """Points come in complementary pairs: a pair is worth 1 only when both are in S.

    Plus a small additive part; the last point is a null player (adds nothing, ever).
    """

    def __init__(self, n_pairs: int, additive: list[float]) -> None:
        self.n_pairs = n_pairs
        self.additive = np.asarray(additive, dtype=float)  # one per paired point

    @property
    def n(self) -> int:
        return 2 * self.n_pairs + 1

    def __call__(self, s: np.ndarray) -> float:
        members = set(int(i) for i in s)
        pairs = sum(1 for p in range(self.n_pairs) if {2 * p, 2 * p + 1} <= members)
        add = sum(self.additive[i] for i in members if i < 2 * self.n_pairs)
        return float(pairs + add)
