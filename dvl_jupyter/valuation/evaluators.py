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

**Vector values.** An evaluator may compute a vector per subset instead of a number: it then
has a ``width`` (the vector's length) and ``batch.values`` is 2-D, one row per subset; the
dispatcher (:class:`~dvl_jupyter.valuation.parallel.SubsetEvaluator`) carries the rows
through the cache and the workers unchanged. :class:`PredictionEvaluator` is one: a model fit
on a *multiset* of rows (a bootstrap bag, duplicates kept) and its predictions for given
points, what Data-OOB evaluates per bag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .exceptions import DvlError, DvlValueError
from .failures import Failure, NotANumber, as_value
from .fingerprint import digest
from .seeds import seeded, subset_seed
from .utility import ModelUtility, Utility

if TYPE_CHECKING:
    from .dataset import Dataset

__all__ = [
    "EvaluationBatch",
    "Evaluator",
    "FunctionEvaluator",
    "OneByOneEvaluator",
    "PredictionEvaluator",
    "encode_predictions",
]


@dataclass
class EvaluationBatch:
    """What a worker sends back: values plus what went wrong, so failures are counted."""

    values: np.ndarray  # one value per subset; rows of a 2-D array for a ``width`` evaluator
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
    """Computes utility values of chunks of subsets; what the driver dispatches to workers.

    Optional: ``width`` (an int), for evaluators whose values are vectors of that length;
    ``fallback_evaluator(reason)``, what replaces a fast path that failed mid-run (default:
    one-by-one fits of its ``utility``).
    """

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


def encode_predictions(pred: Any, n: int, classes: np.ndarray | None) -> np.ndarray:
    """Predictions for ``n`` points as float64: as they are (numbers), or, with ``classes``
    (labels that are not numbers), each label's position in ``classes``.

    Raises ``DvlValueError`` for predictions of another shape, or labels not in ``classes``.
    """
    from .utils import to_numpy

    pred = to_numpy(pred)
    if pred.shape != (n,):
        raise DvlValueError(
            f"predict returned shape {pred.shape} for {n} points; Data-OOB needs one "
            "prediction per point (a label or a number)."
        )
    if classes is None:
        return pred.astype(np.float64)
    pos = np.minimum(np.searchsorted(classes, pred), len(classes) - 1)
    unknown = classes[pos] != pred
    if unknown.any():
        raise DvlValueError(
            f"the model predicted {pred[unknown][0]!r}, which is not a label of the training "
            "data."
        )
    return pos.astype(np.float64)


class PredictionEvaluator:
    """Fits one fresh model per multiset of training rows; returns its predictions (a vector).

    The value of a "subset" here is the prediction of a model fit on exactly those rows, with
    repeats (a bootstrap bag), for every point of ``targets`` in turn (e.g. the training set,
    then a test set), encoded by :func:`encode_predictions`. The rows are sorted before the
    fit and the fit is seeded by the sorted multiset, so the model is a function of the
    multiset: cacheable, and the same in any process.

    Parameters
    ----------
    model
        An unfitted estimator (scikit-learn or skorch), cloned for every fit.
    train
        The rows are positions of this dataset.
    targets
        Arrays of points to predict, one after another in the vector.
    classes
        Sorted labels, for classifiers whose labels are not numbers (see
        :func:`encode_predictions`); None otherwise.
    random_state
        Mixed into every fit's seed.
    catch_errors
        A failed fit gives a row of NaN, counted (True), or raises (False).
    """

    batch_size = 1

    def __init__(self, model: Any, train: Dataset, targets: Sequence[Any], *,
                 classes: np.ndarray | None = None, random_state: int = 0,
                 catch_errors: bool = True, path: str = "one-by-one fits") -> None:
        self.model = model
        self.train = train
        self.targets = list(targets)
        self.classes = classes
        self.random_state = random_state
        self.catch_errors = catch_errors
        self.path = path
        self.width = sum(len(t) for t in self.targets)
        self._identity: str | None = None

    def identity(self) -> str:
        """What determines the predictions, whichever path trains the models."""
        if self._identity is None:
            from ._version import __version__
            from .fingerprint import describe, fingerprint_array

            self._identity = digest(
                "bag predictions",  # never the fingerprint of a utility's scalar values
                __version__, describe(self.model), self.train.fingerprint(),
                [fingerprint_array(t) for t in self.targets], self.random_state,
            )
        return self._identity

    def fingerprint(self) -> str:
        return digest(self.identity(), "one-by-one")

    def fit_seed(self, rows: np.ndarray) -> int:
        """The seed of the fit on ``rows``: a function of the multiset and ``random_state``."""
        return subset_seed(rows, self.random_state)

    def encode(self, pred: Any, n: int) -> np.ndarray:
        return encode_predictions(pred, n, self.classes)

    def predict(self, model: Any) -> np.ndarray:
        """The fitted ``model``'s encoded predictions for every target point, in order."""
        return np.concatenate([self.encode(model.predict(t), len(t)) for t in self.targets])

    def evaluate_many(self, subsets: Sequence[np.ndarray]) -> EvaluationBatch:
        from sklearn.base import clone

        from .utils import torch_threads

        batch = EvaluationBatch(np.full((len(subsets), self.width), np.nan))
        culprit = f"{type(self.model).__name__}.fit"
        for i, subset in enumerate(subsets):
            rows = np.sort(np.asarray(subset, dtype=np.int64))
            if len(rows) == 0:
                continue  # no model is fitted on nothing: a row of NaN
            batch.n_fits += 1
            try:
                model = clone(self.model)
                x, y = self.train.data(rows)
                with seeded(self.fit_seed(rows)), torch_threads(1):
                    model.fit(x, y)
                    batch.values[i] = self.predict(model)
            except Exception as exc:  # noqa: BLE001 - counted and reported, see catch_errors
                failure = Failure.raised("fit", culprit, exc, len(rows))
                if not self.catch_errors:  # stop here, with the user's traceback
                    failure.raise_error(len(self.train))
                batch.failed(failure)
                batch.values[i] = np.nan
        return batch
