"""Stopping criteria: when a Monte Carlo valuation has sampled enough.

A criterion is called on the current `ValuationResult` after each batch of updates and answers
with a `Status`: ``Pending`` to go on, ``Converged`` (or ``Failed``) to stop. It also reports how
far along it is (`completion`, in [0, 1], for progress bars) and which data points it considers
converged (`converged`, one bool per point).

Criteria compose like the statuses they return (see `Status`)::

    MinUpdates(100) | MaxTime(seconds=600)   # stop at 100 updates per point, or after 10 min
    AbsoluteStandardError(0.01) & MinUpdates(10)
    ~MaxChecks(5)                            # converged until the 5th check (rarely useful)

The completion of ``a & b`` is the smaller of the two, of ``a | b`` the larger, of ``~a``
``1 - completion(a)``.

Names and meanings follow pyDVL's stopping criteria.
"""

from __future__ import annotations

import abc
import math
import numbers
import time
from collections import deque
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dvl_jupyter.valuation.diagnostics import spearman
from dvl_jupyter.valuation.result import Status, ValuationResult

__all__ = [
    "StoppingCriterion",
    "MinUpdates",
    "MaxUpdates",
    "MaxChecks",
    "MaxTime",
    "AbsoluteStandardError",
    "RankCorrelation",
    "RankReliability",
    "HistoryDeviation",
    "check_stopping_criterion",
    "time_is_up",
]

_EXAMPLE = "MinUpdates(100) | MaxTime(600)"


def _now() -> float:
    """Monotonic wall clock; a module function so tests can replace it."""
    return time.monotonic()


# ---------------------------------------------------------------------- argument checks


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _check_int(
    owner: str, name: str, value: Any, minimum: int, allow_none: bool = False, example: str = ""
) -> int | None:
    """An int >= minimum (or None if allowed), else an error naming owner, argument and fix."""
    if value is None and allow_none:
        return None
    what = f"an integer >= {minimum}" + (" or None" if allow_none else "")
    fix = f" Use e.g. {owner}({example})." if example else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}({name}=...) must be {what}; got {_describe(value)}.{fix}")
    if value < minimum:
        raise ValueError(f"{owner}({name}=...) must be {what}; got {value}.{fix}")
    return int(value)


def _check_float(
    owner: str,
    name: str,
    value: Any,
    low: float,
    high: float = math.inf,
    low_open: bool = True,
    high_open: bool = False,
    allow_none: bool = False,
    example: str = "",
) -> float | None:
    """A real number in the given interval (or None if allowed), else a descriptive error."""
    if value is None and allow_none:
        return None
    lo = "(" if low_open else "["
    hi = ")" if high_open or math.isinf(high) else "]"
    what = f"a number in {lo}{low:g}, {high:g}{hi}" + (" or None" if allow_none else "")
    fix = f" Use e.g. {owner}({example})." if example else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}({name}=...) must be {what}; got {_describe(value)}.{fix}")
    v = float(value)
    too_low = v <= low if low_open else v < low
    too_high = v >= high if high_open else v > high
    if math.isnan(v) or too_low or too_high:
        raise ValueError(f"{owner}({name}=...) must be {what}; got {value}.{fix}")
    # Keep an int an int, so str(criterion) shows what the user wrote: MaxTime(seconds=60).
    return int(value) if isinstance(value, numbers.Integral) else v


def check_stopping_criterion(obj: Any, name: str = "is_done") -> StoppingCriterion:
    """Return ``obj`` if it is a stopping criterion, else raise a TypeError saying what to pass.

    Parameters
    ----------
    obj : Any
        The value to check.
    name : str
        The parameter's name, for the message.

    Raises
    ------
    TypeError
        If ``obj`` is not a `StoppingCriterion` instance.
    """
    if isinstance(obj, StoppingCriterion):
        return obj
    if isinstance(obj, type) and issubclass(obj, StoppingCriterion):
        raise TypeError(
            f"{name} must be a stopping criterion such as {_EXAMPLE}; got the class "
            f"{obj.__name__} itself. Create one by calling it with its arguments."
        )
    raise TypeError(f"{name} must be a stopping criterion such as {_EXAMPLE}; got {_describe(obj)}")


# ---------------------------------------------------------------------- base


