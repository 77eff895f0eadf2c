"""Utilities: the value of a coalition of training points.

A utility maps a set of training positions to a number. :class:`ModelUtility` is the common
case: clone the model, fit it on the subset, score it. Any plain callable
``u(indices) -> float`` works as well (games, custom metrics): :func:`as_utility` wraps it.

Every evaluation of a :class:`ModelUtility` is seeded from the subset itself, so ``u(S)`` is a
function of ``S``: the same subset gives the same number in any process, which is what makes a
run reproducible whatever the number of jobs, and what makes caching it sound.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dataset import Dataset
from .exceptions import DvlTypeError, describe_value
from .scorers import Scorer

__all__ = ["ModelUtility", "FunctionUtility", "EvaluationBatch", "as_utility"]


@dataclass
class EvaluationBatch:
    """What a worker sends back: values plus what went wrong, so failures are counted."""

    values: np.ndarray
    n_fits: int = 0  # models actually fitted (the empty set needs none)
    n_failed: int = 0
    first_error: str | None = None


def subset_seed(subset: np.ndarray, random_state: int = 0) -> int:
    """A 31-bit seed from the sorted subset and a base seed: ``u(S)`` depends on S only."""
    h = hashlib.sha256(np.sort(np.asarray(subset, dtype=np.int64)).tobytes())
    h.update(int(random_state).to_bytes(8, "little", signed=True))
    return int.from_bytes(h.digest()[:4], "little") & 0x7FFFFFFF


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
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


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch threads: one thread per small fit was measured 4-15x faster here."""
    torch = sys.modules.get("torch")
    if torch is None or n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FunctionUtility:
    """A plain callable ``u(indices) -> float`` seen through the engine's utility interface."""

    preferred_batch = 1
    cache = None

    def __init__(self, fn: Callable[[np.ndarray], float]) -> None:
        self.fn = fn

    def __call__(self, indices: np.ndarray) -> float:
        return float(self.fn(np.asarray(indices, dtype=np.int64)))

    def evaluate_many(self, subsets: Sequence[np.ndarray]) -> EvaluationBatch:
        return EvaluationBatch(np.array([self(s) for s in subsets], dtype=np.float64))

    def with_dataset(self, data: Dataset) -> FunctionUtility:
        return self

    def describe_path(self) -> str:
        return "function"


