"""Exact KNN-Shapley against brute-force Shapley values of the KNN utility.

The reference utility here is written independently of the module: distances by direct
differences (exact on the small integer grids used to make ties), the K nearest found by a
full sort, ties resolved by their definition (the tied group at the K-th rank fills the
missing slots in proportion to its matching labels), and Shapley values by enumerating
every subset (``games.exact_shapley``). All comparisons are of exact quantities, so the
tolerance is float64 rounding (1e-12).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dvl_jupyter.valuation.dataset import Dataset
from dvl_jupyter.valuation.exceptions import DvlError, DvlTypeError, DvlValueError
from dvl_jupyter.valuation.methods.knn_shapley import (
    KNNShapleyValuation,
    knn_shapley_from_ranking,
    knn_shapley_values,
)
from dvl_jupyter.valuation.result import Status

from .games import exact_shapley

TOL = 1e-12


# -- an independent reference ----------------------------------------------------------------
def direct_distances(x_test: np.ndarray, x_train: np.ndarray, p: float = 2) -> np.ndarray:
    diff = np.abs(x_test[:, None, :] - x_train[None, :, :])
    return (diff**p).sum(axis=-1)  # an increasing function of the Minkowski distance


def tie_averaged_utility(dist: np.ndarray, match: np.ndarray, k: int):
    """u(S): mean over test points of the expected fraction of the K nearest that match."""

    def u(subset: np.ndarray) -> float:
        if len(subset) == 0:
            return 0.0
        total = 0.0
        for d, m in zip(dist[:, subset], match[:, subset], strict=True):
            if len(subset) <= k:
                total += m.sum() / k
                continue
            delta = np.sort(d)[k - 1]
            closer, tied = d < delta, d == delta
            slots = k - closer.sum()
            total += (m[closer].sum() + slots * m[tied].sum() / tied.sum()) / k
        return total / dist.shape[0]

    return u


def strict_utility(ranking: np.ndarray, match: np.ndarray, k: int):
    """u(S) for a fixed order of the training points per test point (no ties)."""
    rank = np.argsort(ranking, axis=1)  # rank[t, i] = place of point i for test point t

    def u(subset: np.ndarray) -> float:
        if len(subset) == 0:
            return 0.0
        total = 0.0
        for t in range(ranking.shape[0]):
            nearest = subset[np.argsort(rank[t, subset])[:k]]
            total += match[t, nearest].sum() / k
        return total / ranking.shape[0]

    return u


def random_problem(rng, n, n_test, n_classes, ties, n_features=2):
    """Integer grids make many equal distances; Gaussian points make none."""
    if ties:
        x_train = rng.integers(0, 3, (n, n_features)).astype(float)
        x_test = rng.integers(0, 3, (n_test, n_features)).astype(float)
    else:
        x_train = rng.normal(size=(n, n_features))
        x_test = rng.normal(size=(n_test, n_features))
    y_train = rng.integers(0, n_classes, n)
    y_test = rng.integers(0, n_classes, n_test)
    return x_train, y_train, x_test, y_test


CASES = [
    # (seed, n, n_test, k, n_classes, ties)
    (0, 6, 1, 1, 2, True),
    (1, 7, 2, 2, 2, True),
    (2, 8, 3, 3, 3, True),
    (3, 9, 2, 4, 2, True),
    (4, 9, 1, 5, 4, True),
    (5, 7, 3, 7, 3, True),
    (6, 6, 2, 9, 2, True),  # K > n: every point always votes
    (7, 8, 2, 2, 5, True),
    (10, 6, 1, 1, 2, False),
    (11, 8, 2, 3, 3, False),
    (12, 9, 3, 4, 2, False),
    (13, 7, 2, 8, 4, False),
]


def _has_ties(dist: np.ndarray) -> bool:
    return any(len(np.unique(row)) < len(row) for row in dist)


@pytest.mark.parametrize("seed,n,n_test,k,n_classes,ties", CASES)
def test_equals_brute_force_shapley_of_the_knn_utility(seed, n, n_test, k, n_classes, ties):
    rng = np.random.default_rng(seed)
    x_train, y_train, x_test, y_test = random_problem(rng, n, n_test, n_classes, ties)
    dist = direct_distances(x_test, x_train)
    assert _has_ties(dist) == ties  # the case tests what it says
    match = (y_train[None, :] == y_test[:, None]).astype(float)
    u = tie_averaged_utility(dist, match, k)
    expected = exact_shapley(u, n)
    values, total = knn_shapley_values(x_train, y_train, x_test, y_test, k, return_utility=True)
    np.testing.assert_allclose(values, expected, rtol=0, atol=TOL)
    # efficiency: the values share out u(N) - u(empty), and u(empty) = 0
    assert abs(total - u(np.arange(n))) < TOL
    assert abs(values.sum() - total) < TOL


def test_tie_rule_is_the_mean_over_the_orders_of_tied_points():
    """The tie-averaged values are the mean of the strict-order values over every order of
    each group of equidistant points (and the utility the mean of the strict utilities)."""
    rng = np.random.default_rng(3)
    x_train = np.array([[0.0], [1], [1], [1], [2], [2], [3]])  # groups of 1, 3, 2, 1 at x=0
    x_test = np.zeros((1, 1))
    y_train = rng.integers(0, 2, 7)
    y_train[[1, 2, 3]] = [0, 1, 0]
    y_test = np.array([0])
    groups = [[0], [1, 2, 3], [4, 5], [6]]
    rankings = [
        np.concatenate(parts)[None, :]
        for parts in itertools.product(*(itertools.permutations(g) for g in groups))
    ]
    assert len(rankings) == 12
    match = (y_train == y_test[0]).astype(float)[None, :]
    for k in (1, 2, 3, 4, 6):
        strict = np.mean([knn_shapley_from_ranking(r, y_train, y_test, k) for r in rankings], 0)
        np.testing.assert_allclose(
            knn_shapley_values(x_train, y_train, x_test, y_test, k), strict, rtol=0, atol=TOL
        )
        u_avg = tie_averaged_utility(direct_distances(x_test, x_train), match, k)
        for size in range(8):
            for s in itertools.combinations(range(7), size):
                s = np.array(s, dtype=np.int64)
                mean = np.mean([strict_utility(r, match, k)(s) for r in rankings])
                assert abs(u_avg(s) - mean) < TOL


@pytest.mark.parametrize("k", [1, 3, 8])
def test_from_ranking_equals_brute_force_of_the_strict_order_utility(k):
    rng = np.random.default_rng(k)
    n, n_test = 8, 3
    ranking = np.stack([rng.permutation(n) for _ in range(n_test)])
    y_train, y_test = rng.integers(0, 3, n), rng.integers(0, 3, n_test)
    match = (y_train[None, :] == y_test[:, None]).astype(float)
    expected = exact_shapley(strict_utility(ranking, match, k), n)
    got = knn_shapley_from_ranking(ranking, y_train, y_test, k)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)


def test_hand_computed_case():
    """K=1: A, B, C at distances 0.4, 0.6, 2.6, labels match / no match / match.

    u(S) = [the nearest point of S matches]. Over the 6 orders: A adds 1 in five (all but
    C, A, B); B takes 1 away only in C, B, A (it displaces C); C gets the rest of u(N) = 1.
    """
    x = np.array([[0.0], [1.0], [3.0]])
    y = np.array([0, 1, 0])
    got = knn_shapley_values(x, y, np.array([[0.4]]), np.array([0]), n_neighbors=1)
    np.testing.assert_allclose(got, [5 / 6, -1 / 6, 1 / 3], rtol=0, atol=TOL)


# -- properties at sizes enumeration cannot reach --------------------------------------------
def test_efficiency_and_row_order_at_scale():
    rng = np.random.default_rng(0)
    x_train, y_train, x_test, y_test = random_problem(rng, 400, 60, 4, ties=True, n_features=3)
    values, total = knn_shapley_values(x_train, y_train, x_test, y_test, 5, return_utility=True)
    u = tie_averaged_utility(direct_distances(x_test, x_train),
                             (y_train[None] == y_test[:, None]).astype(float), 5)
    assert abs(total - u(np.arange(400))) < TOL
    assert abs(values.sum() - total) < 1e-11
    # permuting the rows permutes the values: no "first row wins" among the many ties
    perm = rng.permutation(400)
    shuffled = knn_shapley_values(x_train[perm], y_train[perm], x_test, y_test, 5)
    np.testing.assert_allclose(shuffled, values[perm], rtol=0, atol=TOL)


def test_duplicated_points_get_equal_values():
    rng = np.random.default_rng(1)
    x_train = rng.normal(size=(50, 6))
    y_train = rng.integers(0, 3, 50)
    x_train[[10, 20, 30]] = x_train[5]  # three copies of point 5 with its label
    y_train[[10, 20, 30]] = y_train[5]
    x_test, y_test = rng.normal(size=(20, 6)), rng.integers(0, 3, 20)
    values = knn_shapley_values(x_train, y_train, x_test, y_test, 3)
    np.testing.assert_allclose(values[[10, 20, 30]], values[5], rtol=0, atol=TOL)
    others = np.delete(values, [5, 10, 20, 30])
    assert np.min(np.abs(others - values[5])) > 1e-9  # the equality is not a coincidence


def test_k_larger_than_the_training_set_is_additive():
    rng = np.random.default_rng(2)
    x_train, y_train, x_test, y_test = random_problem(rng, 5, 4, 2, ties=True)
    values = knn_shapley_values(x_train, y_train, x_test, y_test, 7)
    expected = (y_train[None] == y_test[:, None]).mean(axis=0) / 7
    np.testing.assert_allclose(values, expected, rtol=0, atol=TOL)


def test_chunks_and_progress():
    rng = np.random.default_rng(3)
    x_train, y_train, x_test, y_test = random_problem(rng, 200, 23, 3, ties=True)
    calls: list[tuple[int, int]] = []
    one = knn_shapley_values(
        x_train, y_train, x_test, y_test, 4, chunk_size=5,
        on_progress=lambda done, total: calls.append((done, total)),
    )
    np.testing.assert_allclose(
        one, knn_shapley_values(x_train, y_train, x_test, y_test, 4), rtol=0, atol=TOL
    )
    assert calls == [(5, 23), (10, 23), (15, 23), (20, 23), (23, 23)]


def test_metrics():
    rng = np.random.default_rng(4)
    x_train, y_train, x_test, y_test = random_problem(rng, 9, 2, 2, ties=True)
    base = knn_shapley_values(x_train, y_train, x_test, y_test, 3)
    for metric, params in [("l2", None), ("sqeuclidean", None), ("minkowski", {"p": 2}),
                           ("minkowski", None)]:
        np.testing.assert_allclose(
            knn_shapley_values(x_train, y_train, x_test, y_test, 3, metric=metric,
                               metric_params=params), base, rtol=0, atol=TOL)
    # Manhattan distances on the grid: other ties than Euclidean ones
    match = (y_train[None] == y_test[:, None]).astype(float)
    expected = exact_shapley(tie_averaged_utility(direct_distances(x_test, x_train, p=1),
                                                  match, 3), 9)
    for metric, params in [("manhattan", None), ("minkowski", {"p": 1}),
                           (lambda a, b: float(np.abs(a - b).sum()), None)]:
        got = knn_shapley_values(x_train, y_train, x_test, y_test, 3, metric=metric,
                                 metric_params=params)
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    assert np.abs(expected - base).max() > 1e-3  # the metric made a difference


def test_matches_sklearns_order_when_there_are_no_ties():
    """pyDVL walks sklearn's ``kneighbors`` order: without ties it is the only order."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(5)
    x_train, y_train, x_test, y_test = random_problem(rng, 300, 40, 5, ties=False,
                                                      n_features=10)
    ranking = NearestNeighbors().fit(x_train).kneighbors(x_test, 300, return_distance=False)
    np.testing.assert_allclose(
        knn_shapley_values(x_train, y_train, x_test, y_test, 5),
        knn_shapley_from_ranking(ranking, y_train, y_test, 5), rtol=0, atol=TOL)