class StoppingCriterion(abc.ABC):
    """Base class: one call checks a result once and returns a `Status`.

    Subclasses implement `_check` and `completion`, and reset their own memory in `_reset`. A
    subclass that judges points one by one sets ``tracks_points = True`` and assigns
    ``self._converged`` in `_check`; otherwise every point follows the overall status. The base
    class counts checks, remembers the last status and builds composites with ``&``, ``|``, ``~``.

    A criterion keeps state between checks (counts, memory of past values), so give each run
    its own instance, or call `reset` before reusing one.
    """

    tracks_points: bool = False

    def __init__(self) -> None:
        self._n_checks = 0
        self._status = Status.Pending
        self._converged: NDArray[np.bool_] = np.zeros(0, dtype=bool)

    # -- the check

    def __call__(self, result: ValuationResult) -> Status:
        """Check ``result`` once; count the check and remember the status."""
        if not isinstance(result, ValuationResult):
            raise TypeError(
                f"{self} must be called with a ValuationResult; got {type(result).__name__}."
            )
        self._n_checks += 1
        status = self._check(result)
        if not isinstance(status, Status):  # a user subclass returning a bool, say
            raise TypeError(
                f"{type(self).__name__}._check must return a Status; got {_describe(status)}."
            )
        self._status = status
        if not self.tracks_points or self._converged.shape != (len(result),):
            self._converged = np.full(len(result), bool(status), dtype=bool)
        return status

    @abc.abstractmethod
    def _check(self, result: ValuationResult) -> Status:
        """One check of ``result``; set ``self._converged`` and return the status."""

    def updates_needed(self, result: ValuationResult) -> int | None:
        """At most how many more updates of *every* point make this criterion stop for sure,
        or None when that is not known (time, convergence statistics).

        An engine that updates all points together (TMC: one update per point and
        permutation) uses it to start no more work than the criterion can use. It does not
        count as a check.
        """
        return None

    def checks_needed(self) -> int | None:
        """At most how many more checks make this criterion stop for sure, or None when that
        is not known. Only ``MaxChecks`` knows; composites combine their parts' answers.

        An engine that checks once per batch of updates (TMC: once per merged permutation)
        starts no more batches than this. It does not count as a check.
        """
        return None

    def completion(self) -> float:
        """How far the criterion is from stopping, in [0, 1], as of the last check.

        The default is 1 once stopped and 0 before; subclasses say better where they can.
        """
        return 1.0 if self._status else 0.0

    def reset(self) -> StoppingCriterion:
        """Forget all checks, as if newly created. Returns ``self``."""
        self._n_checks = 0
        self._status = Status.Pending
        self._converged = np.zeros(0, dtype=bool)
        self._reset()
        return self

    def _reset(self) -> None:  # noqa: B027 (optional hook, empty on purpose)
        """Hook for subclasses to clear their own memory."""

    # -- state

    @property
    def n_checks(self) -> int:
        """Number of checks made since creation or the last `reset`."""
        return self._n_checks

    @property
    def status(self) -> Status:
        """Status returned by the last check (``Pending`` before any)."""
        return self._status

    @property
    def converged(self) -> NDArray[np.bool_]:
        """Per data point, whether the criterion considers it converged (as of the last check).

        Empty before the first check.
        """
        return self._converged

    # -- composition

    def __and__(self, other: StoppingCriterion) -> StoppingCriterion:
        return _And(self, _operand(other, "&"))

    def __or__(self, other: StoppingCriterion) -> StoppingCriterion:
        return _Or(self, _operand(other, "|"))

    def __rand__(self, other: Any) -> StoppingCriterion:
        return _And(_operand(other, "&"), self)

    def __ror__(self, other: Any) -> StoppingCriterion:
        return _Or(_operand(other, "|"), self)

    def __invert__(self) -> StoppingCriterion:
        return _Not(self)

    # -- display

    def _args(self) -> dict[str, Any]:
        """Constructor arguments shown by `__str__`."""
        return {}

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args().items())
        return f"{type(self).__name__}({args})"

    def __repr__(self) -> str:
        return str(self)


def _operand(other: Any, op: str) -> StoppingCriterion:
    if not isinstance(other, StoppingCriterion):
        raise TypeError(
            f"'{op}' combines stopping criteria only; got {_describe(other)}. Write e.g. "
            f"{_EXAMPLE}."
        )
    return other


