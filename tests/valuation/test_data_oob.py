"""Data-OOB against hand-computed bags and direct computations; seeded, cached, parallel."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.cluster import KMeans
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    BaggingClassifier,
    BaggingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression

from dvl_jupyter.valuation import (
    DataOOBValuation,
    Dataset,
    DvlParameterError,
    FailedFitsWarning,
    ModelUtility,
    RunEnd,
    Status,
    SupervisedScorer,
    ValuationCallback,
)
from dvl_jupyter.valuation.callbacks import RunStats
from dvl_jupyter.valuation.evaluators import OneByOneEvaluator, PredictionEvaluator
from dvl_jupyter.valuation.methods.data_oob import (
    NeverOutOfBagWarning,
    neg_l2_distance,
    point_wise_accuracy,
)
from dvl_jupyter.valuation.parallel import SubsetEvaluator


# -- a hand-computed ensemble ----------------------------------------------------------------
class TablePredictor:
    """Predicts ``table[x]`` for the integer features x; records what it was asked."""

    def __init__(self, table):
        self.table = np.asarray(table)
        self.asked = []

    def predict(self, x):
        rows = np.asarray(x)[:, 0].astype(int)
        self.asked.append(rows)
        return self.table[rows]


class FakeEnsemble:
    """A fitted "ensemble" of three table predictors with known bags."""

    def __init__(self, tables, samples, mixin):
        self.estimators_ = [TablePredictor(t) for t in tables]
        self.estimators_samples_ = [np.asarray(s) for s in samples]
        self._estimator_type = mixin

    def fit(self, x, y):  # pragma: no cover - never called: the ensemble is fitted
        raise AssertionError

    def predict(self, x):  # pragma: no cover
        raise AssertionError


class FakeClassifierEnsemble(ClassifierMixin, BaseEstimator, FakeEnsemble):
    def __init__(self, tables=(), samples=()):
        FakeEnsemble.__init__(self, tables, samples, "classifier")


class FakeRegressorEnsemble(RegressorMixin, BaseEstimator, FakeEnsemble):
    def __init__(self, tables=(), samples=()):
        FakeEnsemble.__init__(self, tables, samples, "regressor")


X5 = np.arange(5, dtype=float)[:, None]
Y5 = np.array([0, 1, 1, 0, 1])
#: Bags (with repeats) and OOB sets: {2, 3, 4}, {0, 1}, {0, 2, 3}.
SAMPLES = [[0, 0, 1], [2, 3, 3, 4], [1, 4]]
TABLES = [[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 0, 1, 1]]


def test_values_of_a_hand_computed_bag():
    # OOB predictions: est0 -> {2: 1 right, 3: 0 right, 4: 0 wrong}; est1 -> {0: 0 right,
    # 1: 0 wrong}; est2 -> {0: 1 wrong, 2: 0 wrong, 3: 1 wrong}.
    ensemble = FakeClassifierEnsemble(TABLES, SAMPLES)
    run = DataOOBValuation(ensemble).fit(Dataset(X5, Y5))
    r = run.result
    np.testing.assert_allclose(r.values, [0.5, 0.0, 0.5, 0.5, 0.0], atol=1e-15)
    np.testing.assert_array_equal(r.counts, [2, 1, 2, 2, 1])
    np.testing.assert_allclose(r.variances, [0.5, 0, 0.5, 0.5, 0], atol=1e-15)  # var of {1, 0}
    # each estimator predicted exactly its out-of-bag points, once
    for est, oob in zip(ensemble.estimators_, [[2, 3, 4], [0, 1], [0, 2, 3]], strict=True):
        assert len(est.asked) == 1
        np.testing.assert_array_equal(est.asked[0], oob)
    assert r.algorithm == "Data-OOB" and r.status == Status.Converged
    assert r.meta["n_estimators"] == 3 and r.meta["never_out_of_bag"] == 0
    # majority of the OOB votes, ties to the smallest label: 0 (right), 0 (wrong), 0 (wrong),
    # 0 (right), 0 (wrong)
    assert r.meta["oob_accuracy"] == pytest.approx(0.4)
    assert run.stats.fits == 0 and r.meta["path"].startswith("fitted ensemble")


def test_a_hand_computed_regressor_and_a_custom_score():
    y = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    tables = [[0, 0, 2.5, 3, 3], [1, 1, 0, 0, 0], [0, 0, 2, 1, 1]]
    r = DataOOBValuation(FakeRegressorEnsemble(tables, SAMPLES)).fit(Dataset(X5, y)).result
    # squared errors: p0 {1 (est1), 0 (est2)}, p1 {0}, p2 {0.25, 0}, p3 {0, 4}, p4 {1}
    np.testing.assert_allclose(r.values, [-0.5, 0.0, -0.125, -2.0, -1.0])

    def absolute(y_true, y_pred):
        return -np.abs(y_pred - y_true)

    r = DataOOBValuation(FakeRegressorEnsemble(tables, SAMPLES), absolute).fit(
        Dataset(X5, y)).result
    np.testing.assert_allclose(r.values, [-0.5, 0.0, -0.25, -1.0, -1.0])


def test_pydvls_default_scores():
    np.testing.assert_array_equal(point_wise_accuracy(np.array([1, 2, 3]), np.array([1, 0, 3])),
                                  [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(neg_l2_distance(np.array([1.0, 2.0]), np.array([3.0, 2.0])),
                                  [-4.0, 0.0])


# -- fitted scikit-learn ensembles, against a direct computation ---------------------------------
def direct(ensemble, x, y, score=point_wise_accuracy):
    """The definition, written out: mean OOB score over the estimators that did not see i."""
    n = len(y)
    sums, counts = np.zeros(n), np.zeros(n, dtype=int)
    features = getattr(ensemble, "estimators_features_", [slice(None)] * len(ensemble))
    classes = getattr(ensemble, "classes_", None)
    for est, drawn, feats in zip(ensemble.estimators_, ensemble.estimators_samples_, features,
                                 strict=True):
        oob = np.setdiff1d(np.arange(n), drawn)
        pred = est.predict(x[oob][:, feats])
        if classes is not None:
            pred = classes[pred.astype(int)]
        sums[oob] += score(y[oob], pred)
        counts[oob] += 1
    return np.divide(sums, counts, out=np.zeros(n), where=counts > 0), counts


@pytest.fixture(scope="module")
def blobs():
    x, y = make_classification(n_samples=120, n_features=6, n_informative=4, n_redundant=0,
                               n_classes=3, flip_y=0.1, random_state=4)
    return x, y


@pytest.mark.parametrize("kind", ["bagging", "bagging-features", "forest"])
def test_equal_to_a_direct_computation_on_a_fitted_sklearn_ensemble(blobs, kind):
    x, y = blobs
    labels = np.array(["cat", "dog", "emu"])[y]  # labels that are not class positions
    if kind == "forest":
        model = RandomForestClassifier(n_estimators=25, max_depth=3, random_state=0)
    else:
        model = BaggingClassifier(LogisticRegression(), n_estimators=25, random_state=0,
                                  max_features=0.5 if kind == "bagging-features" else 1.0)
    model.fit(x, labels)
    expected, counts = direct(model, x, labels)
    r = DataOOBValuation(model, test_data=(x, labels)).fit(Dataset(x, labels)).result
    np.testing.assert_allclose(r.values, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.counts, counts)
    assert 0.3 < r.values.mean() < 1.0  # not a degenerate case
    assert r.meta["test_accuracy"] == pytest.approx(model.score(x, labels))


def test_equal_to_a_direct_computation_on_a_fitted_bagging_regressor():
    x, y = make_regression(n_samples=60, n_features=3, noise=5.0, random_state=2)
    model = BaggingRegressor(LinearRegression(), n_estimators=20, max_samples=0.6,
                             random_state=1).fit(x, y)
    expected, counts = direct(model, x, y, neg_l2_distance)
    r = DataOOBValuation(model).fit(Dataset(x, y)).result
    np.testing.assert_allclose(r.values, expected, rtol=1e-12)
    np.testing.assert_array_equal(r.counts, counts)
    assert r.meta["oob_r2"] > 0.9


# -- bagging the model here ------------------------------------------------------------------
FITS = {"n": 0}


class CountingLogisticRegression(LogisticRegression):
    """Counts fits in this process (one-job runs fit in the driver)."""

    def fit(self, x, y):
        FITS["n"] += 1
        return super().fit(x, y)


def bags_of(seed, n, n_estimators, max_samples):
    """The documented draw: bag b from SeedSequence(seed, spawn_key=(b,)), with replacement."""
    size = int(max_samples * n)
    return [np.sort(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(b,)))
                    .integers(0, n, size=size)) for b in range(n_estimators)]


def test_bagging_a_sklearn_model_equals_a_direct_computation(blobs):
    x, y = blobs
    labels = np.array(["cat", "dog", "emu"])[y]
    n = len(y)
    sums, counts = np.zeros(n), np.zeros(n, dtype=int)
    votes = {}
    for bag in bags_of(7, n, 15, 0.5):
        model = LogisticRegression().fit(x[bag], labels[bag])
        oob = np.setdiff1d(np.arange(n), bag)
        pred = model.predict(x[oob])
        sums[oob] += pred == labels[oob]
        counts[oob] += 1
        for i, p in zip(oob, pred, strict=True):
            votes.setdefault(i, []).append(p)
    run = DataOOBValuation(LogisticRegression(), n_estimators=15, max_samples=0.5,
                           seed=7).fit(Dataset(x, labels))
    r = run.result
    np.testing.assert_allclose(r.values, sums / counts, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.counts, counts)
    majority = {i: sorted(set(v), key=lambda c: (-v.count(c), c))[0] for i, v in votes.items()}
    assert r.meta["oob_accuracy"] == pytest.approx(
        np.mean([majority[i] == labels[i] for i in majority]))
    assert r.meta["bag_size"] == n // 2 and r.meta["seed"] == 7
    assert run.stats.fits == 15 and r.meta["path"].startswith("one-by-one fits")
    # variances: the sample variance of each point's 0/1 scores, so stderr is meaningful
    p = sums / counts
    np.testing.assert_allclose(r.variances, np.where(counts > 1, p * (1 - p) * counts
                                                     / np.maximum(counts - 1, 1), 0), atol=1e-12)
    assert -1 <= r.meta["reliability"] <= 1 and r.meta["reliability_samples"] == 15


def test_bagging_a_regressor_with_test_data():
    x, y = make_regression(n_samples=50, n_features=3, noise=3.0, random_state=5)
    n = len(y)
    sums, counts = np.zeros(n), np.zeros(n)
    for bag in bags_of(3, n, 12, 0.8):
        oob = np.setdiff1d(np.arange(n), bag)
        sums[oob] -= (LinearRegression().fit(x[bag], y[bag]).predict(x[oob]) - y[oob]) ** 2
        counts[oob] += 1
    r = DataOOBValuation(LinearRegression(), n_estimators=12, seed=3,
                         test_data=(x[:10], y[:10])).fit(Dataset(x, y)).result
    np.testing.assert_allclose(r.values, sums / counts, rtol=1e-10)
    assert r.meta["oob_r2"] > 0.9 and r.meta["test_r2"] > 0.9


def test_seeded_runs_are_reproducible_and_the_same_with_two_jobs(blobs):
    x, y = blobs
    train = Dataset(x, y)

    def run(seed):
        return DataOOBValuation(LogisticRegression(), n_estimators=12, seed=seed).fit(
            train).result

    one = run(11)
    np.testing.assert_array_equal(one.values, run(11).values)
    assert not np.array_equal(one.values, run(12).values)
    with parallel_config(backend="loky", n_jobs=2):
        two = run(11)
    np.testing.assert_array_equal(one.values, two.values)
    np.testing.assert_array_equal(one.counts, two.counts)


def test_a_rerun_from_the_cache_trains_nothing(blobs, tmp_path):
    x, y = blobs
    train, test = Dataset(x, y), (x[:20], y[:20])

    def run(n_estimators):
        return DataOOBValuation(CountingLogisticRegression(), n_estimators=n_estimators,
                                seed=5, cache=tmp_path / "c", test_data=test).fit(train)

    FITS["n"] = 0
    first = run(10)
    assert FITS["n"] == 10
    FITS["n"] = 0
    second = run(10)
    assert FITS["n"] == 0 and second.stats.evaluations == 0 and second.stats.cache_hits == 10
    np.testing.assert_array_equal(first.result.values, second.result.values)
    assert first.result.meta["test_accuracy"] == second.result.meta["test_accuracy"]
    # bag b does not depend on how many bags there are: 14 bags reuse the first 10
    FITS["n"] = 0
    run(14)
    assert FITS["n"] == 4


def test_a_bag_is_a_multiset_and_its_predictions_are_not_a_utility_value(blobs, tmp_path):
    from dvl_jupyter.valuation import CacheDirectory

    x, y = blobs
    train = Dataset(x, y)
    predictor = PredictionEvaluator(CountingLogisticRegression(), train, [x])
    utility = ModelUtility(CountingLogisticRegression(),
                           SupervisedScorer("accuracy", (x, y))).with_dataset(train)
    assert predictor.fingerprint() != OneByOneEvaluator(utility).fingerprint()
    cache = CacheDirectory(tmp_path / "c").values
    bags = [np.array([0, 1, 2, 3, 50, 51, 52, 53]), np.array([0, 0, 1, 2, 3, 50, 51, 52, 53]),
            np.array([53, 0, 52, 1, 51, 2, 50, 3])]  # the last is the first, reordered
    FITS["n"] = 0
    with SubsetEvaluator(predictor, RunStats(), cache=cache) as dispatch:
        rows = dispatch(bags)
    assert FITS["n"] == 2  # the repeat makes another model; the order does not
    assert rows.shape == (3, len(x))
    np.testing.assert_array_equal(rows[0], rows[2])
    assert len(cache) == 2
    with SubsetEvaluator(predictor, RunStats(), cache=cache) as dispatch:
        np.testing.assert_array_equal(dispatch(bags), rows)
    assert FITS["n"] == 2


def test_never_out_of_bag_points_warn_and_have_count_zero():
    x, y = make_classification(n_samples=30, n_features=3, n_informative=2, n_redundant=0,
                               random_state=0)
    with pytest.warns(NeverOutOfBagWarning, match="in every bag"):
        r = DataOOBValuation(LogisticRegression(), n_estimators=1, max_samples=1.0,
                             seed=0).fit(Dataset(x, y)).result
    never = r.counts == 0
    assert never.sum() == r.meta["never_out_of_bag"] > 0
    np.testing.assert_array_equal(r.values[never], 0)


class FailsWithPointZeroTwice(LogisticRegression):
    def fit(self, x, y):
        if np.sum(np.all(x == self.bad_row, axis=1)) >= 2:
            raise RuntimeError("point 0 twice")
        return super().fit(x, y)


def test_failed_bags_are_left_out_and_counted(blobs):
    x, y = blobs
    FailsWithPointZeroTwice.bad_row = x[0]
    with pytest.warns(FailedFitsWarning, match="point 0 twice"):
        run = DataOOBValuation(FailsWithPointZeroTwice(), n_estimators=20, max_samples=1.0,
                               seed=1).fit(Dataset(x, y))
    skipped = run.result.meta["skipped_bags"]
    bags = bags_of(1, len(y), 20, 1.0)
    assert skipped == run.stats.failed_fits == sum(np.sum(b == 0) >= 2 for b in bags) > 0
    assert run.result.counts.max() <= 20 - skipped
    FailsWithPointZeroTwice.bad_row = np.full(x.shape[1], np.inf)
    x_bad = x.copy()
    x_bad[:] = FailsWithPointZeroTwice.bad_row  # every bag fails
    with pytest.raises(ValueError, match="Fitting the model on a bag failed"):
        DataOOBValuation(FailsWithPointZeroTwice(), n_estimators=3, seed=1).fit(
            Dataset(x_bad, y))


class StopAtFirstUpdate(ValuationCallback):
    def on_start(self, valuation, stats):
        self.method = valuation

    def on_update(self, result, stats):
        self.method.stop()


def test_a_stopped_run_keeps_the_bags_merged(blobs):
    x, y = blobs
    run = DataOOBValuation(LogisticRegression(), n_estimators=40, seed=2,
                           callbacks=[StopAtFirstUpdate()]).fit(Dataset(x, y))
    assert run.result.meta["ended"] == RunEnd.STOPPED.value
    assert run.result.status == Status.Pending
    assert 0 < run.stats.evaluations < 40
    assert run.result.counts.max() <= run.stats.evaluations


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_estimators": 0}, "n_estimators must be an integer >= 1"),
    ({"n_estimators": 2.5}, "n_estimators"),
    ({"max_samples": 0.0}, r"max_samples must be a number in \(0, 1\]"),
    ({"max_samples": 1.5}, "max_samples"),
    ({"seed": -1}, "seed"),
    ({"score": "accuracy"}, "score must be"),
    ({"batched": "maybe"}, "batched"),
])
def test_bad_settings_name_the_argument(kwargs, match):
    with pytest.raises(DvlParameterError, match=match):
        DataOOBValuation(LogisticRegression(), **kwargs)


def test_bad_models_name_the_argument(blobs):
    x, y = blobs
    train = Dataset(x, y)
    with pytest.raises(TypeError, match="model must be a fitted bagging ensemble or an est"):
        DataOOBValuation(42).fit(train)
    with pytest.raises(ValueError, match="model is required"):
        DataOOBValuation().fit(train)
    with pytest.raises(ValueError, match="unfitted ensemble"):
        DataOOBValuation(BaggingClassifier(LogisticRegression())).fit(train)
    fitted = BaggingClassifier(LogisticRegression(), n_estimators=3, random_state=0).fit(x, y)
    with pytest.raises(ValueError, match="n_estimators applies when"):
        DataOOBValuation(fitted, n_estimators=50).fit(train)
    with pytest.raises(ValueError, match="fitted on 120 points but data has 60"):
        DataOOBValuation(fitted).fit(train[:60])
    with pytest.raises(ValueError, match="no default score"):
        DataOOBValuation(KMeans(n_clusters=2, n_init=1), n_estimators=2, seed=0).fit(train)
    with pytest.raises(ValueError, match="one number per point"):
        DataOOBValuation(fitted, score=lambda y_true, y_pred: 1.0).fit(train)
    forest = RandomForestClassifier(n_estimators=3, bootstrap=False, random_state=0).fit(x, y)
    with pytest.raises(ValueError, match="No point is out of bag"), warnings.catch_warnings():
        warnings.simplefilter("ignore", NeverOutOfBagWarning)
        DataOOBValuation(forest).fit(train)


# -- a skorch net: bags on the fast path -----------------------------------------------------
@pytest.fixture(scope="module")
def net_setting():
    import torch
    from skorch import NeuralNetClassifier

    from dvl_jupyter.datasets import load_digits
    from dvl_jupyter.models import SimpleCNN

    train, test = load_digits(train_size=0.7, random_state=36)
    net = NeuralNetClassifier(SimpleCNN, criterion=torch.nn.CrossEntropyLoss, lr=0.01,
                              max_epochs=8, batch_size=8, train_split=None,
                              optimizer=torch.optim.Adam, verbose=False)
    return net, train[:60], test[:50]


def net_valuation(net_setting, **kwargs):
    net, _, test = net_setting
    return DataOOBValuation(net, n_estimators=8, seed=4, test_data=test, **kwargs)


@pytest.mark.slow
def test_fast_path_bags_agree_with_one_by_one_fits(net_setting):
    import torch
    from sklearn.base import clone

    from dvl_jupyter.valuation.fastpath import fit_predict_many
    from dvl_jupyter.valuation.seeds import seeded, subset_seed

    net, train, test = net_setting
    fast = net_valuation(net_setting, batched=True).fit(train)
    slow = net_valuation(net_setting, batched=False).fit(train)
    assert fast.result.meta["path"].startswith("fast path")
    assert slow.result.meta["path"] == "one-by-one fits (batched=False)"
    assert 0.2 < fast.result.values.mean() < 0.9  # the bags learnt something, not everything
    # the same models up to float rounding: the predicted classes agree (an argmax near-tie
    # could flip one; none does here) and so do the values
    np.testing.assert_allclose(fast.result.values, slow.result.values, atol=1e-12)
    np.testing.assert_array_equal(fast.result.counts, slow.result.counts)
    assert fast.result.meta["test_accuracy"] == slow.result.meta["test_accuracy"]
    # and their probabilities, to float rounding, for two bags of the run
    x, y = train.data()
    bags = [np.sort(np.random.default_rng(np.random.SeedSequence(4, spawn_key=(b,)))
                    .integers(0, len(train), size=int(0.8 * len(train)))) for b in range(2)]
    seeds = [subset_seed(b, 0) for b in bags]
    probs = fit_predict_many(net, x, y, bags, seeds, [test.x])[0]
    for k, bag in enumerate(bags):
        one = clone(net)
        with seeded(seeds[k]):
            one.fit(x[bag], y[bag])
        with torch.no_grad():
            np.testing.assert_allclose(probs[k], one.predict_proba(test.x), atol=1e-5)


@pytest.mark.slow
def test_fast_path_bags_are_the_same_with_two_jobs_and_cached(net_setting, tmp_path):
    _, train, _ = net_setting
    one = net_valuation(net_setting, cache=tmp_path / "c").fit(train)
    with parallel_config(backend="loky", n_jobs=2):
        two = net_valuation(net_setting).fit(train)
    np.testing.assert_array_equal(one.result.values, two.result.values)
    again = net_valuation(net_setting, cache=tmp_path / "c").fit(train)
    assert again.stats.fits == 0 and again.stats.cache_hits == 8
    np.testing.assert_array_equal(one.result.values, again.result.values)


@pytest.mark.slow
def test_a_fast_path_that_fails_mid_run_falls_back_to_one_by_one_fits(net_setting,
                                                                       monkeypatch):
    from dvl_jupyter.valuation.fastpath import scoring

    _, train, _ = net_setting

    def broken(*args, **kwargs):
        raise RuntimeError("simulated trainer failure")

    monkeypatch.setattr(scoring, "fit_predict_many", broken)
    run = net_valuation(net_setting).fit(train)
    assert "the fast path failed (RuntimeError: simulated trainer failure)" in \
        run.result.meta["path"]
    monkeypatch.undo()
    slow = net_valuation(net_setting, batched=False).fit(train)
    np.testing.assert_array_equal(run.result.values, slow.result.values)
