r"""Exact Shapley values of a K-nearest-neighbour classifier (Jia et al. 2019), in closed form.

The one idea worth knowing: for a KNN classifier the Shapley value needs no model fits. The
utility of a subset :math:`S` of the training set, for one test point :math:`(x, y)`, is the
fraction of the :math:`K` points of :math:`S` nearest to :math:`x` that carry the label
:math:`y` (pyDVL's ``KNNClassifierUtility``, the likelihood of the right label under unweighted
votes)

.. math:: u(S) = \frac{1}{K} \sum_{k=1}^{\min(K, |S|)} [y_{\alpha_k(S)} = y],

where :math:`\alpha_k(S)` is the :math:`k`-th nearest point of :math:`S`. A point only matters
while it is among the :math:`K` nearest, so, with the training points sorted by distance
(rank :math:`j = 1..n`, :math:`m_j = [y_{\alpha_j} = y]`), the Shapley values follow a
one-pass recursion from the farthest point inwards:

.. math:: s_n = \frac{m_n}{\max(K, n)}, \qquad
          s_j = s_{j+1} + \frac{m_j - m_{j+1}}{\max(K, j)},

so one test point costs a sort, :math:`O(n \log n)`. The values of a test set are the mean over
its points (the utility is the mean of the per-point utilities; Shapley values are linear).
The base case :math:`m_n / \max(K, n)` is the paper's :math:`m_n / n` when :math:`K \le n`, and
stays exact when :math:`K > n` (then every point is always among the neighbours).

**Ties.** Points at equal distance have no natural order, and the recursion needs one.
scikit-learn's neighbour searches (and so pyDVL, which orders by ``kneighbors``) break ties in
an implementation-defined order (heaps and an unstable sort, which changes with the data size
and the search algorithm), so that order cannot serve as a definition. This module breaks
ties uniformly at random, in expectation: the utility is the one above *averaged over every
order of each group of equidistant training points*. For a subset :math:`S` whose
:math:`K`-th neighbour distance is :math:`\delta`, this is

.. math:: u(S) = \frac{1}{K}\Big(\#\{i \in S: d_i < \delta, m_i\}
          + r \, \frac{\#\{i \in S: d_i = \delta, m_i\}}{\#\{i \in S: d_i = \delta\}}\Big),
          \qquad r = K - \#\{i \in S: d_i < \delta\},

the expected score of a KNN classifier that picks the missing :math:`r` neighbours at random
among the tied ones. Its Shapley values are the mean of the strict-order values over the tie
orders (linearity), which has a closed form per group of ties (see ``_tied_values``), so
the cost stays one sort per test point. Consequences: the values do not depend on the order
of the rows, and duplicated points with the same label get the same value (Shapley's symmetry
axiom holds for them, which it does not under "the first row wins"). "Equal" means equal
computed distances (for the Euclidean metric: equal squared distances, computed as
:math:`\lVert a\rVert^2 + \lVert b\rVert^2 - 2 a \cdot b` in float64; on data such as raw
pixels, whose products and sums are exact, equal means exactly equal).

To reproduce another library's order, including its tie order (e.g. to compare with pyDVL,
which uses scikit-learn's), pass that order to :func:`knn_shapley_from_ranking`.

**Features.** Distances are computed on the rows of ``x`` flattened, or on ``features(x)``
(any function returning a 2-D array, one row per point), e.g. the penultimate layer of a
fitted net; see :class:`KNNShapleyValuation`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..callbacks import ValuationCallback
from ..dataset import Dataset, as_dataset
from ..driver import Run
from ..exceptions import DvlTypeError, DvlValueError, describe_value
from ..result import Status
from .base import ValuationMethod

__all__ = ["KNNShapleyValuation", "knn_shapley_values", "knn_shapley_from_ranking"]

#: Metrics computed as squared Euclidean distances (same order as the Euclidean distance).
_EUCLIDEAN = frozenset({"euclidean", "l2", "sqeuclidean"})

#: Peak bytes per (test point, training point) pair of one chunk, an upper bound: distances,
#: sort order, labels and per-rank terms in float64/int64. tracemalloc measures about 33
#: without ties, 47 on raw digit pixels and 62 in the worst case (every training point tied
#: with one other: the most tie groups).
_BYTES_PER_PAIR = 64

#: Default memory budget of one chunk of test points.
_CHUNK_BUDGET = 64 * 2**20


# -- the closed form -----------------------------------------------------------------------
def _rank_weights(n: int, n_neighbors: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``c[q] = 1 / max(K, q + 1)`` and ``d[q] = c[q - 1] - c[q]`` (``d[0] = 0``), q = 0..n-1.

    Unrolling the recursion gives ``s[q] = m[q] c[q] - sum_{l > q} m[l] d[l]``: a point's value
    is its own vote weight minus what the matching points behind it lose by being pushed one
    rank further out. ``d`` is 0 inside the first K ranks and ``1 / (q (q + 1))`` after.
    """
    c = 1.0 / np.maximum(n_neighbors, np.arange(1, n + 1, dtype=np.float64))
    d = np.zeros(n)
    d[1:] = c[:-1] - c[1:]
    return c, d