class _Composite(StoppingCriterion):
    """``left & right`` or ``left | right``: checks both children every time."""

    tracks_points = True

    _symbol = ""

    def __init__(self, left: StoppingCriterion, right: StoppingCriterion) -> None:
        super().__init__()
        self.left = left
        self.right = right

    def _reset(self) -> None:
        self.left.reset()
        self.right.reset()

    def _part(self, c: StoppingCriterion) -> str:
        # Parenthesise a different operator so the string reads (and evaluates) unambiguously.
        if isinstance(c, _Composite) and c._symbol != self._symbol:
            return f"({c})"
        return str(c)

    def __str__(self) -> str:
        return f"{self._part(self.left)} {self._symbol} {self._part(self.right)}"


class _And(_Composite):
    _symbol = "&"

    def _check(self, result: ValuationResult) -> Status:
        # Both are checked (no short-circuit) so each child's completion stays current.
        a, b = self.left(result), self.right(result)
        self._converged = self.left.converged & self.right.converged
        return a & b

    def completion(self) -> float:
        return min(self.left.completion(), self.right.completion())

    def updates_needed(self, result: ValuationResult) -> int | None:
        a, b = self.left.updates_needed(result), self.right.updates_needed(result)
        return None if a is None or b is None else max(a, b)

    def checks_needed(self) -> int | None:
        a, b = self.left.checks_needed(), self.right.checks_needed()
        return None if a is None or b is None else max(a, b)


class _Or(_Composite):
    _symbol = "|"

    def _check(self, result: ValuationResult) -> Status:
        a, b = self.left(result), self.right(result)
        self._converged = self.left.converged | self.right.converged
        return a | b

    def completion(self) -> float:
        return max(self.left.completion(), self.right.completion())

    def updates_needed(self, result: ValuationResult) -> int | None:
        known = [n for n in (self.left.updates_needed(result),
                             self.right.updates_needed(result)) if n is not None]
        return min(known) if known else None

    def checks_needed(self) -> int | None:
        known = [n for n in (self.left.checks_needed(), self.right.checks_needed())
                 if n is not None]
        return min(known) if known else None


class _Not(StoppingCriterion):
    tracks_points = True

    def __init__(self, inner: StoppingCriterion) -> None:
        super().__init__()
        self.inner = inner

    def _check(self, result: ValuationResult) -> Status:
        status = ~self.inner(result)
        self._converged = ~self.inner.converged
        return status

    def completion(self) -> float:
        return 1.0 - self.inner.completion()

    def _reset(self) -> None:
        self.inner.reset()

    def __str__(self) -> str:
        inner = str(self.inner)
        return f"~({inner})" if isinstance(self.inner, _Composite) else f"~{inner}"


# ---------------------------------------------------------------------- counting criteria


class MinUpdates(StoppingCriterion):
    """Stop when every data point has at least ``n_updates`` updates.

    Completion is ``min(counts) / n_updates``: the progress of the slowest point, which is the
    one the run waits for.

    Parameters
    ----------
    n_updates : int
        Updates each point needs, >= 1.
    """

    tracks_points = True

    def __init__(self, n_updates: int) -> None:
        super().__init__()
        self.n_updates = _check_int("MinUpdates", "n_updates", n_updates, 1, example="100")
        self._last_min = 0

    def _args(self) -> dict[str, Any]:
        return {"n_updates": self.n_updates}

    def _check(self, result: ValuationResult) -> Status:
        counts = result.counts
        self._converged = counts >= self.n_updates
        self._last_min = int(counts.min()) if counts.size else self.n_updates
        return Status.Converged if self._converged.all() else Status.Pending

    def completion(self) -> float:
        return min(1.0, self._last_min / self.n_updates)

    def updates_needed(self, result: ValuationResult) -> int | None:
        counts = result.counts
        return max(0, self.n_updates - int(counts.min())) if counts.size else 0

    def _reset(self) -> None:
        self._last_min = 0


