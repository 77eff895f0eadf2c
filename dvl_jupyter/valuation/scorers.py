"""Scorers: how good is a fitted model on the test data.

A scorer is called with a fitted model and returns a float. ``default`` is the score of the
empty training set (no model can be fitted on nothing) and of fits that fail; ``range`` bounds
the score (values outside it are clipped, which keeps one diverged fit from swamping a mean).
A NaN or infinite score is returned as it is, never replaced by the default in silence: the
utility counts it as a failed evaluation, and the run says how many there were.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .dataset import Dataset, _is_tensor, as_dataset
from .exceptions import DvlTypeError, DvlValueError, describe_value

__all__ = ["Scorer", "SupervisedScorer", "SkorchSupervisedScorer"]

ScoringFn = Callable[[Any, Any, Any], float]


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores a fitted model: ``scorer(model) -> float``, with a ``default``."""

    default: float

    def __call__(self, model: Any) -> float: ...


def _resolve_scoring(scoring: str | ScoringFn | None) -> ScoringFn:
    if scoring is None:
        return lambda model, x, y: model.score(x, y)
    if isinstance(scoring, str):
        from sklearn.metrics import get_scorer, get_scorer_names

        try:
            return get_scorer(scoring)
        except ValueError:
            import difflib

            close = difflib.get_close_matches(scoring, get_scorer_names(), n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise DvlValueError(
                f"scoring={scoring!r} is not a scikit-learn scoring name.{hint} "
                "Use a name from sklearn.metrics.get_scorer_names(), a callable "
                "(model, X, y) -> float, or None for model.score."
            ) from None
    if callable(scoring):
        return scoring
    raise DvlTypeError(
        f"scoring must be a scoring name such as 'accuracy', a callable (model, X, y) -> float, "
        f"or None; got {describe_value(scoring)}."
    )


class SupervisedScorer:
    """Score a model on held-out data with an sklearn scoring name or a callable.

    Parameters
    ----------
    scoring
        An sklearn scoring name (``"accuracy"``, ``"r2"``...), a callable ``(model, X, y)``,
        or None for ``model.score``.
    test_data
        A :class:`Dataset` or an ``(x, y)`` tuple.
    default
        Score of the empty set and of failed fits: a finite number.
    range
        ``(low, high)`` bounds of the score; scores are clipped to it.
    """

    def __init__(
        self,
        scoring: str | ScoringFn | None,
        test_data: Dataset | tuple[Any, Any],
        default: float = 0.0,
        range: tuple[float, float] = (-np.inf, np.inf),  # noqa: A002 - pyDVL's name
        name: str | None = None,
    ) -> None:
        self.scoring = scoring
        self._score_fn = _resolve_scoring(scoring)
        self.test_data = as_dataset(test_data, "test_data")
        if len(self.test_data) == 0:
            raise DvlValueError("test_data is empty; pass at least one test point.")
        try:
            low, high = (float(r) for r in range)
        except (TypeError, ValueError):
            raise DvlTypeError(
                f"range must be a (low, high) pair of numbers; got {describe_value(range)}."
            ) from None
        if not low <= high:
            raise DvlValueError(f"range must have low <= high; got {range!r}.")
        self.range = (low, high)
        from .params import Interval, check_param

        self.default = float(check_param(
            "default", default, [Interval(numbers.Real, None, None)],
            "It is the score of the empty set and of failed fits, e.g. default=0.0."))
        self.name = name or (scoring if isinstance(scoring, str) else getattr(
            scoring, "__name__", "score"))

    def _test_xy(self) -> tuple[Any, Any]:
        return self.test_data.data()

    def __call__(self, model: Any) -> float:
        x, y = self._test_xy()
        score = self._score_fn(model, x, y)
        from .failures import as_value

        value = as_value(score)  # a NotANumber for anything else, said about the scoring
        if not np.isfinite(value):
            return value  # never replaced silently: the utility counts it as a failure
        return float(np.clip(value, *self.range))

    def spec(self) -> dict[str, Any]:
        """What identifies this scorer for the cache: scoring, test data, default, range."""
        from .fingerprint import describe

        return {
            "class": type(self).__qualname__,
            "scoring": describe(self.scoring),
            "test_data": self.test_data.fingerprint(),
            "default": self.default,
            "range": list(self.range),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, n_test={len(self.test_data)})"


class SkorchSupervisedScorer(SupervisedScorer):
    """A :class:`SupervisedScorer` for skorch nets: features may be tensors on any device.

    skorch predicts from tensors directly, but sklearn's metrics want numpy targets, so the
    targets are moved to the CPU once, here, instead of in every call.
    """

    def __init__(
        self,
        model: Any | None = None,
        test_data: Dataset | tuple[Any, Any] | None = None,
        default: float = 0.0,
        range: tuple[float, float] = (-np.inf, np.inf),  # noqa: A002 - pyDVL's name
        scoring: str | ScoringFn | None = "accuracy",
        name: str | None = None,
    ) -> None:
        # pyDVL's signature starts with the model (used only to pick defaults); we keep it.
        if test_data is None:
            raise DvlValueError("SkorchSupervisedScorer needs test_data=Dataset or (x, y).")
        super().__init__(scoring, test_data, default=default, range=range, name=name)
        x, y = self.test_data.data()
        self._y_np = y.detach().cpu().numpy() if _is_tensor(y) else np.asarray(y)
        self._x = x

    def _test_xy(self) -> tuple[Any, Any]:
        return self._x, self._y_np
