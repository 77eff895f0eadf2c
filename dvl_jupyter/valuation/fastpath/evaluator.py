"""The fast path as an evaluator: what a valuation run sends to its workers.

:class:`FastPathEvaluator` trains one model per non-empty subset of a chunk at once and scores
each with the utility's scorer. Kept apart from the trainer so that the trainer knows nothing
about utilities, scorers' defaults or failure accounting.

When the fast path cannot train a chunk at all (an error inside the trainer, not a model that
merely scores badly), the evaluator does not raise from the worker: it says why in
``batch.fallback``, and the driver carries on one fit at a time (``batched="auto"``). With
``batched=True`` (``required``) the failure is an error naming its cause. A model that trains
but scores NaN is a counted failure, as one fit at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..evaluators import EvaluationBatch, PredictionEvaluator
from ..exceptions import DvlValueError, FastPathUnsupported
from ..failures import Failure, NotANumber
from ..fingerprint import digest

if TYPE_CHECKING:
    from ..utility import ModelUtility

__all__ = ["DEFAULT_BLOCK", "FastPathEvaluator", "FastPathPredictionEvaluator"]

#: Models trained together in one block (per worker).
DEFAULT_BLOCK = 32


class FastPathEvaluator:
    """Trains the models of a chunk of subsets together (see :mod:`dvl_jupyter.valuation.fastpath`).

    Parameters
    ----------
    utility
        A bound :class:`~dvl_jupyter.valuation.utility.ModelUtility` over a skorch net that
        the fast path can train (checked by ``choose_evaluator``).
    required
        ``batched=True``: a failure of the fast path is an error instead of a fallback.
    block
        Models trained together per task.
    """

    def __init__(self, utility: ModelUtility, required: bool = False,
                 block: int = DEFAULT_BLOCK) -> None:
        self.utility = utility
        self.required = required
        self.batch_size = block
        self.path = f"fast path: {block} models trained together"

    def fingerprint(self) -> str:
        # Equal to one-by-one fits up to float rounding only: cached apart from them.
        return digest(self.utility.fingerprint(), "fast")

    def evaluate_many(self, subsets: Sequence[np.ndarray]) -> EvaluationBatch:
        from .scoring import fit_score_many

        utility = self.utility
        scorer = utility.scorer
        # sorted, as in one-by-one fits: the rows a model sees depend on the set alone
        subsets = [np.sort(np.asarray(s, dtype=np.int64)) for s in subsets]
        values = np.full(len(subsets), float(scorer.default))
        todo = [i for i, s in enumerate(subsets) if len(s) > 0]
        if not todo:
            return EvaluationBatch(values)
        x, y = utility.training_data.data()
        seeds = [utility.fit_seed(subsets[i]) for i in todo]
        orders = [utility.training_order(subsets[i]) for i in todo]
        errors: list[tuple[int, Exception]] = []
        try:
            scores = fit_score_many(utility.model, x, y, [subsets[i] for i in todo], seeds,
                                    scorer, orders=None if orders[0] is None else orders,
                                    errors=errors)
        except Exception as exc:  # noqa: BLE001 - becomes a fallback or an error, see above
            cause = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            if self.required:
                raise FastPathUnsupported(
                    f"batched=True, but the fast path failed while training: {cause}. Use "
                    "batched='auto' to fall back to one-by-one fits."
                ) from exc
            return EvaluationBatch(values, fallback=cause)
        low, high = getattr(scorer, "range", (-np.inf, np.inf))
        batch = EvaluationBatch(values, len(todo))
        raised = dict(errors)
        for k, (i, score) in enumerate(zip(todo, scores, strict=True)):
            if k not in raised and np.isfinite(score):
                values[i] = float(np.clip(score, low, high))
                continue
            # the default stays; as one fit at a time: a single class is expected, anything
            # else (an exception, NaN) a counted failure, or an error without catch_errors
            size = len(subsets[i])
            if k in raised and utility.one_class(y[subsets[i]]):
                batch.n_one_class += 1
                continue
            if k in raised and isinstance(raised[k], NotANumber):
                failure = Failure("score", utility.score_culprit, str(raised[k]), size)
            elif k in raised:
                failure = Failure.raised("score", utility.score_culprit, raised[k], size)
            else:
                failure = Failure.returned("score", utility.score_culprit, float(score), size)
            if not utility.catch_errors:
                failure.raise_error(len(utility.training_data))
            batch.failed(failure)
        return batch


def _cause(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


class FastPathPredictionEvaluator:
    """Data-OOB's bags on the fast path: K models trained at once on their multisets of rows,
    and their predicted classes (the argmax of ``predict_proba``, as skorch's classifier
    predicts) for every target point, encoded as :class:`PredictionEvaluator` encodes them.

    Parameters
    ----------
    bags
        The one-by-one evaluator of the same bags over a skorch classifier the fast path can
        train (the caller checks); its ``model``, ``train``, ``targets``, seeds and encoding
        are used, and it is what a failure mid-run falls back to.
    required
        ``batched=True``: a failure of the fast path is an error instead of a fallback.
    block
        Models trained together per task.
    """

    def __init__(self, bags: PredictionEvaluator, required: bool = False,
                 block: int = DEFAULT_BLOCK) -> None:
        self.bags = bags
        self.required = required
        self.batch_size = block
        self.width = bags.width
        self.path = f"fast path: {block} models trained together"

    def fingerprint(self) -> str:
        # Equal to one-by-one fits up to float rounding only: cached apart from them.
        return digest(self.bags.identity(), "fast")

    def fallback_evaluator(self, reason: str) -> PredictionEvaluator:
        """The one-by-one fits that replace this path when it failed mid-run."""
        other = copy.copy(self.bags)
        other.path = f"one-by-one fits: the fast path failed ({reason})"
        return other

    def evaluate_many(self, subsets: Sequence[np.ndarray]) -> EvaluationBatch:
        from .scoring import fit_predict_many

        bags = self.bags
        rows = [np.sort(np.asarray(s, dtype=np.int64)) for s in subsets]
        values = np.full((len(rows), self.width), np.nan)
        todo = [i for i, r in enumerate(rows) if len(r) > 0]
        if not todo:
            return EvaluationBatch(values)
        x, y = bags.train.data()
        try:
            probs = fit_predict_many(bags.model, x, y, [rows[i] for i in todo],
                                     [bags.fit_seed(rows[i]) for i in todo], bags.targets)
        except Exception as exc:  # noqa: BLE001 - becomes a fallback or an error, see above
            if self.required:
                raise FastPathUnsupported(
                    f"batched=True, but the fast path failed while training: {_cause(exc)}. "
                    "Use batched='auto' to fall back to one-by-one fits."
                ) from exc
            return EvaluationBatch(values, fallback=_cause(exc))
        batch = EvaluationBatch(values, len(todo))
        culprit = f"{type(bags.model).__name__}.predict"
        for k, i in enumerate(todo):
            try:
                values[i] = np.concatenate([bags.encode(p[k].argmax(axis=-1), len(t))
                                            for p, t in zip(probs, bags.targets, strict=True)])
            except DvlValueError as exc:  # a label outside the training labels
                failure = Failure.raised("score", culprit, exc, len(rows[i]))
                if not bags.catch_errors:
                    failure.raise_error(len(bags.train))
                batch.failed(failure)
        return batch
