"""Utilities: the value of a coalition of training points.

A utility maps a set of training positions to a number (:class:`Utility` says exactly what
the engine needs of one). :class:`ModelUtility` is the common case: clone the model, fit it on
the subset, score it. Any plain callable ``u(indices) -> float`` works as well (games, custom
metrics): :func:`as_utility` wraps it in a :class:`FunctionUtility`.

A utility only says what ``u(S)`` is; *how* many of them are computed (one fit at a time, or
many models trained at once on the fast path) is an evaluator's job
(:mod:`~dvl_jupyter.valuation.evaluators`), chosen once per run.

Every fit of a :class:`ModelUtility` is seeded from the subset itself, so ``u(S)`` is a
function of ``S``: the same subset gives the same number in any process, which is what makes a
run reproducible whatever the number of jobs, and what makes caching it sound.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .dataset import Dataset
from .exceptions import DvlTypeError, describe_value
from .scorers import Scorer
from .seeds import seeded, subset_seed

__all__ = ["Utility", "ModelUtility", "FunctionUtility", "as_utility", "subset_seed"]


@runtime_checkable
class Utility(Protocol):
    """What the engine needs of a utility.

    ``u(indices)`` is the value of the coalition of those training positions;
    ``with_dataset(train)`` returns a copy bound to the training data (the original stays
    reusable); ``fingerprint()`` identifies everything that determines ``u(S)`` (None: not
    cacheable); ``cache`` is where its values are kept (a directory, a
    :class:`~dvl_jupyter.valuation.cachedir.CacheDirectory`, or None).
    """

    cache: Any

    def __call__(self, indices: np.ndarray) -> float: ...

    def with_dataset(self, data: Dataset) -> Utility: ...

    def fingerprint(self) -> str | None: ...


class FunctionUtility:
    """A plain callable ``u(indices) -> float`` seen through the :class:`Utility` protocol.

    It has no identity the engine could fingerprint, so its values are not cached.
    """

    cache = None

    def __init__(self, fn: Callable[[np.ndarray], float]) -> None:
        self.fn = fn

    def __call__(self, indices: np.ndarray) -> float:
        return float(self.fn(np.asarray(indices, dtype=np.int64)))

    def with_dataset(self, data: Dataset) -> FunctionUtility:
        return self

    def fingerprint(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"FunctionUtility({getattr(self.fn, '__name__', type(self.fn).__name__)})"


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
        A directory (str or Path) or a
        :class:`~dvl_jupyter.valuation.cachedir.CacheDirectory`: every evaluation is stored
        there and never computed twice, across re-runs and interrupted runs. None disables
        caching. (pyDVL's spelling; a run resolves it once.)
    random_state
        Mixed into the per-subset seed; change it to draw other initialisations.
    coupled_training
        Train every fit with the same initial weights and minibatch orders restricted from one
        order per epoch (:mod:`~dvl_jupyter.valuation.coupling`), so that fits of nested
        subsets differ by the points, not by their training noise. False: each fit draws its
        own, seeded by its subset.
    """

    def __init__(
        self,
        model: Any,
        scorer: Scorer,
        catch_errors: bool = True,
        clone_before_fit: bool = True,
        cache: Any = None,
        random_state: int = 0,
        coupled_training: bool = False,
    ) -> None:
        self.model = model
        self.scorer = scorer
        self.catch_errors = catch_errors
        self.clone_before_fit = clone_before_fit
        self.cache = cache
        self.random_state = random_state
        self.coupled_training = coupled_training
        self.training_data: Dataset | None = None
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

    def reseeded(self, random_state: int) -> ModelUtility:
        """A copy whose fits draw from another ``random_state`` (its own cache identity)."""
        other = copy.copy(self)
        other.random_state = random_state
        other._fingerprint = None
        return other

    def _bound_data(self) -> Dataset:
        if self.training_data is None:
            raise RuntimeError("ModelUtility needs with_dataset(train) before it is used.")
        return self.training_data

    # -- identity, for the cache ---------------------------------------------------------------
    def fingerprint(self) -> str:
        """Digest of everything that determines ``u(S)``: model, scorer, data, our version."""
        if self._fingerprint is None:
            from ._version import __version__
            from .fingerprint import describe, digest

            scorer_spec = (
                self.scorer.spec() if hasattr(self.scorer, "spec") else describe(self.scorer)
            )
            self._fingerprint = digest(
                "ModelUtility",
                __version__,
                describe(self.model),
                scorer_spec,
                self._bound_data().fingerprint(),
                self.random_state,
                self.clone_before_fit,
                # coupled fits are other numbers; the key of an uncoupled utility is unchanged
                *(["coupled training"] if self.coupled_training else []),
            )
        return self._fingerprint

    # -- evaluation ----------------------------------------------------------------------------
    def fit_seed(self, subset: np.ndarray) -> int:
        """The seed of the fit on ``subset``: a function of the set and ``random_state``, or,
        with coupled training, of ``random_state`` alone."""
        if self.coupled_training:
            from .coupling import coupled_seed

            return coupled_seed(self.random_state)
        return subset_seed(subset, self.random_state)

    def shuffles(self) -> bool:
        """Whether each epoch of a fit visits the points in a new order (a skorch net with
        ``iterator_train__shuffle=True``)."""
        return bool(getattr(self.model, "iterator_train__shuffle", False))

    def training_order(self, subset: np.ndarray) -> np.ndarray | None:
        """The rows a coupled fit of a shuffling net visits, epoch after epoch (None when the
        order is the model's own: not coupled, or not shuffling)."""
        if not (self.coupled_training and self.shuffles()):
            return None
        from .coupling import coupled_order

        epochs = int(getattr(self.model, "max_epochs", 1))
        return coupled_order(np.sort(subset), len(self._bound_data()), self.fit_seed(subset),
                             epochs)

    def fresh_model(self) -> Any:
        """The model a fit starts from: a clone, or the model itself without cloning."""
        if not self.clone_before_fit:
            return self.model
        from sklearn.base import clone

        return clone(self.model)

    def fit_score(self, subset: np.ndarray) -> float:
        """Fit a fresh model on ``subset`` (positions) and score it; errors propagate.

        The empty set scores ``scorer.default`` (no model can be fitted on nothing).
        """
        subset = np.asarray(subset, dtype=np.int64)
        if len(subset) == 0:
            return float(self.scorer.default)
        model = self.fresh_model()
        if self.coupled_training and self.shuffles():
            from .coupling import RestrictedOrderSampler

            model.set_params(iterator_train__shuffle=False, iterator_train__sampler=(
                RestrictedOrderSampler(subset, len(self._bound_data()), self.fit_seed(subset))))
        # Sorted, so that the rows a model sees (and their order, which matters to an
        # unshuffled skorch fit) depend on the set only: u(S) is a function of S.
        x, y = self._bound_data().data(np.sort(subset))
        from .utils import torch_threads

        with seeded(self.fit_seed(subset)), torch_threads(1):
            model.fit(x, y)
            return float(self.scorer(model))

    def __call__(self, indices: np.ndarray) -> float:
        """``u(indices)``; with catch_errors a failed fit gives ``scorer.default``."""
        try:
            return self.fit_score(indices)
        except Exception:  # noqa: BLE001 - pyDVL's catch_errors: the default, silently
            if not self.catch_errors:
                raise
            return float(self.scorer.default)

    def __repr__(self) -> str:
        return f"ModelUtility(model={type(self.model).__name__}, scorer={self.scorer!r})"


def as_utility(obj: Any) -> Utility:
    """A utility as is (anything with ``with_dataset``); a plain callable wrapped in a
    :class:`FunctionUtility`; anything else a clear TypeError."""
    if isinstance(obj, Utility):
        return obj
    if callable(obj):
        return FunctionUtility(obj)
    raise DvlTypeError(
        f"utility must be a ModelUtility or a callable u(indices) -> float; "
        f"got {describe_value(obj)}."
    )