# -- the valuation method ----------------------------------------------------------------------
def test_valuation_result_and_model():
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(6)
    x_train, y_train, x_test, y_test = random_problem(rng, 120, 30, 3, ties=True)
    images = x_train.reshape(120, 1, 2, 1)  # any trailing shape: rows are flattened
    train = Dataset(images, y_train, names=[f"p{i}" for i in range(120)])[20:]
    model = KNeighborsClassifier(n_neighbors=4)
    valuation = KNNShapleyValuation(model, (x_test.reshape(30, 1, 2, 1), y_test))
    with pytest.raises(DvlError, match="fit"):
        _ = valuation.result
    result = valuation.fit(train).result
    expected = knn_shapley_values(x_train[20:], y_train[20:], x_test, y_test, 4)
    np.testing.assert_allclose(result.values, expected, rtol=0, atol=TOL)
    assert result.algorithm == "KNN-Shapley"
    assert result.status is Status.Converged
    np.testing.assert_array_equal(result.indices, np.arange(20, 120))
    assert result.names[0] == "p20"
    np.testing.assert_array_equal(result.variances, 0.0)
    np.testing.assert_array_equal(result.counts, 1)
    assert result.meta["n_test"] == 30 and result.meta["n_neighbors"] == 4
    assert abs(result.meta["total_utility"] - expected.sum()) < 1e-12
    # pyDVL's clone_before_fit: the valued classifier is fitted; the original is untouched
    assert valuation.model is not model and valuation.model.n_samples_fit_ == 100
    assert not hasattr(model, "n_samples_fit_")
    KNNShapleyValuation(model, (x_test, y_test), clone_before_fit=False).fit(
        (x_train, y_train))
    assert model.n_samples_fit_ == 120