class MaxUpdates(StoppingCriterion):
    """Stop when any data point has ``n_updates`` updates (a budget on the busiest point).

    Completion is ``max(counts) / n_updates``. ``None`` never stops (completion 0).

    Parameters
    ----------
    n_updates : int or None
        Updates after which to stop, >= 1.
    """

    tracks_points = True

    def __init__(self, n_updates: int | None) -> None:
        super().__init__()
        self.n_updates = _check_int(
            "MaxUpdates", "n_updates", n_updates, 1, allow_none=True, example="1000"
        )
        self._last_max = 0

    def _args(self) -> dict[str, Any]:
        return {"n_updates": self.n_updates}

    def _check(self, result: ValuationResult) -> Status:
        counts = result.counts
        if self.n_updates is None:
            self._converged = np.zeros(counts.shape, dtype=bool)
            return Status.Pending
        self._converged = counts >= self.n_updates
        self._last_max = int(counts.max()) if counts.size else 0
        return Status.Converged if self._converged.any() else Status.Pending

    def completion(self) -> float:
        if self.n_updates is None:
            return 0.0
        return min(1.0, self._last_max / self.n_updates)

    def updates_needed(self, result: ValuationResult) -> int | None:
        if self.n_updates is None:
            return None
        counts = result.counts
        return max(0, self.n_updates - int(counts.max())) if counts.size else 0

    def _reset(self) -> None:
        self._last_max = 0


class MaxChecks(StoppingCriterion):
    """Stop at the ``n_checks``-th check. ``None`` never stops (completion 0).

    Completion is ``checks made / n_checks``.

    Parameters
    ----------
    n_checks : int or None
        Number of checks after which to stop, >= 1.
    """

    def __init__(self, n_checks: int | None) -> None:
        super().__init__()
        self.n_checks_max = _check_int(
            "MaxChecks", "n_checks", n_checks, 1, allow_none=True, example="50"
        )

    def _args(self) -> dict[str, Any]:
        return {"n_checks": self.n_checks_max}

    def _check(self, result: ValuationResult) -> Status:
        done = self.n_checks_max is not None and self._n_checks >= self.n_checks_max
        self._converged = np.full(len(result), done, dtype=bool)
        return Status.Converged if done else Status.Pending

    def completion(self) -> float:
        if self.n_checks_max is None:
            return 0.0
        return min(1.0, self._n_checks / self.n_checks_max)

    def checks_needed(self) -> int | None:
        if self.n_checks_max is None:
            return None
        return max(0, self.n_checks_max - self._n_checks)


class MaxTime(StoppingCriterion):
    """Stop once ``seconds`` of wall time have passed. ``None`` never stops.

    The clock starts at the first check, or at `reset` if that comes first: an engine that
    calls ``reset()`` when it starts counts its first batch too, while time spent between
    creating the criterion in a notebook and running it never counts.

    Completion is ``elapsed / seconds``.

    Parameters
    ----------
    seconds : float or None
        Time budget in seconds, > 0.
    """

    def __init__(self, seconds: float | None) -> None:
        super().__init__()
        self.seconds = _check_float(
            "MaxTime", "seconds", seconds, 0.0, allow_none=True, example="600"
        )
        self._start: float | None = None
        self._elapsed = 0.0

    def _args(self) -> dict[str, Any]:
        return {"seconds": self.seconds}

    @property
    def elapsed(self) -> float:
        """Seconds since the clock started (0 before it has)."""
        return 0.0 if self._start is None else _now() - self._start

    def _check(self, result: ValuationResult) -> Status:
        if self._start is None:
            self._start = _now()
        self._elapsed = self.elapsed
        done = self.seconds is not None and self._elapsed >= self.seconds
        self._converged = np.full(len(result), done, dtype=bool)
        return Status.Converged if done else Status.Pending

    def completion(self) -> float:
        if self.seconds is None:
            return 0.0
        return min(1.0, self._elapsed / self.seconds)

    def _reset(self) -> None:
        self._start = _now()
        self._elapsed = 0.0


def time_is_up(criterion: StoppingCriterion) -> bool:
    """Whether ``criterion`` would stop now on its time limit alone, whatever the result.

    True for a `MaxTime` whose budget is spent, and for an ``|`` with such a branch; an ``&``
    or a ``~`` also depends on other criteria, so time alone never decides them. The engine
    asks this between checks, so that a time budget is kept even while no permutation is
    finishing, without checking the result more often (which would skew `MaxChecks` and the
    memory of `HistoryDeviation`).
    """
    if isinstance(criterion, MaxTime):
        return criterion.seconds is not None and criterion.elapsed >= criterion.seconds
    if isinstance(criterion, _Or):
        return time_is_up(criterion.left) or time_is_up(criterion.right)
    return False


# ---------------------------------------------------------------------- statistical criteria


