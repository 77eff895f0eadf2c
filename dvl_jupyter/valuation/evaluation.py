"""Check a valuation method on your own data: plant bad points, see whether the values find them.

Values are only worth computing if they single out the training points that hurt the model, and
on real data nobody knows which those are. The standard check (Ghorbani and Zou's Data Shapley
paper, and pyDVL's benchmarks) is to make some points bad on purpose and look at two things:

- *Detection*: :func:`flip_labels` flips a known fraction of the labels and returns the mask of
  flipped points; :func:`detection_scores` says how well the lowest values pick them out
  (AUROC, average precision, precision at k). Chance is an AUROC of 0.5 and a precision equal
  to the fraction flipped.
- *Removal*: :func:`removal_curve` retrains after removing the lowest (or highest) valued
  fraction of the training set, beside removing a random fraction, over several seeds. Good
  values make the model better when their lowest points go, and worse, fast, when their highest
  go; random removal is the baseline both must beat. ``dvl_jupyter.plots.plot_removal_curve``
  draws it.

Keys: a *mask* has one entry per position of the training :class:`~.dataset.Dataset` (what
:func:`flip_labels` returns); a result holds *data indices* (``Dataset.indices``). The functions
here align the two through the dataset, so results may be sorted or sliced freely.

Examples
--------
The notebook use: flip 10% of the digits, value them, score the values, draw the removal curve
(``model`` is the notebook's estimator, e.g. the reference skorch CNN)::

    from dvl_jupyter.datasets import load_digits
    from dvl_jupyter.plots import plot_removal_curve
    from dvl_jupyter.valuation import (MinUpdates, ModelUtility, SupervisedScorer,
                                       TMCShapleyValuation, detection_scores, flip_labels,
                                       removal_curve)

    train, test = load_digits(train_size=0.7, random_state=36)
    noisy, flipped = flip_labels(train, 0.1, seed=0)       # 126 of the 1,257 labels
    utility = ModelUtility(model, SupervisedScorer("accuracy", test, range=(0, 1)))
    result = TMCShapleyValuation(utility, is_done=MinUpdates(100), seed=36).fit(noisy).result
    print(detection_scores(result, flipped, dataset=noisy))  # AUROC 0.5 is chance
    curve = removal_curve(result, utility, noisy, n_seeds=5)
    plot_removal_curve(curve)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .dataset import Dataset, _is_tensor, as_dataset
from .evaluators import Evaluator, FunctionEvaluator
from .exceptions import DvlTypeError, DvlValueError, describe_value
from .path_choice import choose_evaluator, fallback_evaluator
from .result import ValuationResult
from .utility import ModelUtility, as_utility

__all__ = [
    "DetectionScores",
    "RemovalCurve",
    "detection_scores",
    "flip_labels",
    "removal_curve",
]

Strategy = Literal["lowest", "highest", "random"]
_STRATEGIES: tuple[str, ...] = ("lowest", "highest", "random")
DEFAULT_FRACTIONS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(11))  # 0..0.5


# ----------------------------------------------------------------------------- shared checks


def _check_fraction(fraction: Any, name: str) -> float:
    if isinstance(fraction, bool) or not isinstance(
        fraction, (int, float, np.integer, np.floating)
    ):
        raise DvlTypeError(f"{name} must be a number in (0, 1); got {describe_value(fraction)}.")
    if not 0.0 < float(fraction) < 1.0:
        raise DvlValueError(
            f"{name} must be a fraction strictly between 0 and 1; got {fraction!r}. "
            "Use e.g. 0.1 for 10%."
        )
    return float(fraction)


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DvlValueError(f"{name} must be an integer >= 1; got {describe_value(value)}.")
    return int(value)


def _check_result(result: Any) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The values and data indices of a result, refusing NaN (a ranking needs every value)."""
    if not isinstance(result, ValuationResult):
        raise DvlTypeError(
            f"result must be a ValuationResult (e.g. valuation.fit(train).result); got "
            f"{describe_value(result)}."
        )
    values = np.asarray(result.values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        shown = np.asarray(result.indices)[bad][:5].tolist()
        raise DvlValueError(
            f"result has {int(bad.sum())} values that are NaN or infinite (data indices "
            f"{shown}); points without a value cannot be ranked. Run the valuation longer or "
            "drop them (result[np.isfinite(result.values)])."
        )
    return values, np.asarray(result.indices, dtype=np.int64)


def _positions_in(own: NDArray[np.int64], wanted: NDArray[np.int64], owner: str) -> NDArray:
    """Positions in ``own`` (a dataset's data indices) of the data indices ``wanted``."""
    sorter = np.argsort(own, kind="stable")
    loc = np.clip(np.searchsorted(own, wanted, sorter=sorter), 0, max(len(own) - 1, 0))
    found = own[sorter[loc]] == wanted if len(own) else np.zeros(len(wanted), dtype=bool)
    if not found.all():
        missing = wanted[~found][:5].tolist()
        raise DvlValueError(
            f"result holds data indices {missing} that {owner} does not have; pass the "
            "training set that was valued."
        )
    return sorter[loc]


def _order(values: NDArray[np.float64], indices: NDArray[np.int64], lowest: bool) -> NDArray:
    """Positions from lowest (or highest) value; ties by data index, so sorting is irrelevant."""
    return np.lexsort((indices, values if lowest else -values))


# ----------------------------------------------------------------------------- flipping labels


def _labels_as_numpy(y: Any) -> np.ndarray:
    return y.detach().cpu().numpy() if _is_tensor(y) else np.asarray(y)


def flip_labels(
    dataset: Dataset | tuple[Any, Any],
    fraction: float,
    seed: int | np.random.Generator | None = None,
) -> tuple[Dataset, NDArray[np.bool_]]:
    """Flip a fraction of the labels, each to another class: the known-bad points of a check.

    ``round(fraction * n)`` points are drawn uniformly without replacement; each gets a label
    drawn uniformly from the *other* classes present in ``y`` (never its own). Uniform noise is
    the setting of the Data Shapley paper and of pyDVL's benchmarks; it is the easy case (real
    label noise is often between similar classes), so treat a poor score here as a bad sign.

    Parameters
    ----------
    dataset
        The training :class:`Dataset` (or an ``(x, y)`` pair); ``y`` holds one class label per
        point, as a numpy array or a torch tensor (on any device).
    fraction
        Fraction of the points to flip, strictly between 0 and 1. ``round`` is Python's
        (ties to even), so 10% of 1,257 points flips 126.
    seed
        Seed (or numpy ``Generator``) of the draw; the same seed flips the same points to the
        same labels. None draws fresh randomness.

    Returns
    -------
    noisy : Dataset
        A new dataset with the flipped ``y`` (a copy of the same type, dtype and device); ``x``
        (the same object, not copied), ``names`` and ``indices`` are those of ``dataset``.
    mask : numpy.ndarray of bool, shape (n,)
        True at the positions whose label was flipped, in the dataset's position order: what
        :func:`detection_scores` takes.

    Raises
    ------
    DvlValueError
        If ``fraction`` is not in (0, 1) or flips no point, or ``y`` is not class labels
        (not 1-D, fractional numbers, or a single class).

    Examples
    --------
    >>> data = Dataset(np.zeros((10, 2)), np.array([0, 1] * 5))
    >>> noisy, mask = flip_labels(data, 0.3, seed=0)
    >>> int(mask.sum()), bool(np.all(noisy.y[mask] != data.y[mask]))
    (3, True)
    """
    data = as_dataset(dataset, "dataset")
    fraction = _check_fraction(fraction, "fraction")
    n = len(data)
    n_flip = round(fraction * n)
    if n_flip == 0:
        raise DvlValueError(
            f"fraction={fraction!r} of {n} points flips no label (round({fraction} * {n}) == 0); "
            f"use a fraction of at least {1 / max(n, 1):.3g}."
        )
    y = _labels_as_numpy(data.y)
    if y.ndim != 1:
        raise DvlValueError(
            f"dataset.y must be 1-D class labels, one per point; got shape {tuple(y.shape)}. "
            "Pass the class indices (e.g. y.argmax(axis=1) for one-hot targets)."
        )
    if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
        raise DvlValueError(
            "dataset.y must be class labels; got floats with fractional parts (regression "
            "targets?). Label flipping needs classes: pass integer labels."
        )
    if y.dtype.kind not in "biufUSO":
        raise DvlValueError(f"dataset.y must be class labels; got dtype {y.dtype}.")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DvlValueError(
            f"dataset.y has a single class ({classes[0]!r}), so no label can be flipped to "
            "another; pass data with at least two classes."
        )

    rng = np.random.default_rng(seed)
    flipped = rng.choice(n, size=n_flip, replace=False)
    # an offset in 1..C-1 added modulo C lands uniformly on one of the other C-1 classes
    offsets = rng.integers(1, len(classes), size=n_flip)
    new_labels = classes[(codes[flipped] + offsets) % len(classes)]

    if _is_tensor(data.y):
        import torch

        y_new = data.y.clone()
        where = torch.as_tensor(flipped, device=data.y.device)
        y_new[where] = torch.as_tensor(new_labels, dtype=data.y.dtype, device=data.y.device)
    else:
        y_new = np.array(data.y, copy=True)
        y_new[flipped] = new_labels

    mask = np.zeros(n, dtype=bool)
    mask[flipped] = True
    return Dataset(data.x, y_new, names=data.names, indices=data.indices), mask


# ----------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class DetectionScores:
    """How well the lowest values pick out the flagged points (higher is better for all three).

    Attributes
    ----------
    auroc
        Probability that a random flagged point has a lower value than a random unflagged
        one, ties counting half (0.5 is chance, 1 perfect).
    average_precision
        The mean of the precision at each flagged point's rank, from the lowest value up
        (chance is ``base_rate``).
    precision_at_k
        Fraction of flagged points among the ``k`` lowest values (chance is ``base_rate``).
        Ties at the ``k``-th value are shared out at the tied points' flagged rate (the
        expected precision over tie orders), so the score does not depend on the result's order.
    k
        The ``k`` of ``precision_at_k``.
    n_points, n_flagged
        Points scored (those of the result) and how many of them are flagged.
    """

    auroc: float
    average_precision: float
    precision_at_k: float
    k: int
    n_points: int
    n_flagged: int

    @property
    def base_rate(self) -> float:
        """The fraction of flagged points: what average precision and precision@k give by chance."""
        return self.n_flagged / self.n_points


def _check_mask(mask: Any) -> NDArray[np.bool_]:
    m = _labels_as_numpy(mask)
    if m.ndim != 1:
        raise DvlValueError(
            f"mask must be 1-D, one bool per training point; got shape {tuple(m.shape)}."
        )
    if m.dtype != bool:
        if m.dtype.kind in "iuf" and np.isin(m, (0, 1)).all():
            m = m.astype(bool)
        else:
            raise DvlTypeError(
                f"mask must be booleans (True where a point is flagged); got dtype {m.dtype}. "
                "Pass the mask returned by flip_labels."
            )
    return m


def _mask_at(
    mask: NDArray[np.bool_], indices: NDArray[np.int64], dataset: Dataset | None
) -> NDArray[np.bool_]:
    """The mask's entry for each of the result's data indices."""
    if dataset is not None:
        if len(mask) != len(dataset):
            raise DvlValueError(
                f"mask has {len(mask)} entries but dataset has {len(dataset)} points; pass the "
                "mask of this dataset (one entry per position, as flip_labels returns)."
            )
        return mask[_positions_in(np.asarray(dataset.indices, np.int64), indices, "dataset")]
    if len(mask) < len(indices):
        raise DvlValueError(
            f"mask has {len(mask)} entries but result has {len(indices)} points; pass one "
            "entry per training point."
        )
    outside = (indices < 0) | (indices >= len(mask))
    if outside.any():
        raise DvlValueError(
            f"mask has {len(mask)} entries, but result holds data indices "
            f"{indices[outside][:5].tolist()} outside 0..{len(mask) - 1}. Without dataset, "
            "mask[i] is about data index i; pass dataset=train (the training set valued) when "
            "its indices are not 0..n-1 (e.g. after a split)."
        )
    return mask[indices]


def _precision_at_k(values: NDArray[np.float64], flags: NDArray[np.bool_], k: int) -> float:
    threshold = np.sort(values)[k - 1]
    below = values < threshold
    tied = values == threshold
    n_below = int(below.sum())
    from_ties = (k - n_below) * flags[tied].mean()
    return float((flags[below].sum() + from_ties) / k)


def detection_scores(
    result: ValuationResult,
    mask: ArrayLike,
    dataset: Dataset | None = None,
    k: int | None = None,
) -> DetectionScores:
    """Score a result's lowest values as a detector of the flagged points.

    Low values are the suspects: a method that finds flipped labels gives them the lowest
    values. Only the points of ``result`` are scored, matched to the mask by data index, so a
    sorted or sliced result works (a slice is scored among its own points).

    Parameters
    ----------
    result
        Values of (some of) the training points.
    mask
        One bool per training point, True where the point is bad (as :func:`flip_labels`
        returns). It is keyed by *position*: ``mask[i]`` is about the point at position ``i``
        of ``dataset``, which has data index ``dataset.indices[i]``.
    dataset
        The training set that was valued. Without it, ``mask[i]`` is about data index ``i``,
        right for a dataset built without ``indices`` but not for one out of a split
        (``load_digits`` and ``Dataset.from_arrays`` keep the original row numbers).
    k
        For ``precision_at_k``, in ``1..len(result)``; by default the number of flagged points
        (so a perfect detector scores 1).

    Returns
    -------
    DetectionScores
        AUROC and average precision (from ``sklearn.metrics``, with ``-values`` as the
        score), precision at ``k``, and the counts behind them.

    Raises
    ------
    DvlValueError
        If the mask does not match the dataset (or the result), has no True or no False
        among the result's points (no ranking can be scored), ``k`` is out of range, or a
        value is NaN.

    Examples
    --------
    The flagged points are the 2nd and 3rd lowest of five: each beats two of the three
    unflagged, so AUROC is 4/6; the precisions at their ranks are 1/2 and 2/3.

    >>> r = ValuationResult(np.array([-0.5, -0.2, 0.0, 0.1, 0.3]))
    >>> s = detection_scores(r, np.array([False, True, True, False, False]))
    >>> round(s.auroc, 4), round(s.average_precision, 4), s.precision_at_k
    (0.6667, 0.5833, 0.5)
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    values, indices = _check_result(result)
    if dataset is not None and not isinstance(dataset, Dataset):
        raise DvlTypeError(
            f"dataset must be the training Dataset that was valued; got {describe_value(dataset)}."
        )
    flags = _mask_at(_check_mask(mask), indices, dataset)
    n_flagged = int(flags.sum())
    if n_flagged == 0 or n_flagged == len(flags):
        which = "no" if n_flagged == 0 else "only"
        raise DvlValueError(
            f"mask flags {which} points among the result's {len(flags)}: a detector needs "
            "both flagged and unflagged points to be scored. Pass the full result, or a mask "
            "with both."
        )
    if k is None:
        k = n_flagged
    elif isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(flags):
        raise DvlValueError(
            f"k must be an integer in 1..{len(flags)} (the result's points); got "
            f"{describe_value(k)}. Leave it None for the number of flagged points."
        )
    suspicion = -values
    return DetectionScores(
        auroc=float(roc_auc_score(flags, suspicion)),
        average_precision=float(average_precision_score(flags, suspicion)),
        precision_at_k=_precision_at_k(values, flags, int(k)),
        k=int(k),
        n_points=len(flags),
        n_flagged=n_flagged,
    )


# ----------------------------------------------------------------------------- removal curve


@dataclass(frozen=True, eq=False)
class RemovalCurve:
    """Scores of models retrained after removing fractions of the training set.

    Attributes
    ----------
    fractions
        Fractions removed, ascending, shape ``(m,)``.
    n_removed
        Points removed at each fraction, ``round(fraction * n_points)``.
    scores
        Per strategy (``"lowest"``, ``"highest"``, ``"random"``), the raw scores, shape
        ``(n_seeds, m)``: row ``s`` is seed ``s``.
    mean, low, high
        Per strategy, the mean over seeds and the bounds of its 95% t-interval (the
        uncertainty of the mean curve, not the spread of single runs); NaN with one seed.
    n_points
        Size of the training set.
    score_name
        What the scores are (the scorer's name), for the plot's axis.
    seed
        The ``seed`` the curve was computed with; seed ``s`` of ``n_seeds`` used
        ``random_state=seed + s`` and the random removals of ``default_rng([seed, s])``.
    """

    fractions: NDArray[np.float64]
    n_removed: NDArray[np.int64]
    scores: dict[str, NDArray[np.float64]]
    mean: dict[str, NDArray[np.float64]]
    low: dict[str, NDArray[np.float64]]
    high: dict[str, NDArray[np.float64]]
    n_points: int
    score_name: str
    seed: int

    @property
    def strategies(self) -> tuple[str, ...]:
        """The removal strategies computed, in the order asked."""
        return tuple(self.scores)

    @property
    def n_seeds(self) -> int:
        return int(next(iter(self.scores.values())).shape[0])


def _check_fractions(fractions: Any, n: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    try:
        f = np.asarray(fractions, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise DvlTypeError(
            f"fractions must be numbers in [0, 1); got {describe_value(fractions)}."
        ) from None
    if f.size == 0:
        raise DvlValueError("fractions is empty; pass e.g. fractions=(0, 0.1, 0.2, 0.3).")
    bad = ~((f >= 0.0) & (f < 1.0))
    if bad.any():
        raise DvlValueError(
            f"fractions must be in [0, 1) (the share of training points removed); got "
            f"{f[bad][:5].tolist()}."
        )
    f = np.unique(f)
    n_removed = np.array([round(x * n) for x in f], dtype=np.int64)
    empty = n_removed >= n
    if empty.any():
        largest = (n - 1) / n
        raise DvlValueError(
            f"fractions {f[empty].tolist()} remove all {n} training points, leaving nothing to "
            f"train on; use fractions below {largest:.3g}."
        )
    return f, n_removed


def _check_which(which: Any) -> tuple[str, ...]:
    chosen = (which,) if isinstance(which, str) else tuple(which)
    unknown = [w for w in chosen if w not in _STRATEGIES]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise DvlValueError(
            f"which must name distinct strategies among {_STRATEGIES}; got {which!r}."
        )
    return chosen


def _training_indices(
    result_indices: NDArray[np.int64], utility: Any, train: Dataset | None
) -> tuple[Any, NDArray]:
    """The training set (None for a plain callable), and each result point's training position."""
    if train is not None:
        if not isinstance(train, Dataset):
            raise DvlTypeError(
                f"train must be the training Dataset that was valued; got {describe_value(train)}."
            )
        own = np.asarray(train.indices, dtype=np.int64)
    elif getattr(utility, "training_data", None) is not None:
        train = utility.training_data
        own = np.asarray(train.indices, dtype=np.int64)
    elif hasattr(utility, "random_state"):
        raise DvlValueError(
            "utility is not bound to training data; pass train=... (the training set valued) "
            "or utility.with_dataset(train)."
        )
    else:  # a plain u(positions): the positions are the data indices
        own = np.arange(len(result_indices), dtype=np.int64)
    if len(own) != len(result_indices) or not np.array_equal(np.sort(own), np.sort(result_indices)):
        where = "train" if train is not None else "the utility's positions 0..n-1"
        raise DvlValueError(
            f"result must value every point of the training set ({len(own)} points of {where}); "
            f"it has {len(result_indices)} points with other data indices. A removal curve "
            "ranks the whole training set: pass the full result of valuing it."
        )
    # result position -> training position
    return train, _positions_in(own, result_indices, "train")


def _seeded_evaluator(utility: Any, train: Dataset | None, random_state: int) -> Evaluator:
    """What computes the curve's scores for one seed: a ModelUtility fitting with another
    ``random_state`` (on the fast path when its model takes it), a plain callable as is."""
    if isinstance(utility, ModelUtility):
        return choose_evaluator(utility.reseeded(random_state).with_dataset(train), "auto")
    return FunctionEvaluator(as_utility(utility))


def removal_curve(
    result: ValuationResult,
    utility: Any,
    train: Dataset | None = None,
    fractions: Sequence[float] | ArrayLike = DEFAULT_FRACTIONS,
    n_seeds: int = 5,
    seed: int = 0,
    which: Sequence[Strategy] | Strategy = ("lowest", "highest", "random"),
) -> RemovalCurve:
    """Retrain after removing the lowest / highest valued points, or random ones, over seeds.

    The picture of the Data Shapley paper (pyDVL's ``compute_removal_score``, with seeds and
    the random baseline added): if the values mean something, removing the lowest valued
    points first helps the model (or hurts it least), removing the highest first hurts it
    most, and both differ from removing points at random.

    Each strategy removes nested sets: the ``round(f * n)`` lowest (highest) values, ties
    broken by data index; random removal takes the first ``round(f * n)`` of one random
    permutation per seed. Seed ``s`` (0..n_seeds-1) fits every model with
    ``random_state = seed + s``, so the interval covers both the training randomness and the
    random draw. Fits of the same subset with the same seed are done once (fraction 0 is one
    fit per seed for all strategies).

    Parameters
    ----------
    result
        Values of every training point (sorted or not).
    utility
        A :class:`~.utility.ModelUtility` (its ``random_state`` is set per seed on a copy) or
        any ``u(positions) -> float`` over the training positions. A plain callable has no
        training randomness to vary: only its random removals change with the seed.
    train
        The training set that was valued. Needed for an unbound ModelUtility; by default
        the one the utility is bound to; for a plain callable, the data indices of its
        positions (without it, the result's indices must be 0..n-1).
    fractions
        Fractions of the training set to remove, in [0, 1), used sorted.
    n_seeds
        Repetitions, for the 95% intervals (at least 2 for an interval).
    seed
        Base seed of the fits and the random removals.
    which
        Strategies to compute, any of ``"lowest"``, ``"highest"``, ``"random"``.

    Returns
    -------
    RemovalCurve
        Raw scores per strategy and seed, their means and 95% intervals.

    Raises
    ------
    DvlValueError
        If a fraction is outside [0, 1) or leaves no training point, the result does not value
        exactly the training set, a value is NaN, or ``which`` / ``n_seeds`` are invalid.

    Warns
    -----
    FailedFitsWarning
        When fits failed and scored the scorer's default (a ModelUtility with
        ``catch_errors=True``), since those points of the curve are not real scores.
    """
    values, indices = _check_result(result)
    strategies = _check_which(which)
    n_seeds = _check_positive_int(n_seeds, "n_seeds")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DvlTypeError(f"seed must be an int >= 0; got {describe_value(seed)}.")
    if seed < 0:
        raise DvlValueError(f"seed must be an int >= 0; got {seed}.")
    train, to_train = _training_indices(indices, utility, train)
    n = len(indices)
    f, n_removed = _check_fractions(fractions, n)

    orders = {
        "lowest": to_train[_order(values, indices, lowest=True)],
        "highest": to_train[_order(values, indices, lowest=False)],
    }
    scores = {s: np.empty((n_seeds, len(f)), dtype=np.float64) for s in strategies}
    n_failed, first_error = 0, None
    for s in range(n_seeds):
        if "random" in strategies:
            orders["random"] = np.random.default_rng([int(seed), s]).permutation(n)
        subsets: dict[bytes, np.ndarray] = {}
        keys: dict[tuple[str, int], bytes] = {}
        for strategy in strategies:
            for j, r in enumerate(n_removed):
                kept = np.sort(orders[strategy][r:])
                keys[strategy, j] = kept.tobytes()
                subsets.setdefault(kept.tobytes(), kept)
        evaluator = _seeded_evaluator(utility, train, int(seed) + s)
        todo = list(subsets.values())
        values_s = []
        step = evaluator.batch_size
        for k in range(0, len(todo), step):
            chunk = todo[k:k + step]
            batch = evaluator.evaluate_many(chunk)
            if batch.fallback is not None:  # the fast path gave up: one fit at a time
                evaluator = fallback_evaluator(evaluator, batch.fallback)
                batch = evaluator.evaluate_many(chunk)
            n_failed += batch.n_failed
            first_error = first_error or batch.first_error
            values_s.append(np.asarray(batch.values, dtype=np.float64))
        value_of = dict(zip(subsets, np.concatenate(values_s), strict=True))
        for (strategy, j), key in keys.items():
            scores[strategy][s, j] = value_of[key]
    if n_failed:
        from .driver import FailedFitsWarning

        warnings.warn(
            f"{n_failed} fits of the removal curve failed and scored the scorer's default; "
            f"first error: {first_error}",
            FailedFitsWarning,
            stacklevel=2,
        )

    mean, low, high = {}, {}, {}
    for strategy, sc in scores.items():
        mean[strategy] = sc.mean(axis=0)
        if n_seeds > 1:
            from scipy.stats import t

            half = t.ppf(0.975, n_seeds - 1) * sc.std(axis=0, ddof=1) / math.sqrt(n_seeds)
        else:
            half = np.full(len(f), np.nan)
        low[strategy], high[strategy] = mean[strategy] - half, mean[strategy] + half
    scorer = getattr(utility, "scorer", None)
    return RemovalCurve(
        fractions=f,
        n_removed=n_removed,
        scores=scores,
        mean=mean,
        low=low,
        high=high,
        n_points=n,
        score_name=str(getattr(scorer, "name", None) or "score"),
        seed=int(seed),
    )