def test_valuation_reads_the_models_metric_and_features():
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(7)
    x_train, y_train, x_test, y_test = random_problem(rng, 60, 10, 3, ties=True,
                                                      n_features=4)
    model = KNeighborsClassifier(n_neighbors=3, p=1)
    got = KNNShapleyValuation(model, (x_test, y_test)).fit((x_train, y_train)).result
    expected = knn_shapley_values(x_train, y_train, x_test, y_test, 3, metric="manhattan")
    np.testing.assert_allclose(got.values, expected, rtol=0, atol=TOL)

    def first_two(x):
        return np.asarray(x)[:, :2]

    valuation = KNNShapleyValuation(KNeighborsClassifier(3), (x_test, y_test),
                                    features=first_two, progress=True)
    got = valuation.fit((x_train, y_train)).result
    expected = knn_shapley_values(x_train[:, :2], y_train, x_test[:, :2], y_test, 3)
    np.testing.assert_allclose(got.values, expected, rtol=0, atol=TOL)
    assert got.meta["features"] == "first_two"
    assert valuation.model.n_features_in_ == 2


def test_torch_tensors_are_accepted():
    import torch
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(9)
    x_train, y_train, x_test, y_test = random_problem(rng, 40, 8, 3, ties=True)
    expected = knn_shapley_values(x_train, y_train, x_test, y_test, 3)
    train = Dataset(torch.as_tensor(x_train, dtype=torch.float32), torch.as_tensor(y_train))
    test = Dataset(torch.as_tensor(x_test, dtype=torch.float32), torch.as_tensor(y_test))
    got = KNNShapleyValuation(KNeighborsClassifier(3), test).fit(train).result
    np.testing.assert_allclose(got.values, expected, rtol=0, atol=TOL)