class AbsoluteStandardError(StoppingCriterion):
    """Stop when a ``fraction`` of the points have a standard error below ``threshold``.

    A point counts only after more than ``burn_in`` updates: with very few samples the sample
    variance is unreliable (it is 0 after one sample).

    Completion is ``(share of points below threshold) / fraction``, capped at 1.

    Parameters
    ----------
    threshold : float
        Standard error below which a point is converged, > 0.
    fraction : float
        Share of points that must be converged, in (0, 1].
    burn_in : int
        Updates a point needs beyond which its standard error is trusted, >= 0.
    """

    tracks_points = True

    def __init__(self, threshold: float, fraction: float = 1.0, burn_in: int = 4) -> None:
        super().__init__()
        name = "AbsoluteStandardError"
        self.threshold = _check_float(name, "threshold", threshold, 0.0, example="0.01")
        self.fraction = _check_float(name, "fraction", fraction, 0.0, 1.0, example="0.01, 0.9")
        self.burn_in = _check_int(name, "burn_in", burn_in, 0, example="0.01, burn_in=4")
        self._share = 0.0

    def _args(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "fraction": self.fraction, "burn_in": self.burn_in}

    def _check(self, result: ValuationResult) -> Status:
        self._converged = (result.stderr < self.threshold) & (result.counts > self.burn_in)
        self._share = float(self._converged.mean()) if len(result) else 1.0
        return Status.Converged if self._share >= self.fraction else Status.Pending

    def completion(self) -> float:
        return min(1.0, self._share / self.fraction)

    def _reset(self) -> None:
        self._share = 0.0


class RankCorrelation(StoppingCriterion):
    """Stop when the ranking of the values stops changing between checks.

    At each check with new updates, the Spearman correlation between the current values and
    those of the previous such check is computed; the first ``burn_in`` comparisons are not
    trusted, and after them the criterion converges once the correlation exceeds ``1 - rtol``.
    Checks that find no new updates are skipped (they would compare a ranking with itself and
    converge spuriously). A degenerate ranking (all values equal, or NaN) never converges.

    Completion is ``correlation / (1 - rtol)``, clipped to [0, 1]; 0 during the burn-in.

    Parameters
    ----------
    rtol : float
        Tolerance on the correlation, in (0, 1).
    burn_in : int
        Comparisons to ignore before the correlation is trusted, >= 0.
    """

    tracks_points = True

    def __init__(self, rtol: float, burn_in: int) -> None:
        super().__init__()
        self.rtol = _check_float(
            "RankCorrelation", "rtol", rtol, 0.0, 1.0, high_open=True, example="0.01, 10"
        )
        self.burn_in = _check_int("RankCorrelation", "burn_in", burn_in, 0, example="0.01, 10")
        self._reset()

    def _args(self) -> dict[str, Any]:
        return {"rtol": self.rtol, "burn_in": self.burn_in}

    @property
    def correlation(self) -> float:
        """Spearman correlation found at the last comparison (NaN before any)."""
        return self._corr

    def _reset(self) -> None:
        self._memory: NDArray[np.float64] | None = None
        self._memory_updates = -1
        self._n_compared = 0
        self._corr = math.nan

    def _check(self, result: ValuationResult) -> Status:
        values = np.array(result.values)
        total = int(result.counts.sum())
        if self._memory is None or self._memory.shape != values.shape:
            self._memory, self._memory_updates = values, total
            self._n_compared = 0
            self._corr = math.nan
        elif total != self._memory_updates:
            self._corr = spearman(self._memory, values)
            self._memory, self._memory_updates = values, total
            self._n_compared += 1
        elif self._converged.shape == values.shape:
            return self._status  # nothing new since the last comparison: same verdict
        done = self._n_compared > self.burn_in and self._corr > 1.0 - self.rtol
        self._converged = np.full(len(result), done, dtype=bool)
        return Status.Converged if done else Status.Pending

    def completion(self) -> float:
        if self._n_compared <= self.burn_in or math.isnan(self._corr):
            return 1.0 if self._status else 0.0
        return float(np.clip(self._corr / (1.0 - self.rtol), 0.0, 1.0))


