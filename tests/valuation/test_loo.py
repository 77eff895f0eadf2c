"""Leave-one-out against hand-computed games and direct refits; cached, parallel, stoppable."""

from __future__ import annotations

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from dvl_jupyter.valuation import (
    Dataset,
    LOOValuation,
    ModelUtility,
    RunEnd,
    Status,
    SupervisedScorer,
    ValuationCallback,
)


def points(n: int) -> Dataset:
    return Dataset(np.arange(n, dtype=float)[:, None], np.zeros(n))


class AdditivePlusPair:
    """u(S) = sum of w over S, plus a bonus when both 0 and 1 are in S; counts its calls."""

    def __init__(self, weights, bonus):
        self.w, self.bonus, self.calls = np.asarray(weights, dtype=float), bonus, 0

    def __call__(self, s):
        self.calls += 1
        return float(self.w[s].sum() + self.bonus * (0 in s and 1 in s))


def test_loo_of_a_hand_computed_game():
    # Leaving i out loses w_i, and the pair bonus when i is 0 or 1.
    game = AdditivePlusPair([0.5, 0.25, 1.0, -0.75, 0.0], bonus=2.0)
    run = LOOValuation(game).fit(points(5))
    result = run.result
    np.testing.assert_allclose(result.values, [2.5, 2.25, 1.0, -0.75, 0.0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(result.counts, 1)
    np.testing.assert_array_equal(result.variances, 0)
    assert result.algorithm == "Leave-One-Out"
    assert result.status == Status.Converged
    assert result.meta["ended"] == RunEnd.DONE.value
    assert result.meta["total_utility"] == pytest.approx(3.0)
    # n + 2 evaluations: empty, full, and one per point
    assert game.calls == 7 and run.stats.evaluations == 7


def test_loo_of_a_saturating_game():
    w = np.array([1.0, 2.0, 3.0, 5.0, 8.0])
    run = LOOValuation(lambda s: float(np.sqrt(w[s].sum()))).fit(points(5))
    expected = np.sqrt(w.sum()) - np.sqrt(w.sum() - w)
    np.testing.assert_allclose(run.result.values, expected, rtol=0, atol=1e-12)


def test_single_point_loo_is_its_value_alone():
    run = LOOValuation(lambda s: 0.25 + float(len(s))).fit(points(1))
    np.testing.assert_allclose(run.result.values, [1.0])


@pytest.fixture(scope="module")
def data():
    x, y = make_classification(n_samples=90, n_features=4, n_informative=3, n_redundant=0,
                               flip_y=0.1, random_state=3)
    return Dataset.from_arrays(x, y, train_size=0.4, random_state=0, stratify_by_target=True)


def utility(data, cache=None):
    _, test = data
    return ModelUtility(LogisticRegression(), SupervisedScorer("accuracy", test, default=0.0,
                                                               range=(0, 1)), cache=cache)


def direct_loo(data):
    """LOO by refitting sklearn directly (LogisticRegression's lbfgs is deterministic)."""
    train, test = data
    x, y = train.data()
    xt, yt = test.data()

    def acc(rows):
        return LogisticRegression().fit(x[rows], y[rows]).score(xt, yt)

    n = len(train)
    full = acc(np.arange(n))
    return np.array([full - acc(np.delete(np.arange(n), i)) for i in range(n)])


def test_loo_with_a_model_equals_direct_refits_with_one_or_two_jobs(data):
    train, _ = data
    expected = direct_loo(data)
    assert np.count_nonzero(expected) >= 2  # some points do matter to the model
    one = LOOValuation(utility(data)).fit(train)
    np.testing.assert_allclose(one.result.values, expected, rtol=0, atol=1e-12)
    with parallel_config(backend="loky", n_jobs=2):
        two = LOOValuation(utility(data)).fit(train)
    np.testing.assert_array_equal(one.result.values, two.result.values)
    assert one.stats.fits == len(train) + 1  # the empty set needs no fit


def test_rerun_from_the_cache_fits_nothing(data, tmp_path):
    train, _ = data
    first = LOOValuation(utility(data, tmp_path / "c")).fit(train)
    second = LOOValuation(utility(data, tmp_path / "c")).fit(train)
    assert second.stats.evaluations == 0 and second.stats.fits == 0
    assert second.stats.cache_hits == len(train) + 2
    np.testing.assert_array_equal(first.result.values, second.result.values)


class StopAtFirstUpdate(ValuationCallback):
    def __init__(self):
        self.method = None

    def on_start(self, valuation, stats):
        self.method = valuation

    def on_update(self, result, stats):
        self.method.stop()


def test_a_stopped_run_keeps_the_points_done():
    n = 40
    game = AdditivePlusPair(np.linspace(-1, 1, n), bonus=0.0)
    run = LOOValuation(game, callbacks=[StopAtFirstUpdate()]).fit(points(n))
    result = run.result
    assert result.meta["ended"] == RunEnd.STOPPED.value
    done = result.counts == 1
    assert 0 < done.sum() < n
    np.testing.assert_allclose(result.values[done], game.w[done], atol=1e-12)
    np.testing.assert_array_equal(result.values[~done], 0)


def test_loo_bad_input_names_the_argument():
    with pytest.raises(TypeError, match="utility"):
        LOOValuation(42).fit(points(3))
    with pytest.raises(ValueError, match="batched"):
        LOOValuation(lambda s: 0.0, batched="sometimes").fit(points(3))


@pytest.mark.slow
def test_loo_of_a_skorch_net_goes_through_the_fast_path():
    import torch
    from skorch import NeuralNetClassifier

    from dvl_jupyter.datasets import load_digits
    from dvl_jupyter.models import SimpleCNN
    from dvl_jupyter.valuation import SkorchSupervisedScorer

    train, test = load_digits(train_size=0.7, random_state=36)
    net = NeuralNetClassifier(SimpleCNN, criterion=torch.nn.CrossEntropyLoss, lr=0.01,
                              max_epochs=12, batch_size=8, train_split=None,
                              optimizer=torch.optim.Adam, verbose=False)
    scorer = SkorchSupervisedScorer(net, test_data=test[:100], default=0.0, range=(0, 1))
    fast = LOOValuation(ModelUtility(net, scorer), batched=True).fit(train[:30])
    slow = LOOValuation(ModelUtility(net, scorer), batched=False).fit(train[:30])
    assert fast.result.meta["path"].startswith("fast path")
    assert fast.stats.fits == slow.stats.fits == 31
    assert fast.result.meta["total_utility"] > 0.3  # the net learns something
    # the same models up to float rounding: a test prediction near a tie may flip (0.01)
    assert np.mean(np.isclose(fast.result.values, slow.result.values, atol=1e-9)) >= 0.9