@pytest.mark.slow
def test_penultimate_layer_embedding_of_a_skorch_net():
    """The recipe of the class docstring: a forward hook on the layer before the output."""
    import torch
    from sklearn.neighbors import KNeighborsClassifier
    from skorch import NeuralNetClassifier

    from dvl_jupyter.datasets import load_digits
    from dvl_jupyter.models import SimpleCNN

    train, test = load_digits(train_size=0.7, random_state=36)
    train, test = train[:60], test[:20]
    torch.manual_seed(0)
    net = NeuralNetClassifier(SimpleCNN, criterion=torch.nn.CrossEntropyLoss, max_epochs=1,
                              batch_size=16, train_split=None, verbose=False)
    net.fit(*train.data())

    def penultimate(x):
        rows = []
        hook = net.module_.flatten.register_forward_hook(
            lambda module, args, out: rows.append(out.detach().cpu()))
        try:
            net.forward(x)
        finally:
            hook.remove()
        return torch.cat(rows).numpy()

    emb = penultimate(train.x)
    assert emb.shape == (60, 64)
    result = KNNShapleyValuation(KNeighborsClassifier(5), test, features=penultimate).fit(
        train).result
    expected = knn_shapley_values(emb, train.y, penultimate(test.x), test.y, 5)
    np.testing.assert_allclose(result.values, expected, rtol=0, atol=TOL)


# -- bad input ---------------------------------------------------------------------------------
@pytest.fixture
def small():
    rng = np.random.default_rng(8)
    return random_problem(rng, 10, 3, 2, ties=True)


@pytest.mark.parametrize("model", ["LogisticRegression", "KNeighborsRegressor",
                                   "RadiusNeighborsClassifier", "NearestNeighbors"])
def test_model_that_is_not_a_knn_classifier(small, model):
    import sklearn.linear_model
    import sklearn.neighbors

    cls = getattr(sklearn.neighbors, model, None) or getattr(sklearn.linear_model, model)
    with pytest.raises(DvlTypeError, match="^model must be a sklearn.neighbors.KNeighborsClass"):
        KNNShapleyValuation(cls(), small[2:])


