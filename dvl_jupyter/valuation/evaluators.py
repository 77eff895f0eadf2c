"""Evaluators: how the values of many subsets are computed in a worker.

A utility says what ``u(S)`` is; an evaluator computes a chunk of them, one fit at a time
(:class:`OneByOneEvaluator`), by calling a plain function (:class:`FunctionEvaluator`), or
with many models trained at once (the fast path's
:class:`~dvl_jupyter.valuation.fastpath.FastPathEvaluator`). A run chooses its evaluator
once, with :func:`~dvl_jupyter.valuation.path_choice.choose_evaluator`, and hands it to the
driver: nothing is switched later by mutating a shared utility. An evaluator is sent to
joblib's workers with each chunk, so it holds only what a worker needs (the bound utility)
and no cache, lock or thread.

Evaluators never raise for a failed fit: they count it and report the first failure back in
the :class:`EvaluationBatch` (a :class:`~dvl_jupyter.valuation.failures.Failure`: the step,
the user's function, its traceback), so that the driver (in the user's process) decides what a
failure means. A NaN or infinite value is a failure too, never a value. What does raise, from
the worker, is a :class:`~dvl_jupyter.valuation.exceptions.UserCodeError` naming the user's
function: a plain utility that raises or returns no number, or any failure under
``catch_errors=False``. The fast path, when it cannot train a chunk at all, says so in
``batch.fallback`` and the driver carries on one fit at a time (``batched="auto"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .exceptions import DvlError
from .failures import Failure, NotANumber, as_value
from .fingerprint import digest
from .utility import ModelUtility, Utility

__all__ = [
    "EvaluationBatch",
    "Evaluator",
    "FunctionEvaluator",
    "OneByOneEvaluator",
]


@dataclass
class EvaluationBatch:
    """What a worker sends back: values plus what went wrong, so failures are counted."""

    values: np.ndarray
    n_fits: int = 0  # models actually fitted (the empty set needs none)
    #: Evaluations that failed (an exception, or no finite number) and scored the default.
    n_failed: int = 0
    #: The first of them: which step, whose code, its traceback (picklable).
    first_failure: Failure | None = None
    #: Of the failed ones, how many gave NaN or an infinity.
    n_non_finite: int = 0
    #: Single-class subsets a classifier could not be fitted on: the default, not failures.
    n_one_class: int = 0
    #: Set by the fast path when it could not train this chunk at all: why. The values are
    #: then meaningless and the driver computes the chunk again one fit at a time.
    fallback: str | None = None

    @property
    def first_error(self) -> str | None:
        """The first failure as one line (None when nothing failed)."""
        f = self.first_failure
        return None if f is None else f"{f.culprit}: {f.error}"

    def failed(self, failure: Failure) -> None:
        """Count one failure (the caller has put the default in ``values``)."""
        self.n_failed += 1
        self.n_non_finite += failure.non_finite
        if self.first_failure is None:
            self.first_failure = failure


@runtime_checkable
class Evaluator(Protocol):
    """Computes utility values of chunks of subsets; what the driver dispatches to workers."""

    #: What users are told about how models are trained ("fast path: 32 models...").
    path: str
    #: Subsets per task: 1 for one-by-one fits (progress per fit), K for the fast path.
    batch_size: int

    def fingerprint(self) -> str | None:
        """Identity of the values it computes, for the cache; None: do not cache them."""

    def evaluate_many(self, subsets: Sequence[np.ndarray]) -> EvaluationBatch:
        """One value per subset (positions of the training set), with failures counted."""


class FunctionEvaluator:
    """Calls a plain utility function once per subset (games, custom metrics)."""

    batch_size = 1

    def __init__(self, utility: Utility, path: str = "function") -> None:
        self.utility = utility
        self.path = path

    def fingerprint(self) -> str | None:
        fp = self.utility.fingerprint()
        return None if fp is None else digest(fp, "function")

    def evaluate_many(self, subsets: Sequence[np.ndarray]) -> EvaluationBatch:
        utility = self.utility
        culprit = getattr(utility, "culprit", None) or f"the utility {type(utility).__name__}"
        default = float(getattr(utility, "default", 0.0))
        n_train = getattr(utility, "n_train", None)
        batch = EvaluationBatch(np.empty(len(subsets), dtype=np.float64))
        for i, subset in enumerate(subsets):
            subset = np.asarray(subset, dtype=np.int64)
            try:
                raw = utility(subset)
            except DvlError:
                raise
            except Exception as exc:  # noqa: BLE001 - the user's code: one line naming it
                Failure.raised("utility", culprit, exc, len(subset)).raise_error(n_train)
            try:
                value = as_value(raw)
            except NotANumber:
                Failure.returned("utility", culprit, raw, len(subset)).raise_error(n_train)
            if not np.isfinite(value):  # never a value: counted, and the default instead
                batch.failed(Failure.returned("utility", culprit, value, len(subset)))
                value = default
            batch.values[i] = value
        return batch


class OneByOneEvaluator:
    """Fits one fresh model per subset with a :class:`~.utility.ModelUtility`."""

    batch_size = 1

    def __init__(self, utility: ModelUtility, path: str = "one-by-one fits") -> None:
        self.utility = utility
        self.path = path

    def fingerprint(self) -> str:
        # Fast-path models equal one-by-one fits up to float rounding: close, but not the
        # same numbers, so the two paths' values are cached apart.
        return digest(self.utility.fingerprint(), "one-by-one")

    def evaluate_many(self, subsets: Sequence[np.ndarray]) -> EvaluationBatch:
        utility = self.utility
        batch = EvaluationBatch(np.empty(len(subsets), dtype=np.float64))
        for i, subset in enumerate(subsets):
            outcome = utility.attempt(subset)
            batch.values[i] = outcome.value
            batch.n_one_class += outcome.one_class
            if outcome.failure is not None:
                if not utility.catch_errors:  # stop here, with the user's traceback
                    outcome.failure.raise_error(len(utility._bound_data()))
                batch.failed(outcome.failure)
        batch.n_fits = sum(1 for s in subsets if len(s) > 0)
        return batch