class ModelUtility:
    """Fit a model on a subset of the training data and score it.

    Parameters
    ----------
    model
        Any estimator with ``fit(x, y)`` (scikit-learn, skorch...). It is cloned before every
        fit (``sklearn.base.clone``) unless ``clone_before_fit=False``.
    scorer
        A scorer (:class:`~dvl_jupyter.valuation.scorers.SupervisedScorer`...) called as
        ``scorer(fitted_model)``; its ``default`` is the value of the empty set.
    catch_errors
        When True a failing fit scores ``scorer.default`` and is counted; the run reports the
        count once at the end instead of stopping.
    clone_before_fit
        Clone the model before each fit, so no fit sees another's state.
    cache
        A directory (str or Path) or a ``UtilityCache``: every evaluation is stored there and
        never computed twice, across re-runs and interrupted runs. None disables caching.
    random_state
        Mixed into the per-subset seed; change it to draw other initialisations.
    """

    def __init__(
        self,
        model: Any,
        scorer: Scorer,
        catch_errors: bool = True,
        clone_before_fit: bool = True,
        cache: Any = None,
        random_state: int = 0,
    ) -> None:
        self.model = model
        self.scorer = scorer
        self.catch_errors = catch_errors
        self.clone_before_fit = clone_before_fit
        self.cache = cache
        self.random_state = random_state
        self.training_data: Dataset | None = None
        self.preferred_batch = 1
        self._fast = False
        self._fingerprint: str | None = None

    # -- binding and checks --------------------------------------------------------------------
    def validate(self) -> None:
        """Check the model and scorer once, at fit time (constructors only store)."""
        if not callable(getattr(self.model, "fit", None)):
            raise DvlTypeError(
                f"model must be an estimator with a fit(x, y) method (scikit-learn or skorch); "
                f"got {describe_value(self.model)}. Wrap torch modules in "
                "skorch.NeuralNetClassifier."
            )
        if not callable(self.scorer):
            raise DvlTypeError(
                f"scorer must be callable as scorer(model) -> float, e.g. "
                f"SupervisedScorer('accuracy', test_data); got {describe_value(self.scorer)}."
            )
        if not hasattr(self.scorer, "default"):
            raise DvlTypeError("scorer must have a `default` score for the empty set.")

    def with_dataset(self, data: Dataset) -> ModelUtility:
        """A shallow copy bound to the training data; the original stays reusable."""
        self.validate()
        bound = copy.copy(self)
        bound.training_data = data
        bound._fingerprint = None
        return bound

    # -- identity, for the cache ---------------------------------------------------------------
    def fingerprint(self) -> str:
        """Digest of everything that determines ``u(S)``: model, scorer, data, our version."""
        if self._fingerprint is None:
            from .. import __version__
            from .fingerprint import describe, digest

            if self.training_data is None:
                raise RuntimeError("ModelUtility.fingerprint() needs with_dataset(train) first.")
            scorer_spec = (
                self.scorer.spec() if hasattr(self.scorer, "spec") else describe(self.scorer)
            )
            self._fingerprint = digest(
                "ModelUtility",
                __version__,
                describe(self.model),
                scorer_spec,
                self.training_data.fingerprint(),
                self.random_state,
                self.clone_before_fit,
                # the fast path's models equal one-by-one fits up to float rounding: close, but
                # not the same numbers, so their values are cached apart
                "fast" if self._fast else "one-by-one",
            )
        return self._fingerprint

    # -- evaluation ----------------------------------------------------------------------------
    def _fresh_model(self) -> Any:
        if not self.clone_before_fit:
            return self.model
        from sklearn.base import clone

        return clone(self.model)

    def _fit_score(self, subset: np.ndarray) -> float:
        if self.training_data is None:
            raise RuntimeError("ModelUtility needs with_dataset(train) before it is called.")
        if len(subset) == 0:
            return float(self.scorer.default)
        model = self._fresh_model()
        # Sorted, so that the rows a model sees (and their order, which matters to an
        # unshuffled skorch fit) depend on the set only: u(S) is a function of S.
        x, y = self.training_data.data(np.sort(subset))
        with _seeded(subset_seed(subset, self.random_state)), _torch_threads(1):
            model.fit(x, y)
            return float(self.scorer(model))

    def __call__(self, indices: np.ndarray) -> float:
        """``u(indices)``; with catch_errors a failed fit gives ``scorer.default``."""
        batch = self.evaluate_many([np.asarray(indices, dtype=np.int64)])
        return float(batch.values[0])

    def evaluate_many(self, subsets: Sequence[np.ndarray]) -> EvaluationBatch:
        """Values of several subsets; the fast path (when enabled) trains them all at once."""
        if self._fast:
            from .batched_utility import evaluate_batched

            return evaluate_batched(self, subsets)
        values = np.empty(len(subsets), dtype=np.float64)
        n_failed, first_error = 0, None
        for i, subset in enumerate(subsets):
            try:
                values[i] = self._fit_score(np.asarray(subset, dtype=np.int64))
            except Exception as exc:  # noqa: BLE001 - counted and reported, see catch_errors
                if not self.catch_errors:
                    raise
                n_failed += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
                values[i] = float(self.scorer.default)
        n_fits = sum(1 for s in subsets if len(s) > 0)
        return EvaluationBatch(values, n_fits, n_failed, first_error)

    def configure_fast_path(self, batched: bool | str) -> str:
        """Choose the fast path or one-by-one fits; returns a note saying which and why.

        ``batched="auto"`` falls back to one-by-one fits when the model cannot take the fast
        path; ``True`` makes that an error naming what stops it.
        """
        self._fast, self.preferred_batch = False, 1
        self._fingerprint = None
        if batched is False:
            return "one-by-one fits (batched=False)"
        from .batched_utility import fast_path_block_size, fast_path_reason

        reason = fast_path_reason(self)
        if reason is None:
            self._fast, self.preferred_batch = True, fast_path_block_size(self)
            return f"fast path: {self.preferred_batch} models trained together"
        if batched is True:
            from .exceptions import FastPathUnsupported

            raise FastPathUnsupported(
                f"batched=True, but the fast path cannot train this model: {reason}. "
                "Use batched='auto' to fall back to one-by-one fits."
            )
        import logging

        logging.getLogger("dvl_jupyter").info("fitting one by one: %s", reason)
        return f"one-by-one fits: {reason}"

    def describe_path(self) -> str:
        return "fast path (models trained together)" if self._fast else "one-by-one fits"

    def __repr__(self) -> str:
        return f"ModelUtility(model={type(self.model).__name__}, scorer={self.scorer!r})"


def as_utility(obj: Any) -> Any:
    """A ModelUtility as is; a plain callable wrapped; anything else a clear TypeError."""
    if hasattr(obj, "evaluate_many") and hasattr(obj, "with_dataset"):
        return obj
    if callable(obj):
        return FunctionUtility(obj)
    raise DvlTypeError(
        f"utility must be a ModelUtility or a callable u(indices) -> float; "
        f"got {describe_value(obj)}."
    )
