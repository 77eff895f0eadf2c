"""TMC fed by the fast path: the same estimator, reproducible, cached, and parallel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from joblib import parallel_config
from skorch import NeuralNetClassifier

from dvl_jupyter.datasets import load_digits
from dvl_jupyter.models import SimpleCNN
from dvl_jupyter.valuation import (
    FastPathUnsupported,
    MinUpdates,
    ModelUtility,
    RelativeTruncation,
    SkorchSupervisedScorer,
    TMCShapleyValuation,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setting():
    train, test = load_digits(train_size=0.7, random_state=36)
    net = NeuralNetClassifier(SimpleCNN, criterion=torch.nn.CrossEntropyLoss, lr=0.01,
                              max_epochs=3, batch_size=16, train_split=None,
                              optimizer=torch.optim.Adam, verbose=False)
    scorer = SkorchSupervisedScorer(net, test_data=test[:100], default=0.0, range=(0, 1))
    return net, scorer, train[:24]


def valuation(setting, batched, cache=None):
    net, scorer, _ = setting
    return TMCShapleyValuation(ModelUtility(net, scorer, cache=cache),
                               truncation=RelativeTruncation(0.05, 0.3),
                               is_done=MinUpdates(4), seed=2, batched=batched)


def test_fast_path_is_taken_and_reproducible_across_jobs(setting):
    train = setting[2]
    one = valuation(setting, True).fit(train)
    assert one.result.meta["path"].startswith("fast path")
    with parallel_config(backend="loky", n_jobs=2):
        two = valuation(setting, True).fit(train)
    np.testing.assert_array_equal(one.result.values, two.result.values)
    assert np.all(one.result.counts >= 4)


def test_fast_path_values_match_one_by_one_fits(setting):
    train = setting[2]
    fast = valuation(setting, True).fit(train).result
    slow = valuation(setting, False).fit(train).result
    # the same models up to float rounding (a max-pool near-tie may flip): compare estimates
    # within their standard errors rather than bit for bit
    se = np.hypot(fast.stderr, slow.stderr)
    assert np.all(np.abs(fast.values - slow.values) <= 4 * se + 1e-12)


def test_fast_path_rerun_from_cache_is_identical(setting, tmp_path):
    train = setting[2]
    first = valuation(setting, True, tmp_path / "c").fit(train)
    second = valuation(setting, True, tmp_path / "c").fit(train)
    assert second.stats.evaluations == 0
    np.testing.assert_array_equal(first.result.values, second.result.values)


def test_batched_true_with_an_unsupported_net_names_the_layer(setting):
    _, scorer, train = setting

    class WithBatchNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm2d(1)
            self.fc = torch.nn.Linear(64, 10)

        def forward(self, x):
            return torch.softmax(self.fc(self.bn(x).flatten(1)), dim=1)

    net = NeuralNetClassifier(WithBatchNorm, max_epochs=1, train_split=None, verbose=False)
    v = TMCShapleyValuation(ModelUtility(net, scorer), is_done=MinUpdates(1), batched=True)
    with pytest.raises(FastPathUnsupported, match="BatchNorm2d"):
        v.fit(train)
    auto = TMCShapleyValuation(ModelUtility(net, scorer), is_done=MinUpdates(1), seed=0,
                               batched="auto", lockstep=2)
    auto.fit(train[:4])
    assert auto.result.meta["path"].startswith("one-by-one fits:")
    assert "BatchNorm2d" in auto.result.meta["path"]