@pytest.mark.parametrize("params,match", [
    ({"weights": "distance"}, "^model weights='distance' is not supported"),
    ({"weights": lambda d: d}, "^model weights=<function"),
    ({"metric": "precomputed"}, "^model metric='precomputed'"),
    ({"metric": "minkowski", "p": -1}, r"^model metric_params\['p'\]"),
    ({"n_neighbors": 0}, "^model n_neighbors must be an integer >= 1"),
])
def test_model_settings_the_closed_form_cannot_take(small, params, match):
    from sklearn.neighbors import KNeighborsClassifier

    with pytest.raises(DvlValueError, match=match):
        KNNShapleyValuation(KNeighborsClassifier(**params), small[2:])


def test_bad_valuation_arguments(small):
    from sklearn.neighbors import KNeighborsClassifier

    x_train, y_train, x_test, y_test = small
    model = KNeighborsClassifier(3)
    with pytest.raises(DvlTypeError, match="^test_data must be a Dataset"):
        KNNShapleyValuation(model, x_test)
    with pytest.raises(DvlTypeError, match="^features must be a callable"):
        KNNShapleyValuation(model, (x_test, y_test), features="pca")
    with pytest.raises(DvlValueError, match="^chunk_size must be an integer"):
        KNNShapleyValuation(model, (x_test, y_test), chunk_size=0)
    with pytest.raises(DvlTypeError, match="^data must be a Dataset"):
        KNNShapleyValuation(model, (x_test, y_test)).fit(x_train)
    with pytest.raises(DvlValueError, match="training set is empty"):
        KNNShapleyValuation(model, (x_test, y_test)).fit((x_train[:0], y_train[:0]))
    flat = KNNShapleyValuation(model, (x_test, y_test), features=lambda x: x[:, 0])
    with pytest.raises(DvlValueError, match=r"^features\(x_train\) must return a 2-D array"):
        flat.fit((x_train, y_train))


def test_bad_function_arguments(small):
    x_train, y_train, x_test, y_test = small
    f = knn_shapley_values
    cases = [
        (lambda: f(x_train, y_train, x_test, y_test, 0), DvlValueError, "^n_neighbors"),
        (lambda: f(x_train, y_train, x_test, y_test, 2.0), DvlValueError, "^n_neighbors"),
        (lambda: f(x_train, y_train, x_test[:, :1], y_test, 2), DvlValueError,
         "^x_test must have as many features"),
        (lambda: f(x_train, y_train[:-1], x_test, y_test, 2), DvlValueError,
         r"^y_train must have one label per point \(10\)"),
        (lambda: f(x_train, np.eye(10), x_test, y_test, 2), DvlValueError,
         "^y_train must be a 1-D array.*argmax"),
        (lambda: f(x_train[:0], y_train[:0], x_test, y_test, 2), DvlValueError,
         "^x_train must hold at least one point"),
        (lambda: f(x_train, y_train, x_test[:0], y_test[:0], 2), DvlValueError,
         "^x_test must hold at least one point"),
        (lambda: f(np.array([["a"]] * 10), y_train, x_test, y_test, 2), DvlTypeError,
         "^x_train must be numeric"),
        (lambda: f(np.where(x_train > 1, np.nan, x_train), y_train, x_test, y_test, 2),
         DvlValueError, "^x_train has NaN"),
        (lambda: f(x_train, y_train, x_test, y_test, 2, metric="nope"), DvlValueError,
         "^metric must be a metric name"),
        (lambda: f(x_train, y_train, x_test, y_test, 2, chunk_size=-1), DvlValueError,
         "^chunk_size"),
        (lambda: f(x_train, y_train, x_test, y_test, 2, on_progress=3), DvlTypeError,
         "^on_progress must be a callable"),
        (lambda: f(x_train, y_train, x_test, y_test.astype(str), 2), DvlTypeError,
         r"^y_test labels \(<U\d+\) cannot match y_train labels \(int64\)"),
        (lambda: f(x_train, y_train, x_test, y_test, 2, metric="seuclidean"), DvlValueError,
         "^metric='seuclidean' needs metric_params"),
        (lambda: knn_shapley_from_ranking(np.zeros((3, 10), int), y_train, y_test, 2),
         DvlValueError, "^ranking: every row must be a permutation"),
        (lambda: knn_shapley_from_ranking(np.arange(10), y_train, y_test, 2),
         DvlValueError, "^ranking must be a 2-D integer array"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()
