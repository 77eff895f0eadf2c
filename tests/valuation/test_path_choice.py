"""Choosing how models are trained: probed with real rows, and falling back mid-run.

A skorch net can pass the fast path's structural checks and still fail under torch.func:
Python control flow on tensor values (``if float(x.mean()) > 0:``) cannot be vmapped. Under
``batched="auto"`` such a net must still be valued, one fit at a time, with the reason in the
progress view and ``result.meta["path"]``; under ``batched=True`` it is an error naming the
cause.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from joblib import parallel_config
from skorch import NeuralNetClassifier

from dvl_jupyter.datasets import load_digits
from dvl_jupyter.valuation import (
    FastPathUnsupported,
    MinUpdates,
    ModelUtility,
    SkorchSupervisedScorer,
    TMCShapleyValuation,
    ValuationCallback,
)
from dvl_jupyter.valuation.path_choice import choose_evaluator

pytestmark = pytest.mark.slow


class DataDependent(torch.nn.Module):
    """Branches on a tensor's value in Python: fine eagerly, impossible under vmap."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if float(x.mean()) > -1.0:  # always true for pixels in [0, 1]
            x = x * 1.0
        return torch.softmax(self.fc(x), dim=1)


class LateFailing(torch.nn.Module):
    """Branches on a value only for minibatches of more than 6 rows: the fast path's probe
    (2 and 3 rows) passes, and the first real block with larger subsets fails."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if x.shape[0] > 6 and float(x.sum()) < -1.0:  # never true, but needs a value
            x = -x
        return torch.softmax(self.fc(x), dim=1)


@pytest.fixture(scope="module")
def data():
    train, test = load_digits(train_size=0.7, random_state=36)
    return train[:12], test[:60]


def utility(module: type, test) -> ModelUtility:
    net = NeuralNetClassifier(module, lr=0.05, max_epochs=2, batch_size=8, train_split=None,
                              optimizer=torch.optim.SGD, verbose=False)
    return ModelUtility(net, SkorchSupervisedScorer(net, test_data=test, range=(0, 1)))


class Paths(ValuationCallback):
    """Records the path the progress view would show at each stage."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_stage(self, stats) -> None:
        if stats.path and (not self.seen or self.seen[-1] != stats.path):
            self.seen.append(stats.path)


def test_the_probe_with_real_rows_catches_a_data_dependent_net(data):
    train, test = data
    bound = utility(DataDependent, test).with_dataset(train)
    evaluator = choose_evaluator(bound, "auto")
    assert evaluator.batch_size == 1
    assert evaluator.path.startswith("one-by-one fits: a probe training step on the vmap "
                                     "trainer failed (RuntimeError")
    with pytest.raises(FastPathUnsupported, match=r"batched=True, but the fast path cannot "
                                                  r"train this model: a probe training step"):
        choose_evaluator(bound, True)


def test_auto_values_a_data_dependent_net_one_fit_at_a_time_and_says_why(data):
    train, test = data
    paths = Paths()
    v = TMCShapleyValuation(utility(DataDependent, test), is_done=MinUpdates(2), seed=0,
                            callbacks=[paths])
    result = v.fit(train).result
    assert result.meta["ended"] == "done" and np.all(result.counts >= 2)
    assert result.meta["path"].startswith("one-by-one fits: a probe training step")
    assert paths.seen[-1] == result.meta["path"]
    assert v.stats.failed_fits == 0


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_fast_path_that_fails_mid_run_falls_back_and_the_run_completes(data, n_jobs):
    train, test = data
    paths = Paths()
    v = TMCShapleyValuation(utility(LateFailing, test), is_done=MinUpdates(2), seed=0,
                            callbacks=[paths])
    with parallel_config(backend="loky", n_jobs=n_jobs):
        result = v.fit(train).result
    assert result.meta["ended"] == "done" and np.all(result.counts >= 2)
    assert result.meta["path"].startswith(
        "one-by-one fits: the fast path failed (RuntimeError")
    # the progress view first showed the fast path, then the fallback and why
    assert paths.seen[0].startswith("fast path") and paths.seen[-1] == result.meta["path"]
    assert v.stats.failed_fits == 0 and np.isfinite(result.values).all()
    # nothing is computed twice or lost: the whole set's value is the one-by-one fit's
    one = utility(LateFailing, test).with_dataset(train)
    assert result.meta["total_utility"] == pytest.approx(one.fit_score(np.arange(len(train))))


def test_batched_true_makes_a_mid_run_failure_an_error_naming_its_cause(data):
    train, test = data
    v = TMCShapleyValuation(utility(LateFailing, test), is_done=MinUpdates(2), seed=0,
                            batched=True)
    with pytest.raises(FastPathUnsupported, match=r"batched=True, but the fast path failed "
                                                  r"while training: RuntimeError"):
        v.fit(train)
    assert v.result.meta["ended"] == "error"