def _tail_sums(rate: NDArray[np.float64], d: NDArray[np.float64]) -> NDArray[np.float64]:
    """``after[t, q] = sum_{l > q} rate[t, l] d[l]``, consuming ``rate`` (R x n) in place."""
    rate *= d
    after = np.cumsum(rate[:, ::-1], axis=1)[:, ::-1]
    after -= rate
    return after


def _strict_values(
    match: NDArray[np.float64], c: NDArray[np.float64], d: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Values at each rank of each row of ``match`` (R x n, nearest first), no ties.

    Consumes ``match`` (it becomes scratch space).
    """
    values = match * c
    values -= _tail_sums(match, d)
    return values


def _tied_values(
    match: NDArray[np.float64],
    new_group: NDArray[np.bool_],
    c: NDArray[np.float64],
    d: NDArray[np.float64],
    n_neighbors: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Values at each rank, averaged over the orders of each group of tied ranks, and u(N)
    of each row. Consumes ``match`` (its memory holds the values).

    For a point p of a group occupying ranks a..b (g >= 2 points, M of them matching), over
    all orders of the group: p sits at a uniformly random rank r of a..b, and each rank behind
    it inside the group holds a matching point with probability (M - m_p) / (g - 1). With
    ``cbar`` the mean of ``c`` over a..b and ``T = sum_{l > b} rate_l d[l]`` the loss term of
    the ranks after b (``rate_l``: the match rate of the group of rank l, since those ranks
    are in random order too)::

        E[s_p] = m_p cbar - T - (M - m_p) (cbar - c[b]) / (g - 1)

    because ``sum_{l = r + 1..b} d[l] = c[r] - c[b]``. Untied ranks keep the strict formula
    (with the same tail ``T``). Only tied groups get per-group arrays, so memory grows with
    the number of tied ranks, not of ranks. ``u(N) = sum_{q < K} rate_q / K``: the expected
    fraction of matching labels among the K nearest.
    """
    rows, n = match.shape
    flat_m = match.ravel()
    starts = new_group.ravel()
    ends = np.empty_like(starts)  # True where the next rank starts a new group
    ends[:-1] = starts[1:]
    ends[-1] = True
    first = np.flatnonzero(starts & ~ends)  # first and last rank of each tied group
    last = np.flatnonzero(ends & ~starts)
    tied = ~(starts & ends)
    del starts, ends
    size = last - first + 1
    m_tied = flat_m[tied]  # the tied ranks, group after group
    offsets = np.cumsum(size) - size
    n_match = np.add.reduceat(m_tied, offsets)
    del offsets

    rate = match.copy()
    rate.ravel()[tied] = np.repeat(n_match / size, size)
    utility = rate[:, :n_neighbors].sum(axis=1) / n_neighbors
    values = match  # the strict formula, right for the untied ranks; match is not needed now
    values *= c
    after = _tail_sums(rate, d)
    del rate
    values -= after
    tail = after[last // n, last % n]
    del after

    first %= n  # ranks within the row
    last %= n
    c_cum = np.concatenate(([0.0], np.cumsum(c)))
    c_bar = c_cum[last + 1] - c_cum[first]
    c_bar /= size
    slope = c_bar - c[last]
    slope /= size - 1
    del first, last
    c_bar += slope
    tail += n_match * slope
    del n_match, slope
    fix = np.repeat(c_bar, size)
    fix *= m_tied
    del m_tied
    fix -= np.repeat(tail, size)
    values.ravel()[tied] = fix
    return values, utility


# -- distances -----------------------------------------------------------------------------
def _to_numpy(a: Any) -> np.ndarray:
    """Torch tensors (on any device) and array-likes to numpy, without importing torch."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _features(x: Any, name: str) -> NDArray[np.float64]:
    arr = _to_numpy(x)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise DvlValueError(
            f"{name} must hold at least one point (one row per point); got shape {arr.shape}."
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DvlTypeError(
            f"{name} must be numeric to compute distances; got dtype {arr.dtype}. Encode it as "
            "numbers, or pass features=... to map it to a 2-D numeric array."
        )
    return np.ascontiguousarray(arr.reshape(arr.shape[0], -1), dtype=np.float64)


def _labels(y: Any, name: str, n: int) -> np.ndarray:
    arr = _to_numpy(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DvlValueError(
            f"{name} must be a 1-D array of class labels; got shape {arr.shape}. For one-hot "
            f"targets pass {name}.argmax(axis=1)."
        )
    if arr.shape[0] != n:
        raise DvlValueError(
            f"{name} must have one label per point ({n}); got {arr.shape[0]}."
        )
    return arr


def _check_label_types(y_train: np.ndarray, y_test: np.ndarray) -> None:
    """Numbers never equal strings in numpy (no error, all False): say so instead."""
    numeric = [np.issubdtype(y.dtype, np.number) or y.dtype == bool for y in (y_train, y_test)]
    if numeric[0] != numeric[1]:
        raise DvlTypeError(
            f"y_test labels ({y_test.dtype}) cannot match y_train labels ({y_train.dtype}): "
            "they would never compare equal. Encode both the same way."
        )


def _check_metric(
    metric: Any, metric_params: Mapping[str, Any] | None
) -> tuple[str | Callable[..., float], dict[str, Any]]:
    """Resolve sklearn's (metric, metric_params) to what :func:`_distances` computes.

    ``minkowski`` with ``p=2`` (sklearn's default) is the Euclidean distance, computed as
    such; any other metric sklearn's brute-force search accepts goes to
    ``sklearn.metrics.pairwise_distances``.
    """
    from sklearn.neighbors import VALID_METRICS

    params = dict(metric_params or {})
    if callable(metric):
        return metric, params
    if not isinstance(metric, str) or metric not in VALID_METRICS["brute"]:
        raise DvlValueError(
            f"metric must be a metric name of sklearn's neighbour search or a callable; got "
            f"{describe_value(metric)}. Use e.g. metric='euclidean'."
        )
    if metric == "precomputed":
        raise DvlValueError(
            "metric='precomputed' is not supported: KNN-Shapley computes the distances from "
            "features. Pass the points, or features=... to embed them."
        )
    if metric in ("seuclidean", "mahalanobis"):
        needed = "V" if metric == "seuclidean" else "VI"
        if needed not in params:
            raise DvlValueError(
                f"metric={metric!r} needs metric_params={{{needed!r}: ...}}: without it the "
                "scale would be estimated from each chunk of points, and change between them."
            )
    if metric == "minkowski":
        p = params.get("p", 2)
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not p > 0:
            raise DvlValueError(f"metric_params['p'] must be a number > 0; got {p!r}.")
        if p == 2:
            return "euclidean", {}
        if p == 1:
            return "manhattan", {}
        if math.isinf(p):
            return "chebyshev", {}
    return metric, params


def _distances(
    x_test: NDArray[np.float64],
    x_train: NDArray[np.float64],
    sq_train: NDArray[np.float64] | None,
    metric: str | Callable[..., float],
    params: dict[str, Any],
) -> NDArray[np.float64]:
    """Distances (R x n) of a chunk of test points to every training point, or any increasing
    function of them (squared distances for the Euclidean metrics: same order, same ties)."""
    if sq_train is not None:
        dist = x_test @ x_train.T
        dist *= -2.0
        dist += np.einsum("ij,ij->i", x_test, x_test)[:, None]
        dist += sq_train[None, :]
        np.maximum(dist, 0.0, out=dist)  # rounding can leave -1e-16 for duplicates
        return dist
    from sklearn.metrics import pairwise_distances

    return np.asarray(pairwise_distances(x_test, x_train, metric=metric, **params))


def _check_n_neighbors(n_neighbors: Any) -> int:
    if (
        isinstance(n_neighbors, bool)
        or not isinstance(n_neighbors, numbers.Integral)
        or n_neighbors < 1
    ):
        raise DvlValueError(
            f"n_neighbors must be an integer >= 1; got {describe_value(n_neighbors)}."
        )
    return int(n_neighbors)


def _check_chunk_size(chunk_size: Any, n_train: int, n_test: int) -> int:
    if chunk_size is None:
        return int(max(1, min(n_test, _CHUNK_BUDGET // (_BYTES_PER_PAIR * n_train))))
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, numbers.Integral)
        or chunk_size < 1
    ):
        raise DvlValueError(
            f"chunk_size must be an integer >= 1 (test points per chunk) or None; got "
            f"{describe_value(chunk_size)}."
        )
    return int(min(chunk_size, n_test))


# -- public functions ----------------------------------------------------------------------
def knn_shapley_values(
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    n_neighbors: int,
    *,
    metric: str | Callable[..., float] = "euclidean",
    metric_params: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    return_utility: bool = False,
) -> NDArray[np.float64] | tuple[NDArray[np.float64], float]:
    """Exact KNN-Shapley values of the training points, averaged over the test points.

    Parameters
    ----------
    x_train, y_train
        Training points (any shape; each row is flattened) and their class labels (1-D, any
        type comparable with ``==``). numpy arrays or torch tensors.
    x_test, y_test
        Test points, with as many features per row as ``x_train``, and their labels.
    n_neighbors
        K, the number of neighbours that vote. K larger than the training set is allowed
        (every point then always votes).
    metric, metric_params
        As scikit-learn's ``KNeighborsClassifier``: a metric name of its brute-force search or
        a callable, and its keyword arguments (``{"p": 3}`` for ``"minkowski"``). ``"euclidean"``,
        ``"l2"``, ``"sqeuclidean"`` and ``"minkowski"`` with p=2 give the same values (same
        order); they are computed with one matrix product per chunk.
    chunk_size
        Test points processed together. Default: as many as fit in a 64 MiB budget.
    on_progress
        Called as ``on_progress(done, total)`` after each chunk, with ``done`` test points of
        ``total`` processed.
    return_utility
        Also return ``u(N)``, the utility of the whole training set (mean over test points).
        By efficiency, ``values.sum() == u(N) - u(empty)`` with ``u(empty) = 0``.

    Returns
    -------
    values : ndarray of float64, shape (n_train,)
        The Shapley value of each training point, in the order of ``x_train``. With
        ``return_utility``, the pair ``(values, u(N))``.

    Raises
    ------
    DvlValueError, DvlTypeError
        If an argument has the wrong shape, type or value; the message names it.

    Notes
    -----
    Ties in distance are averaged over (see the module docstring). Time: one distance
    matrix and one sort per test point, O(n_train log n_train + n_train * n_features) each.
    Memory: at most about ``64 * chunk_size * n_train`` bytes for one chunk (distances, sort
    order and per-rank terms in float64/int64; about half that without ties), plus the inputs
    as float64; the default chunk keeps this under 64 MiB whatever the size of the test set.

    Examples
    --------
    >>> x = np.array([[0.0], [1.0], [3.0]]); y = np.array([0, 1, 0])
    >>> knn_shapley_values(x, y, np.array([[0.4]]), np.array([0]), n_neighbors=1)
    array([ 0.83333333, -0.16666667,  0.33333333])
    """
    k = _check_n_neighbors(n_neighbors)
    xtr = _features(x_train, "x_train")
    xte = _features(x_test, "x_test")
    if xtr.shape[1] != xte.shape[1]:
        raise DvlValueError(
            f"x_test must have as many features per point as x_train ({xtr.shape[1]}); got "
            f"{xte.shape[1]}. Pass test points of the same shape (or the same features=...)."
        )
    ytr = _labels(y_train, "y_train", xtr.shape[0])
    yte = _labels(y_test, "y_test", xte.shape[0])
    _check_label_types(ytr, yte)
    name, params = _check_metric(metric, metric_params)
    if on_progress is not None and not callable(on_progress):
        raise DvlTypeError(
            f"on_progress must be a callable on_progress(done, total) or None; got "
            f"{describe_value(on_progress)}."
        )
    n, total = xtr.shape[0], xte.shape[0]
    chunk = _check_chunk_size(chunk_size, n, total)
    sq_train = None
    if not callable(name) and name in _EUCLIDEAN:
        for arr, label in ((xtr, "x_train"), (xte, "x_test")):
            if not np.isfinite(arr).all():
                raise DvlValueError(
                    f"{label} has NaN or infinite features; distances to them are undefined. "
                    "Impute or drop those points first."
                )
        sq_train = np.einsum("ij,ij->i", xtr, xtr)

    c, d = _rank_weights(n, k)
    values = np.zeros(n)
    utility = 0.0
    for start in range(0, total, chunk):
        stop = min(start + chunk, total)
        dist = _distances(xte[start:stop], xtr, sq_train, name, params)
        order = np.argsort(dist, axis=1)
        dist = np.take_along_axis(dist, order, axis=1)
        match = (ytr[order] == yte[start:stop, None]).astype(np.float64)
        new_group = np.empty(dist.shape, dtype=bool)
        new_group[:, 0] = True
        np.not_equal(dist[:, 1:], dist[:, :-1], out=new_group[:, 1:])
        del dist
        if new_group.all():
            chunk_utility = match[:, :k].sum(axis=1) / k
            chunk_values = _strict_values(match, c, d)
        else:
            chunk_values, chunk_utility = _tied_values(match, new_group, c, d, k)
        del new_group, match
        values += np.bincount(order.ravel(), weights=chunk_values.ravel(), minlength=n)
        utility += float(chunk_utility.sum())
        del order, chunk_values
        if on_progress is not None:
            on_progress(stop, total)
    values /= total
    if return_utility:
        return values, utility / total
    return values


def knn_shapley_from_ranking(
    ranking: Any, y_train: Any, y_test: Any, n_neighbors: int
) -> NDArray[np.float64]:
    """KNN-Shapley values for a given neighbour order: each row of ``ranking`` is strict.

    Use this to reproduce another implementation's order exactly, ties included, e.g.
    scikit-learn's ``NearestNeighbors(...).fit(x_train).kneighbors(x_test, len(x_train),
    return_distance=False)``, which is what pyDVL's ``KNNShapleyValuation`` walks; the values
    are then exact for the utility of that order (the first-ranked of tied points counts as
    nearer).

    Parameters
    ----------
    ranking : array-like of int, shape (n_test, n_train)
        For each test point, the positions of all training points, nearest first (each row a
        permutation of ``0..n_train-1``).
    y_train, y_test
        Class labels of the training and test points.
    n_neighbors
        K, the number of neighbours that vote.

    Returns
    -------
    ndarray of float64, shape (n_train,)
        The mean over test points of the Shapley values, in training order.
    """
    k = _check_n_neighbors(n_neighbors)
    order = _to_numpy(ranking)
    if order.ndim != 2 or order.shape[0] == 0 or not np.issubdtype(order.dtype, np.integer):
        raise DvlValueError(
            "ranking must be a 2-D integer array, one row per test point holding every "
            f"training position nearest first; got shape {order.shape}, dtype {order.dtype}."
        )
    n = order.shape[1]
    if not (np.sort(order, axis=1) == np.arange(n)).all():
        raise DvlValueError(
            f"ranking: every row must be a permutation of 0..{n - 1} (all training points, "
            "each once); ask for n_neighbors=len(x_train) in kneighbors."
        )
    ytr = _labels(y_train, "y_train", n)
    yte = _labels(y_test, "y_test", order.shape[0])
    _check_label_types(ytr, yte)
    c, d = _rank_weights(n, k)
    match = (ytr[order] == yte[:, None]).astype(np.float64)
    values = np.bincount(
        order.ravel(), weights=_strict_values(match, c, d).ravel(), minlength=n
    )
    return values / order.shape[0]


# -- the valuation method ------------------------------------------------------------------
class KNNShapleyValuation(ValuationMethod):
    """Exact Shapley values of a K-nearest-neighbour classifier (Jia et al. 2019).

    pyDVL's ``KNNShapleyValuation``: the model gives K and the metric; no model is trained on
    subsets. Each value is the mean over test points of the exact Shapley value of the KNN
    utility (fraction of the K nearest training points with the test point's label), with
    ties in distance averaged over (module docstring).

    Parameters
    ----------
    model
        A ``sklearn.neighbors.KNeighborsClassifier``; its ``n_neighbors``, ``metric``, ``p``
        and ``metric_params`` are used. ``weights`` must be ``"uniform"``: the closed form is
        for unweighted votes. ``algorithm``, ``leaf_size`` and ``n_jobs`` change how sklearn
        searches, not the neighbours, and are ignored.
    test_data
        ``Dataset`` or ``(x, y)``: the points whose predictions define the utility.
    progress
        Show a tqdm bar over the test points (each test point counts as one evaluation in the
        progress views).
    clone_before_fit
        As pyDVL: ``fit`` fits a clone of ``model`` on the training data (True) or ``model``
        itself (False); afterwards ``.model`` is that fitted classifier (it is not needed for
        the values, only offered so the classifier that was valued can be used).
    features
        ``features(x) -> 2-D array`` (one row per point) applied to training and test ``x``
        before distances are taken; default: ``x`` flattened. For an embedding from a fitted
        skorch net, read the output of its penultimate layer with a forward hook (skorch's
        ``forward`` runs the module in eval mode, batch by batch, without gradients)::

            def penultimate(x):
                rows = []
                hook = net.module_.flatten.register_forward_hook(
                    lambda module, args, out: rows.append(out.detach().cpu()))
                try:
                    net.forward(x)
                finally:
                    hook.remove()
                return torch.cat(rows).numpy()

            KNNShapleyValuation(KNeighborsClassifier(5), test, features=penultimate)

        (``flatten`` is ``SimpleCNN``'s layer before its last ``Linear``; use your module's.)
        A truncated copy of the module, e.g. ``torch.nn.Sequential(*list(module.children())
        [:-2])``, works as well when the module's forward is just its children in order.
    chunk_size
        Test points processed together (memory: about ``64 * chunk_size * n_train`` bytes);
        default: a 64 MiB budget, and at most a twentieth of the test points, so that the
        progress moves.
    callbacks
        :class:`~dvl_jupyter.valuation.callbacks.ValuationCallback` objects (progress views).

    Notes
    -----
    The values are exact for the given test set, so ``result.variances`` are 0 (no sampling
    error; stderr 0) and ``result.counts`` are 1 (one exact computation), as in pyDVL. The
    spread over test points is not a standard error of these values and is not reported;
    ``result.meta`` has ``n_test``, ``n_neighbors``, ``metric``, ``ties``, ``features`` and
    ``total_utility`` (u of the whole training set; the values sum to it, as
    ``u(empty) = 0``).

    Examples
    --------
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> valuation = KNNShapleyValuation(KNeighborsClassifier(n_neighbors=5), test)
    >>> result = valuation.fit(train).result
    """

    algorithm = "KNN-Shapley"

    def __init__(
        self,
        model: Any,
        test_data: Dataset | tuple[Any, Any],
        progress: bool = False,
        clone_before_fit: bool = True,
        features: Callable[[Any], Any] | None = None,
        chunk_size: int | None = None,
        callbacks: Sequence[ValuationCallback] = (),
    ) -> None:
        super().__init__(progress=progress, callbacks=callbacks)
        self.model = model
        self.test_data = as_dataset(test_data, "test_data")
        self.clone_before_fit = clone_before_fit
        self.features = features
        self.chunk_size = chunk_size
        self._settings()  # bad settings fail here, where they were written (as in pyDVL)

    def validate(self) -> None:
        super().validate()
        self._settings()

    def _settings(self) -> tuple[int, str | Callable[..., float], dict[str, Any]]:
        """(K, metric, metric params) from the model, or a short error naming the argument."""
        from sklearn.neighbors import KNeighborsClassifier

        model = self.model
        if not isinstance(model, KNeighborsClassifier):
            raise DvlTypeError(
                f"model must be a sklearn.neighbors.KNeighborsClassifier for KNN-Shapley; got "
                f"{describe_value(model)}. Use KNeighborsClassifier(n_neighbors=5), or "
                "TMCShapleyValuation for other models."
            )
        if model.weights != "uniform":
            given = model.weights if callable(model.weights) else repr(model.weights)
            raise DvlValueError(
                f"model weights={given} is not supported: exact "
                "KNN-Shapley is for unweighted votes. Use weights='uniform'."
            )
        try:
            k = _check_n_neighbors(model.n_neighbors)
        except DvlValueError as exc:
            raise DvlValueError(f"model {exc}") from None
        params = dict(model.metric_params or {})
        if model.metric == "minkowski":
            params.setdefault("p", model.p)
        try:
            metric, params = _check_metric(model.metric, params)
        except DvlValueError as exc:
            raise DvlValueError(f"model {exc}") from None
        if self.features is not None and not callable(self.features):
            raise DvlTypeError(
                f"features must be a callable features(x) -> 2-D array or None; got "
                f"{describe_value(self.features)}."
            )
        if self.chunk_size is not None:
            _check_chunk_size(self.chunk_size, 1, 1)
        return k, metric, params

    def _embed(self, x: Any, name: str) -> Any:
        if self.features is None:
            return x
        out = _to_numpy(self.features(x))
        n = int(x.shape[0])
        if out.ndim != 2 or out.shape[0] != n:
            raise DvlValueError(
                f"features({name}) must return a 2-D array with one row per point ({n}); got "
                f"shape {out.shape}. Flatten it, e.g. out.reshape(len(out), -1)."
            )
        return out

    def _fit(self, run: Run) -> None:
        """The closed form over the test points, in chunks; no model is trained on subsets."""
        from sklearn.base import clone

        if len(self.test_data) == 0:
            raise DvlValueError("test_data is empty: the utility needs at least one point.")
        k, metric, params = self._settings()
        train = run.train
        run.stage("reading the features")
        x_train, y_train = train.data()
        x_test, y_test = self.test_data.data()
        x_train = self._embed(x_train, "x_train")
        x_test = self._embed(x_test, "x_test")
        n_test = len(self.test_data)
        chunk = self.chunk_size or max(1, min(
            _check_chunk_size(None, len(train), n_test), math.ceil(n_test / 20)))
        run.set_path("closed form (no model is trained on subsets)")
        run.stage("running")

        def progress(done: int, total: int) -> None:
            run.progressed(done / total, evaluations=done)

        values, total_utility = knn_shapley_values(
            x_train, y_train, x_test, y_test, k,
            metric=metric, metric_params=params, chunk_size=chunk,
            on_progress=progress, return_utility=True,
        )
        model = clone(self.model) if self.clone_before_fit else self.model
        flat = _to_numpy(x_train)
        self.model = model.fit(flat.reshape(flat.shape[0], -1), _to_numpy(y_train))

        result = run.result
        result.update(np.arange(len(train)), values)  # one exact computation: count 1, var 0
        result.status = Status.Converged
        result.meta["exact"] = True  # no sampling: nothing to be reliable about
        result.meta.update(
            n_test=n_test,
            n_neighbors=k,
            metric=metric if isinstance(metric, str) else getattr(
                metric, "__name__", repr(metric)),
            ties="averaged over the orders of equidistant points",
            features="x flattened" if self.features is None else getattr(
                self.features, "__name__", repr(self.features)),
            total_utility=float(total_utility),
            empty_utility=0.0,
        )
        run.stats.completion = 1.0
        run.updated()
