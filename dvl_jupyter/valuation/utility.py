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

What the user's code does wrong is said about it (:mod:`~dvl_jupyter.valuation.failures`):
:meth:`ModelUtility.attempt` tells a failed fit from a failed scoring, a NaN score from a
value, and a subset with a single class (an expected case, scored the default as in pyDVL)
from a failure; a plain utility function that raises or returns no number is a
:class:`~dvl_jupyter.valuation.exceptions.UserCodeError` naming it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .dataset import Dataset
from .exceptions import DvlTypeError, DvlValueError, describe_value
from .failures import Failure, NotANumber, Outcome, as_value, callable_name
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

    Parameters
    ----------
    fn
        The utility function.
    default
        What an evaluation that returned NaN or an infinity counts as (it is also counted
        as a failure, and the run says how many there were).
    """

    cache = None

    def __init__(self, fn: Callable[[np.ndarray], float], default: float = 0.0) -> None:
        self.fn = fn
        self.default = default
        self.n_train: int | None = None  # known once bound: "the whole training set"

    @property
    def culprit(self) -> str:
        return f"the utility function {callable_name(self.fn)!r}"

    def __call__(self, indices: np.ndarray) -> float:
        """``fn(indices)`` as a float; NaN and infinities come back as they are (the
        evaluator counts them); an exception or a value that is not a number is a
        :class:`~dvl_jupyter.valuation.exceptions.UserCodeError` naming the function."""
        indices = np.asarray(indices, dtype=np.int64)
        try:
            value = self.fn(indices)
        except Exception as exc:  # noqa: BLE001 - the user's code: said so, in one line
            failure = Failure.raised("utility", self.culprit, exc, len(indices))
        else:
            try:
                return as_value(value)
            except NotANumber:
                failure = Failure.returned("utility", self.culprit, value, len(indices))
        failure.raise_error(self.n_train)

    def with_dataset(self, data: Dataset) -> FunctionUtility:
        bound = copy.copy(self)
        bound.n_train = len(data)
        return bound

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
        When True a failing fit or scoring (an exception, or a NaN score) scores
        ``scorer.default`` and is counted; the run reports the count once at the end instead
        of stopping. False: the first failure stops the run with its own traceback. A subset
        with a single class that a classifier cannot be fitted on is never a failure: it
        scores the default and is counted apart (``meta["one_class_subsets"]``).
    clone_before_fit
        Clone the model before each fit, so no fit sees another's state.
    cache
        A directory (str or Path) or a
        :class:`~dvl_jupyter.valuation.cachedir.CacheDirectory`: every evaluation is stored
        there and never computed twice, across re-runs and interrupted runs. None disables
        caching. (pyDVL's spelling; a run resolves it once.)
    random_state
        Mixed into the per-subset seed; change it to draw other initialisations.
    cache_key
        Any text, mixed into the cache's key: change it when something the key cannot see
        has changed (a file the scorer reads, a global the cache warned it cannot
        fingerprint), so that no value cached before is reused. None: nothing added.
    coupled_training
        Train every fit with the same initial weights and minibatch orders restricted from one
        order per epoch (:mod:`~dvl_jupyter.valuation.coupling`), so that fits of nested
        subsets differ by the points, not by their training noise (the default: on flipped
        digits it raised TMC's AUROC from 0.54 to about 0.59 and two runs' agreement 3-4x;
        see the README). False: each fit draws its own, seeded by its subset.
    """

    def __init__(
        self,
        model: Any,
        scorer: Scorer,
        catch_errors: bool = True,
        clone_before_fit: bool = True,
        cache: Any = None,
        random_state: int = 0,
        coupled_training: bool = True,
        cache_key: str | None = None,
    ) -> None:
        self.model = model
        self.scorer = scorer
        self.catch_errors = catch_errors
        self.clone_before_fit = clone_before_fit
        self.cache = cache
        self.random_state = random_state
        self.coupled_training = coupled_training
        self.cache_key = cache_key
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
        if self.cache_key is not None and not isinstance(self.cache_key, str):
            raise DvlTypeError(
                f"cache_key must be a str or None; got {describe_value(self.cache_key)}."
            )

    def _check_test_features(self, data: Dataset) -> None:
        """The test points must look like the training points: a model fitted on 3
        features cannot be scored on 5, and that is the data's fault, said before any fit."""
        test = getattr(self.scorer, "test_data", None)
        if not isinstance(test, Dataset):
            return
        train_shape = getattr(data.x, "shape", None)
        test_shape = getattr(test.x, "shape", None)
        if train_shape is None or test_shape is None:
            return
        if tuple(train_shape[1:]) == tuple(test_shape[1:]):
            return
        if len(train_shape) == len(test_shape) == 2:
            what = f"{test_shape[1]} features per point, the training data {train_shape[1]}"
        else:
            what = (f"points of shape {tuple(test_shape[1:])}, the training data "
                    f"{tuple(train_shape[1:])}")
        raise DvlValueError(
            f"The test data have {what}: a model fitted on the one cannot be scored on the "
            "other. Pass test data with the same features as the training data."
        )

    def with_dataset(self, data: Dataset) -> ModelUtility:
        """A shallow copy bound to the training data; the original stays reusable."""
        self.validate()
        self._check_test_features(data)
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
                *([["cache key", self.cache_key]] if self.cache_key is not None else []),
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

    # -- who is at fault ------------------------------------------------------------------
    @property
    def fit_culprit(self) -> str:
        return f"{type(self.model).__name__}.fit"

    @property
    def score_culprit(self) -> str:
        """The scoring the user chose, in words: ``scoring 'neg_log_loss'``, ``the scoring
        function 'f'``, ``DecisionTreeClassifier.score``."""
        scoring = getattr(self.scorer, "scoring", self)
        if isinstance(scoring, str):
            return f"scoring {scoring!r}"
        if scoring is None:
            return f"{type(self.model).__name__}.score"
        if scoring is not self and callable(scoring):
            return f"the scoring function {callable_name(scoring)!r}"
        return f"the scorer {type(self.scorer).__name__}"

    def one_class(self, y: Any) -> bool:
        """Whether targets ``y`` hold a single class and the model is a classifier: a subset
        no classifier is expected to be fitted on."""
        from .utils import to_numpy

        y = to_numpy(y)
        if y.ndim != 1 or len(y) == 0 or len(np.unique(y)) > 1:
            return False
        from sklearn.base import is_classifier

        try:
            return bool(is_classifier(self.model))
        except Exception:  # noqa: BLE001 - a model sklearn cannot judge is no classifier
            return False

    # -- evaluation ----------------------------------------------------------------------------
    def attempt(self, subset: np.ndarray) -> Outcome:
        """Fit a fresh model on ``subset`` (positions) and score it, saying what failed.

        Never raises for the user's code (a ``KeyboardInterrupt`` goes through): a fit or a
        scoring that raises, or a score that is not a finite number, is an :class:`Outcome`
        with the default value and a :class:`~dvl_jupyter.valuation.failures.Failure`; a
        classifier that cannot be fitted, or scored, on a single class is ``one_class``. The
        empty set scores ``scorer.default`` (no model can be fitted on nothing).
        """
        subset = np.asarray(subset, dtype=np.int64)
        default = float(self.scorer.default)
        if len(subset) == 0:
            return Outcome(default)
        model = self.fresh_model()
        if self.coupled_training and self.shuffles():
            from .coupling import RestrictedOrderSampler

            model.set_params(iterator_train__shuffle=False, iterator_train__sampler=(
                RestrictedOrderSampler(subset, len(self._bound_data()), self.fit_seed(subset))))
        # Sorted, so that the rows a model sees (and their order, which matters to an
        # unshuffled skorch fit) depend on the set only: u(S) is a function of S.
        x, y = self._bound_data().data(np.sort(subset))
        from .utils import torch_threads

        size = len(subset)
        with seeded(self.fit_seed(subset)), torch_threads(1):
            try:
                model.fit(x, y)
            except Exception as exc:  # noqa: BLE001 - counted, or raised by the caller
                if self.one_class(y):
                    return Outcome(default, one_class=True)
                return Outcome(default, Failure.raised("fit", self.fit_culprit, exc, size))
            try:
                score = self.scorer(model)
            except NotANumber as exc:  # the scorer's own check of the scoring's return
                return Outcome(default, Failure("score", self.score_culprit, str(exc), size))
            except Exception as exc:  # noqa: BLE001 - counted, or raised by the caller
                if self.one_class(y):  # e.g. roc_auc of a model that knows one class
                    return Outcome(default, one_class=True)
                return Outcome(default, Failure.raised("score", self.score_culprit, exc, size))
        try:
            value = as_value(score)
        except NotANumber:
            return Outcome(default, Failure.returned("score", self.score_culprit, score, size))
        if not np.isfinite(value):  # NaN is never a value: a counted failure
            return Outcome(default, Failure.returned("score", self.score_culprit, value, size))
        return Outcome(value)

    def fit_score(self, subset: np.ndarray) -> float:
        """``u(subset)``; a failure raises a
        :class:`~dvl_jupyter.valuation.exceptions.UserCodeError` saying which step failed
        (chained from the user's exception). A single-class subset scores the default."""
        outcome = self.attempt(subset)
        if outcome.failure is not None:
            outcome.failure.raise_error(len(self._bound_data()))
        return outcome.value

    def __call__(self, indices: np.ndarray) -> float:
        """``u(indices)``; with catch_errors a failed evaluation gives ``scorer.default``."""
        outcome = self.attempt(indices)
        if outcome.failure is not None and not self.catch_errors:
            outcome.failure.raise_error(len(self._bound_data()))
        return outcome.value

    def __repr__(self) -> str:
        return f"ModelUtility(model={type(self.model).__name__}, scorer={self.scorer!r})"


def as_utility(obj: Any, default: float = 0.0) -> Utility:
    """A utility as is (anything with ``with_dataset``); a plain callable wrapped in a
    :class:`FunctionUtility` (``default``: what its NaN values count as); anything else a
    clear TypeError."""
    if isinstance(obj, Utility):
        return obj
    if callable(obj):
        return FunctionUtility(obj, default)
    raise DvlTypeError(
        f"utility must be a ModelUtility or a callable u(indices) -> float; "
        f"got {describe_value(obj)}."
    )