class RankReliability(StoppingCriterion):
    """Stop when the ranking is trustworthy: its split-half reliability reaches ``threshold``.

    "Stop when the ranking is stable" as one setting. The engine splits a run's samples in two
    halves (even and odd permutations for TMC) and, before each check, writes the
    Spearman-Brown corrected correlation of the halves' values to
    ``result.meta["reliability"]`` (see :mod:`~dvl_jupyter.valuation.diagnostics`); this
    criterion reads it. It estimates the Spearman correlation between this run's ranking and
    that of an independent run of the same size. Every point needs ``min_updates`` updates
    first: with very few samples the figure itself is noise.

    Completion is ``reliability / threshold``, clipped to [0, 1]. A result without a
    reliability (a method that records none) never stops by it.

    Parameters
    ----------
    threshold : float
        Reliability to reach, in (0, 1).
    min_updates : int
        Updates every point needs before the reliability is trusted, >= 2.
    """

    def __init__(self, threshold: float = 0.8, min_updates: int = 10) -> None:
        super().__init__()
        self.threshold = _check_float("RankReliability", "threshold", threshold, 0.0, 1.0,
                                      high_open=True, example="0.8")
        self.min_updates = _check_int("RankReliability", "min_updates", min_updates, 2,
                                      example="0.8, min_updates=10")
        self._last = math.nan

    def _args(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "min_updates": self.min_updates}

    def _check(self, result: ValuationResult) -> Status:
        r = result.meta.get("reliability")
        self._last = float(r) if isinstance(r, (int, float)) else math.nan
        ready = result.counts.size > 0 and int(result.counts.min()) >= self.min_updates
        done = ready and math.isfinite(self._last) and self._last >= self.threshold
        return Status.Converged if done else Status.Pending

    def completion(self) -> float:
        if not math.isfinite(self._last):
            return 1.0 if self._status else 0.0
        return float(np.clip(self._last / self.threshold, 0.0, 1.0))

    def _reset(self) -> None:
        self._last = math.nan


class HistoryDeviation(StoppingCriterion):
    r"""Stop when every value has moved less than ``rtol`` (relatively) over ``n_steps`` checks.

    The convergence test of Ghorbani & Zou (2019, Data Shapley): point :math:`i` is converged
    when :math:`|v_i^{(t)} - v_i^{(t - n)}| / |v_i^{(t)}| < \mathrm{rtol}`, with :math:`t` the
    current check and :math:`n` = ``n_steps``; where :math:`v_i^{(t)} = 0` the absolute
    difference is used. Only checks that find new updates enter the history (a run checked more
    often than it updates would otherwise look frozen).

    With ``pin_converged`` a point stays converged once it has been; otherwise it is re-tested
    at every check. Completion is the share of converged points.

    Parameters
    ----------
    n_steps : int
        Checks to look back, >= 1.
    rtol : float
        Relative tolerance, > 0.
    pin_converged : bool
        Keep points converged once they are.
    """

    tracks_points = True

    def __init__(self, n_steps: int, rtol: float, pin_converged: bool = True) -> None:
        super().__init__()
        self.n_steps = _check_int("HistoryDeviation", "n_steps", n_steps, 1, example="100, 0.05")
        self.rtol = _check_float("HistoryDeviation", "rtol", rtol, 0.0, example="100, 0.05")
        if not isinstance(pin_converged, (bool, np.bool_)):
            raise TypeError(
                "HistoryDeviation(pin_converged=...) must be True or False; got "
                f"{_describe(pin_converged)}."
            )
        self.pin_converged = bool(pin_converged)
        self._reset()

    def _args(self) -> dict[str, Any]:
        return {"n_steps": self.n_steps, "rtol": self.rtol, "pin_converged": self.pin_converged}

    def _reset(self) -> None:
        self._history: deque[NDArray[np.float64]] = deque(maxlen=self.n_steps + 1)
        self._history_updates = -1

    def _check(self, result: ValuationResult) -> Status:
        values = np.array(result.values)
        total = int(result.counts.sum())
        if self._history and self._history[-1].shape != values.shape:
            self._reset()
        if self._converged.shape != values.shape:
            self._converged = np.zeros(values.shape, dtype=bool)
        if total != self._history_updates:
            self._history.append(values)
            self._history_updates = total
            if len(self._history) > self.n_steps:
                old = self._history[0]
                diff = np.abs(values - old)
                rel = np.divide(diff, np.abs(values), out=diff.copy(), where=values != 0)
                now = rel < self.rtol
                self._converged = (self._converged | now) if self.pin_converged else now
        return Status.Converged if self._converged.all() else Status.Pending

    def completion(self) -> float:
        if self._converged.size == 0:
            return 1.0 if self._status else 0.0
        return float(self._converged.mean())
