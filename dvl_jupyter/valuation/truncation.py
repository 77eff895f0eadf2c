"""Truncation policies for TMC: stop walking a permutation once adding points no longer matters.

Policies are stateless: the driver walks many permutations at once and asks
``should_truncate(step, value, n, total)`` after each evaluation, where ``step`` is how many
points of the permutation have been added (1-based), ``value`` the utility of that prefix,
``n`` the number of points and ``total`` the utility of the full training set. After
truncation the remaining points of the permutation get a zero marginal (Ghorbani & Zou 2019),
so every point is still updated once per permutation.
"""

from __future__ import annotations

import math

from .exceptions import DvlTypeError, DvlValueError, describe_value

__all__ = ["TruncationPolicy", "NoTruncation", "FixedTruncation", "RelativeTruncation"]


class TruncationPolicy:
    """Base class: never truncates. Subclasses override :meth:`should_truncate`."""

    def should_truncate(self, step: int, value: float, n: int, total: float) -> bool:
        return False

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def spec(self) -> dict:
        return {"class": type(self).__name__, **vars(self)}


class NoTruncation(TruncationPolicy):
    """Walk every permutation to the end: plain permutation Monte Carlo Shapley."""


def _check_fraction(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DvlTypeError(f"{name} must be a number in [0, 1]; got {describe_value(value)}.")
    if not 0.0 <= float(value) <= 1.0 or math.isnan(value):
        raise DvlValueError(
            f"{name} must be in [0, 1] (a fraction of the permutation); got {value!r}. "
            f"Use e.g. {name}=0.3."
        )
    return float(value)


class FixedTruncation(TruncationPolicy):
    """Stop each permutation after a fixed fraction of its points."""

    def __init__(self, fraction: float) -> None:
        self.fraction = _check_fraction(fraction, "fraction")

    def should_truncate(self, step: int, value: float, n: int, total: float) -> bool:
        return step >= max(1, math.ceil(self.fraction * n))


class RelativeTruncation(TruncationPolicy):
    """Stop once the prefix's utility is within ``rtol`` of the full set's utility.

    Only after ``burn_in_fraction * n`` points, so that an early lucky prefix (noise) does not
    cut the permutation short: ``|u(prefix) - u(N)| <= rtol * |u(N)|``.
    """

    def __init__(self, rtol: float, burn_in_fraction: float = 0.0) -> None:
        if isinstance(rtol, bool) or not isinstance(rtol, (int, float)):
            raise DvlTypeError(f"rtol must be a number >= 0; got {describe_value(rtol)}.")
        if not rtol >= 0:
            raise DvlValueError(
                f"rtol must be >= 0 (a relative tolerance); got {rtol!r}. Use e.g. rtol=0.05."
            )
        self.rtol = float(rtol)
        self.burn_in_fraction = _check_fraction(burn_in_fraction, "burn_in_fraction")

    def should_truncate(self, step: int, value: float, n: int, total: float) -> bool:
        if step < self.burn_in_fraction * n:
            return False
        return abs(value - total) <= self.rtol * abs(total)
