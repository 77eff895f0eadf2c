"""Exact semivalues by enumeration, for the sampled semivalues' tests (n <= 10)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from dvl_jupyter.valuation import Dataset


def points(n: int) -> Dataset:
    return Dataset(np.arange(n, dtype=float)[:, None], np.zeros(n))


def exact_semivalue(u: Callable[[np.ndarray], float], n: int,
                    coefficient: Callable[[int, int], float]) -> np.ndarray:
    """v_i = sum over S not containing i of coefficient(n, |S|) (u(S + i) - u(S))."""
    assert n <= 10, "enumeration is 2^n subsets"
    memo: dict[tuple[int, ...], float] = {}

    def value(s: tuple[int, ...]) -> float:
        if s not in memo:
            memo[s] = float(u(np.array(s, dtype=np.int64)))
        return memo[s]

    v = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for k in range(n):
            for s in itertools.combinations(others, k):
                v[i] += coefficient(n, k) * (value(tuple(sorted(s + (i,)))) - value(s))
    return v


def exact_banzhaf(u: Callable[[np.ndarray], float], n: int) -> np.ndarray:
    """The mean marginal over all 2^(n-1) subsets of the others, by enumeration."""
    return exact_semivalue(u, n, lambda n, k: 0.5 ** (n - 1))


def z_scores(estimate: np.ndarray, exact: np.ndarray, stderr: np.ndarray) -> np.ndarray:
    assert np.all(stderr > 0), "a sampled value needs a standard error"
    return (np.asarray(estimate) - exact) / stderr
