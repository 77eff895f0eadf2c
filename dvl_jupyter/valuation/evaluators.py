"""Evaluators: how the values of many subsets are computed in a worker.

A utility says what ``u(S)`` is; an evaluator computes a chunk of them, one fit at a time
(:class:`OneByOneEvaluator`), by calling a plain function (:class:`FunctionEvaluator`), or
with many models trained at once (the fast path's
:class:`~dvl_jupyter.valuation.fastpath.FastPathEvaluator`). A run chooses its evaluator
once, with :func:`~dvl_jupyter.valuation.path_choice.choose_evaluator`, and hands it to the
driver: nothing is switched later by mutating a shared utility. An evaluator is sent to
joblib's workers with each chunk, so it holds only what a worker needs (the bound utility)
and no cache, lock or thread.

Evaluators never raise for a failed fit: they count it and report the first error back in the
:class:`EvaluationBatch`, so that the driver (in the user's process) decides what a failure
means. The fast path, when it cannot train a chunk at all, says so in ``batch.fallback`` and
the driver carries on one fit at a time (``batched="auto"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

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
    n_failed: int = 0
    first_error: str | None = None
    #: Set by the fast path when it could not train this chunk at all: why. The values are
    #: then meaningless and the driver computes the chunk again one fit at a time.
    fallback: str | None = None


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
        values = np.array([float(self.utility(np.asarray(s, dtype=np.int64))) for s in subsets],
                          dtype=np.float64)
        return EvaluationBatch(values)


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
        values = np.empty(len(subsets), dtype=np.float64)
        n_failed, first_error = 0, None
        for i, subset in enumerate(subsets):
            try:
                values[i] = utility.fit_score(subset)
            except Exception as exc:  # noqa: BLE001 - counted and reported, see catch_errors
                if not utility.catch_errors:
                    raise
                n_failed += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
                values[i] = float(utility.scorer.default)
        n_fits = sum(1 for s in subsets if len(s) > 0)
        return EvaluationBatch(values, n_fits, n_failed, first_error)
