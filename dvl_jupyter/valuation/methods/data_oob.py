r"""Data-OOB (Kwon & Zou 2023): each point's value is how well the models that did not see it
predict it.

A bagged model is ``B`` estimators, each fit on a bootstrap sample of the training set. With
:math:`w_{bi}` the number of times point :math:`i` is in the sample of estimator :math:`b`,

.. math:: \psi_i = \frac{\sum_b [w_{bi} = 0] \, T(y_i, \hat f_b(x_i))}{\sum_b [w_{bi} = 0]},

the mean, over the estimators for which :math:`i` is out of bag, of a point-wise score
:math:`T` of their prediction for it (pyDVL's defaults: 0/1 accuracy for classifiers, the
negative squared error for regressors). A mislabelled point is predicted "wrongly" by nearly
every model that did not train on it, so its value is low; no single marginal contribution is
measured, which is why the method is robust to the training noise of a small net.

Two forms, one result:

- **pyDVL's**: a *fitted* scikit-learn bagging ensemble (``BaggingClassifier``,
  ``BaggingRegressor``, ``RandomForest*``, ``ExtraTrees*`` with ``bootstrap=True``...): its
  ``estimators_`` and ``estimators_samples_`` give the models and their bags; nothing is
  trained. The values equal pyDVL's ``DataOOBValuation`` on the same ensemble.
- **Bagged here**: an *unfitted* estimator (scikit-learn or skorch). Bag ``b`` is drawn from
  its own generator ``SeedSequence(seed, spawn_key=(b,))``: ``int(max_samples * n)`` rows with
  replacement (as ``BaggingClassifier`` draws them), so the bags do not depend on how many
  there are or who trains them. A bag's model is a fit on a *multiset* of rows, sorted and
  seeded by the multiset itself (:class:`~dvl_jupyter.valuation.evaluators.PredictionEvaluator`),
  so it is a function of the multiset, cached as such: what is evaluated and cached per bag
  is the model's predictions for every training (and test) point, a vector. Bags go through
  the run like any evaluation: the cache first, then joblib's workers; a skorch classifier
  the fast path can train gets its bags trained many at once
  (:class:`~dvl_jupyter.valuation.fastpath.FastPathPredictionEvaluator`).

What is reported besides the values: ``counts``, the number of bags each point was out of;
``variances``, the sample variance of its out-of-bag scores, so ``stderr`` is the standard
error of the value as an average over bags; the split-half reliability (even against odd
bags); and in ``meta`` the ensemble's own out-of-bag accuracy (majority vote of the models
that did not see each point; for regressors ``oob_r2``, of their mean prediction), its test
accuracy when ``test_data`` is given, and how many points were never out of bag (value 0,
count 0: use more ``n_estimators`` or a smaller ``max_samples``).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from ..cachedir import CacheDirectory
from ..callbacks import ValuationCallback
from ..dataset import Dataset, as_dataset
from ..driver import Run
from ..ending import RunEnd
from ..evaluators import Evaluator, PredictionEvaluator
from ..exceptions import DvlTypeError, DvlValueError, FastPathUnsupported, describe_value
from ..params import BATCHED, FLAG, SEED, Interval, Satisfies
from ..result import Status, ValuationResult
from ..samplers import resolve_entropy
from ..utils import is_skorch_net, to_numpy
from .base import ValuationMethod
from .loo import round_size

__all__ = ["DataOOBValuation", "NeverOutOfBagWarning", "neg_l2_distance",
           "point_wise_accuracy"]

#: pyDVL's defaults when it bags a model itself (``compute_data_oob``).
DEFAULT_N_ESTIMATORS = 10
DEFAULT_MAX_SAMPLES = 0.8

PointwiseScore = Callable[..., Any]


class NeverOutOfBagWarning(UserWarning):
    """Some points were in every bag: they have no out-of-bag score (value 0, count 0)."""


def point_wise_accuracy(y_true: Any, y_pred: Any) -> NDArray[np.float64]:
    """1 where the prediction is the label, 0 elsewhere (pyDVL's default for classifiers)."""
    return np.asarray(np.asarray(y_pred) == np.asarray(y_true), dtype=np.float64)


def neg_l2_distance(y_true: Any, y_pred: Any) -> NDArray[np.float64]:
    """``-(y_pred - y_true)**2`` per point (pyDVL's default for regressors)."""
    diff = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return -np.square(diff)


def _kind(model: Any) -> str | None:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(model):
        return "classifier"
    return "regressor" if is_regressor(model) else None


class _Tally:
    """The ensemble's predictions per point, for its out-of-bag (or test) score: a majority
    vote of the predicted labels (ties: the smallest label), or the mean prediction."""

    def __init__(self, n: int, kind: str | None) -> None:
        self.kind = kind
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.n = n

    def add(self, positions: np.ndarray, y_pred: Any) -> None:
        if self.kind is not None:
            self.parts.append((positions, np.asarray(y_pred)))

    def score(self, y: np.ndarray) -> float | None:
        """Accuracy (classifier) or R^2 (regressor) over the points with a prediction."""
        if self.kind is None or not self.parts:
            return None
        pos = np.concatenate([p for p, _ in self.parts])
        pred = np.concatenate([v for _, v in self.parts])
        seen = np.bincount(pos, minlength=self.n) > 0
        if self.kind == "classifier":
            labels = np.unique(np.concatenate([np.asarray(y), pred]))
            votes = np.zeros((self.n, len(labels)), dtype=np.int64)
            np.add.at(votes, (pos, np.searchsorted(labels, pred)), 1)
            majority = labels[votes.argmax(axis=1)]
            return float(np.mean(majority[seen] == y[seen]))
        sums = np.bincount(pos, weights=pred.astype(np.float64), minlength=self.n)
        mean = sums[seen] / np.bincount(pos, minlength=self.n)[seen]
        truth = y[seen].astype(np.float64)
        total = float(np.sum((truth - truth.mean()) ** 2))
        return None if total == 0 else 1.0 - float(np.sum((truth - mean) ** 2)) / total


class DataOOBValuation(ValuationMethod):
    """Data-OOB values (Kwon & Zou 2023) of every training point: pyDVL's ``DataOOBValuation``.

    Parameters
    ----------
    model
        A *fitted* bagging ensemble (pyDVL's form: ``BaggingClassifier``, ``BaggingRegressor``,
        ``RandomForestClassifier``, ``ExtraTreesRegressor`` with ``bootstrap=True``, or any
        model with ``estimators_`` and ``estimators_samples_``), fitted on the training set
        that ``fit`` is given; or an *unfitted* estimator, scikit-learn or skorch, which this
        method bags itself (module docstring).
    score
        ``score(y_true=..., y_pred=...) -> one number per point``, higher is better (pyDVL's
        ``PointwiseScore``); default :func:`point_wise_accuracy` for classifiers,
        :func:`neg_l2_distance` otherwise.
    n_estimators
        Bags to draw and fit (an unfitted model only; a fitted ensemble has its own).
        Default 10, as pyDVL's ``compute_data_oob``; 100 or more gives steadier values.
    max_samples
        Size of a bag as a fraction of the training set, in (0, 1] (an unfitted model only):
        ``int(max_samples * n)`` rows drawn with replacement. Default 0.8, as pyDVL's.
    seed
        Seed of the bags (an unfitted model only). The same seed gives the same bags, models
        and values with any number of jobs; None draws fresh entropy (``meta["seed"]``).
    test_data
        ``Dataset`` or ``(x, y)``: the ensemble's test accuracy goes into ``meta`` (optional;
        the values do not depend on it).
    batched
        ``"auto"``: train a skorch classifier's bags many at once when the fast path can,
        otherwise one by one and say why; ``True``: require the fast path; ``False``: never.
    cache
        A directory or a :class:`~dvl_jupyter.valuation.cachedir.CacheDirectory` where each
        bag's predictions are stored, so a re-run trains nothing (None: no cache).
    catch_errors
        A bag whose fit fails is left out and counted (True; the run warns once at the end),
        or the error is raised (False).
    progress
        Show a tqdm bar that moves with every bag.
    callbacks
        :class:`~dvl_jupyter.valuation.callbacks.ValuationCallback` objects (progress views).

    Notes
    -----
    ``batched``, ``cache`` and ``catch_errors`` only matter when the model is bagged here;
    ``n_estimators``, ``max_samples`` and ``seed`` are an error with a fitted ensemble (its
    bags are already drawn). For a scikit-learn ensemble classifier, whose estimators are
    trained on class positions, predictions are mapped back to labels through its
    ``classes_``; ``estimators_features_`` (``max_features < 1``) are honoured.

    ``result.meta`` has ``n_estimators``, ``max_samples``, ``bag_size``, ``seed``,
    ``oob_accuracy`` (or ``oob_r2``), ``test_accuracy`` (or ``test_r2``) with ``test_data``,
    ``never_out_of_bag``, ``skipped_bags`` (failed fits), ``reliability`` and ``path``.

    Examples
    --------
    >>> forest = RandomForestClassifier(n_estimators=200).fit(*train.data())
    >>> values = DataOOBValuation(forest).fit(train).result
    >>> values = DataOOBValuation(net, n_estimators=100, seed=36).fit(train).result
    """

    algorithm = "Data-OOB"
    _parameter_constraints: ClassVar[dict[str, Any]] = {
        **ValuationMethod._parameter_constraints,
        "score": [Satisfies(callable, "a callable score(y_true, y_pred)"), None],
        "n_estimators": [Interval(numbers.Integral, 1, None), None],
        "max_samples": [Interval(numbers.Real, 0, 1, closed="right"), None],
        "seed": SEED,
        "batched": BATCHED,
        "catch_errors": FLAG,
    }

    def __init__(
        self,
        model: Any = None,
        score: PointwiseScore | None = None,
        *,
        n_estimators: int | None = None,
        max_samples: float | None = None,
        seed: int | None = None,
        test_data: Dataset | tuple[Any, Any] | None = None,
        batched: bool | str = "auto",
        cache: Any = None,
        catch_errors: bool = True,
        progress: bool = False,
        callbacks: Sequence[ValuationCallback] = (),
    ) -> None:
        super().__init__(progress=progress, callbacks=callbacks)
        self.model = model
        self.score = score
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.seed = seed
        self.test_data = None if test_data is None else as_dataset(test_data, "test_data")
        self.batched = batched
        self.cache = cache
        self.catch_errors = catch_errors
        self.validate()  # bad settings fail where they were written

    # -- checks --------------------------------------------------------------------------------
    def _is_fitted_ensemble(self) -> bool:
        """Which form the model takes; a short error when it is neither."""
        model = self.model
        if model is None:
            raise DvlValueError(
                "model is required: a fitted bagging ensemble (e.g. a fitted "
                "RandomForestClassifier) or an unfitted estimator to bag (sklearn or skorch)."
            )
        if hasattr(model, "estimators_"):
            if not hasattr(model, "estimators_samples_"):
                raise DvlTypeError(
                    f"model {type(model).__name__} is fitted but has no estimators_samples_ "
                    "(the rows each estimator was fitted on), so its out-of-bag points are "
                    "unknown. Use a scikit-learn bagging ensemble (scikit-learn >= 1.4 for "
                    "forests), or pass an unfitted estimator to bag it here."
                )
            given = [name for name in ("n_estimators", "max_samples", "seed")
                     if getattr(self, name) is not None]
            if given:
                raise DvlValueError(
                    f"{given[0]} applies when DataOOBValuation bags the model itself; this "
                    f"model is a fitted ensemble of {len(model.estimators_)} estimators with "
                    f"its bags already drawn. Leave {given[0]} out, or pass an unfitted "
                    "estimator."
                )
            return True
        from sklearn.ensemble import BaseEnsemble

        if isinstance(model, BaseEnsemble):
            raise DvlValueError(
                f"model {type(model).__name__} is an unfitted ensemble: fit it on the training "
                "set first (pyDVL's form), or pass its base estimator to be bagged here."
            )
        if not callable(getattr(model, "fit", None)) or not callable(
                getattr(model, "predict", None)):
            raise DvlTypeError(
                f"model must be a fitted bagging ensemble or an estimator with fit and "
                f"predict (scikit-learn or skorch); got {describe_value(model)}."
            )
        return False

    def _default_score(self, kind: str | None) -> PointwiseScore:
        if self.score is not None:
            return self.score
        if kind is None:
            raise DvlValueError(
                f"model {type(self.model).__name__} is neither a classifier nor a regressor, "
                "so there is no default score: pass score=point_wise_accuracy (labels) or "
                "neg_l2_distance (numbers), or a score(y_true, y_pred) of your own."
            )
        return point_wise_accuracy if kind == "classifier" else neg_l2_distance

    @staticmethod
    def _scores(score: PointwiseScore, y_true: np.ndarray, y_pred: Any) -> np.ndarray:
        out = np.asarray(score(y_true=y_true, y_pred=y_pred), dtype=np.float64)
        if out.shape != (len(y_true),):
            raise DvlValueError(
                f"score must return one number per point; got shape {out.shape} for "
                f"{len(y_true)} points."
            )
        return out

    # -- the run -------------------------------------------------------------------------------
    def _fit(self, run: Run) -> None:
        if self._is_fitted_ensemble():
            self._fit_ensemble(run)
        else:
            self._fit_bags(run)

    def _merge(self, run: Run, halves: tuple[ValuationResult, ValuationResult], b: int,
               oob: np.ndarray, scores: np.ndarray) -> None:
        if len(oob):
            run.result.update(oob, scores)
            halves[b % 2].update(oob, scores)

    def _report(self, run: Run, halves: tuple[ValuationResult, ValuationResult], done: int,
                total: int) -> None:
        run.record_halves(halves[0].values, halves[1].values, done, what="bags",
                          test_zero=False)
        run.stats.completion = done / total
        run.updated()

    def _fit_ensemble(self, run: Run) -> None:
        """pyDVL's form: the fitted estimators predict their out-of-bag points."""
        from sklearn.ensemble import (
            BaggingClassifier,
            ExtraTreesClassifier,
            RandomForestClassifier,
        )

        model, train = self.model, run.train
        n = len(train)
        estimators = list(model.estimators_)
        samples = list(model.estimators_samples_)
        fitted_n = getattr(model, "_n_samples", None)
        if fitted_n is not None and int(fitted_n) != n:
            raise DvlValueError(
                f"model was fitted on {fitted_n} points but data has {n}: pass the training "
                "set the ensemble was fitted on, in the same order."
            )
        kind = _kind(model)
        score = self._default_score(kind)
        # sklearn's ensemble classifiers train their estimators on class positions
        classes = getattr(model, "classes_", None) if isinstance(
            model, (BaggingClassifier, RandomForestClassifier, ExtraTreesClassifier)) else None
        features = getattr(model, "estimators_features_", None)
        x, y = train.data()
        x, y = to_numpy(x), to_numpy(y)
        n_features = x.shape[1] if x.ndim == 2 else None
        everyone = np.arange(n)
        total = len(estimators)
        run.set_path(f"fitted ensemble: its {total} estimators predict their out-of-bag "
                     "points (no model is trained)")
        run.result.meta.update(n_estimators=total,
                               max_samples=_jsonable(getattr(model, "max_samples", None)))
        run.stage("predicting out-of-bag points")
        halves = (ValuationResult.zeros(n), ValuationResult.zeros(n))
        tally = _Tally(n, kind)
        report_every = max(1, total // 50)
        for b, (est, drawn) in enumerate(zip(estimators, samples, strict=True)):
            drawn = np.asarray(drawn)
            if drawn.dtype == bool:
                drawn = np.flatnonzero(drawn)
            if drawn.size and (drawn.min() < 0 or drawn.max() >= n):
                raise DvlValueError(
                    f"model's estimator {b} was fitted on rows beyond the {n} points of data: "
                    "pass the training set the ensemble was fitted on."
                )
            oob = np.setdiff1d(everyone, drawn)
            if len(oob):
                rows = x[oob]
                if features is not None and n_features is not None and not np.array_equal(
                        features[b], np.arange(n_features)):
                    rows = rows[:, features[b]]
                y_pred = est.predict(rows)
                if classes is not None:
                    y_pred = np.asarray(classes).take(np.asarray(y_pred).astype(np.intp))
                self._merge(run, halves, b, oob, self._scores(score, y[oob], y_pred))
                tally.add(oob, y_pred)
            run.progressed((b + 1) / total, evaluations=b + 1)
            if (b + 1) % report_every == 0 or b + 1 == total:
                self._report(run, halves, b + 1, total)
            if run.stop_requested and b + 1 < total:
                self._finish(run, tally, y, kind, ensemble=model, complete=False)
                run.finish(RunEnd.STOPPED)
                return
        if not run.result.counts.any():
            raise DvlValueError(
                "No point is out of bag of any estimator (bootstrap=False with all the "
                "rows?): every estimator saw every point. Refit the ensemble with "
                "bootstrap=True or max_samples < 1."
            )
        self._finish(run, tally, y, kind, ensemble=model)

    def _fit_bags(self, run: Run) -> None:
        """Draw the bags, train them through the run, merge their out-of-bag scores."""
        model, train = self.model, run.train
        n = len(train)
        kind = _kind(model)
        score = self._default_score(kind)
        x, y = train.data()
        y_np = to_numpy(y)
        # labels that are not numbers travel as their positions among the training labels
        classes = np.unique(y_np) if kind == "classifier" and y_np.dtype.kind not in "biuf" \
            else None
        total = DEFAULT_N_ESTIMATORS if self.n_estimators is None else int(self.n_estimators)
        fraction = DEFAULT_MAX_SAMPLES if self.max_samples is None else float(self.max_samples)
        size = max(1, int(fraction * n))
        entropy = resolve_entropy(self.seed)
        bags = [_draw_bag(entropy, b, n, size) for b in range(total)]
        test = self.test_data
        targets = [x] if test is None else [x, test.x]
        predictor = PredictionEvaluator(model, train, targets, classes=classes,
                                        catch_errors=self.catch_errors)
        run.stage("checking the fast path")
        evaluator = self._choose(predictor)
        run.use(evaluator, CacheDirectory.open(self.cache))
        run.result.meta.update(n_estimators=total, max_samples=fraction, bag_size=size,
                               seed=entropy)

        def decode(codes: np.ndarray) -> np.ndarray:
            if classes is not None:
                return classes[codes.astype(np.intp)]
            return codes.astype(y_np.dtype) if kind == "classifier" else codes

        run.stage("training bags")
        halves = (ValuationResult.zeros(n), ValuationResult.zeros(n))
        tally, test_tally = _Tally(n, kind), _Tally(0 if test is None else len(test), kind)
        everyone = np.arange(n)
        step = round_size(total, evaluator.batch_size)
        skipped = 0
        for start in range(0, total, step):
            stop = min(start + step, total)
            rows = run.evaluate(bags[start:stop])
            for b, codes in zip(range(start, stop), rows, strict=True):
                if not np.all(np.isfinite(codes)):  # a failed fit (or predictions that are not)
                    skipped += 1
                    continue
                oob = np.setdiff1d(everyone, bags[b])
                y_pred = decode(codes[oob])
                self._merge(run, halves, b, oob, self._scores(score, y_np[oob], y_pred))
                tally.add(oob, y_pred)
                if test is not None:
                    test_tally.add(np.arange(len(test)), decode(codes[n:]))
            if skipped == stop:
                raise DvlValueError(
                    f"Fitting the model on a bag failed: {run.first_error}. Check that the "
                    "model accepts this data (or pass catch_errors=False for the traceback)."
                )
            run.result.meta["skipped_bags"] = skipped
            self._report(run, halves, stop, total)
            if run.stop_requested and stop < total:
                self._finish(run, tally, y_np, kind, test_tally=test_tally, complete=False)
                run.finish(RunEnd.STOPPED)
                return
        self._finish(run, tally, y_np, kind, test_tally=test_tally)

    def _choose(self, predictor: PredictionEvaluator) -> Evaluator:
        """The fast path for a skorch classifier it can train, else one-by-one fits."""
        if self.batched is False:
            predictor.path = "one-by-one fits (batched=False)"
            return predictor
        reason = _fast_path_reason(predictor)
        if reason is None:
            from ..fastpath import FastPathPredictionEvaluator

            return FastPathPredictionEvaluator(predictor, required=self.batched is True)
        if self.batched is True:
            raise FastPathUnsupported(
                f"batched=True, but the fast path cannot train this model's bags: {reason}. "
                "Use batched='auto' to fall back to one-by-one fits."
            )
        predictor.path = f"one-by-one fits: {reason}"
        return predictor

    def _finish(self, run: Run, tally: _Tally, y: np.ndarray, kind: str | None, *,
                ensemble: Any = None, test_tally: _Tally | None = None,
                complete: bool = True) -> None:
        """The ensemble's scores, the points never out of bag, and, when every bag was
        merged (``complete``), the status."""
        result = run.result
        name = "accuracy" if kind == "classifier" else "r2"
        result.meta[f"oob_{name}"] = tally.score(y)
        test = self.test_data
        if test is not None and kind is not None:
            x_test, y_test = test.data()
            y_test = to_numpy(y_test)
            result.meta[f"test_{name}"] = (
                float(ensemble.score(to_numpy(x_test), y_test)) if ensemble is not None
                else None if test_tally is None else test_tally.score(y_test))
        never = int(np.count_nonzero(result.counts == 0))
        result.meta["never_out_of_bag"] = never
        if not complete:
            return
        result.status = Status.Converged
        if never:
            warnings.warn(
                f"{never} of {len(result)} points were in every bag: they have no out-of-bag "
                "score (value 0, count 0). Use more n_estimators or a smaller max_samples.",
                NeverOutOfBagWarning, stacklevel=5,
            )


def _draw_bag(entropy: int, b: int, n: int, size: int) -> np.ndarray:
    """Bag ``b``: ``size`` rows drawn with replacement from its own generator, sorted."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(b,)))
    return np.sort(rng.integers(0, n, size=size)).astype(np.int64)


def _fast_path_reason(predictor: PredictionEvaluator) -> str | None:
    """None when the fast path can train the bags' model and predict as it does, else why."""
    model = predictor.model
    if not is_skorch_net(model):
        return f"{type(model).__name__} is not a skorch net (the fast path trains torch modules)"
    if _kind(model) != "classifier":
        return "the fast path predicts classes, and this net is not a classifier"
    from .. import fastpath
    from ..fastpath.spec import net_spec

    x, y = predictor.train.data(np.arange(min(4, len(predictor.train))))
    reason = fastpath.unsupported_reason(model, x, y)
    if reason is None and not net_spec(model).predict_shortcut:
        reason = "the net overrides how it predicts, which the fast path would not run"
    return reason


def _jsonable(value: Any) -> Any:
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(float(value)) else None
    return None if value is None else str(value)
