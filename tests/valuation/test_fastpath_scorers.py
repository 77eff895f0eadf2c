"""Every scikit-learn scoring name that works one fit at a time works on the fast path, with
the same values.

The fast path answers ``predict_proba`` for K models from one batched forward pass; sklearn's
scorers find that method by its name, so what is put in its place must look like the method.
The loop goes over ``sklearn.metrics.get_scorer_names()``: the names that score a fitted
multiclass skorch net one by one are the reference, and each must give the same numbers on
the fast path (the models themselves agree to float rounding, tests/valuation/test_fastpath.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import get_scorer_names
from torch import nn

skorch = pytest.importorskip("skorch")
from skorch import NeuralNetClassifier  # noqa: E402

from dvl_jupyter.valuation import Dataset, ModelUtility, SkorchSupervisedScorer  # noqa: E402
from dvl_jupyter.valuation.evaluators import OneByOneEvaluator  # noqa: E402
from dvl_jupyter.valuation.fastpath import FastPathEvaluator  # noqa: E402

#: The probability scorers the fast path used to break (issue 15): they must be among the
#: names that work, or the loop below would prove nothing about them.
PROBABILITY_SCORERS = {"neg_log_loss", "roc_auc_ovr", "roc_auc_ovo", "top_k_accuracy",
                       "roc_auc_ovr_weighted", "d2_log_loss_score", "neg_brier_score",
                       "d2_brier_score"}


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):
        return self.body(x)


@pytest.fixture(scope="module")
def setting(digits):
    x, y, x_test, y_test = digits
    net = NeuralNetClassifier(Tiny, criterion=nn.CrossEntropyLoss, lr=0.05, max_epochs=3,
                              batch_size=32, train_split=None, optimizer=torch.optim.Adam,
                              verbose=False)
    rng = np.random.default_rng(3)
    # every class in each subset, so that each model's classes_ are the test set's
    subsets = [np.sort(rng.permutation(len(x))[:k]) for k in (120, 200, 300)]
    assert all(len(np.unique(y[s])) == 10 for s in subsets)
    return net, Dataset(x, y), (x_test, y_test), subsets


def _one_by_one(net, train, test, subsets, name):
    """The values one fit at a time, or None when this scoring does not apply (it raises,
    or gives no finite number, on a fitted multiclass net)."""
    scorer = SkorchSupervisedScorer(net, test_data=test, scoring=name)
    utility = ModelUtility(net, scorer, catch_errors=False).with_dataset(train)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. sklearn's undefined-metric warnings
            batch = OneByOneEvaluator(utility).evaluate_many(subsets)
    except ValueError:
        return None, utility
    if batch.n_failed:
        return None, utility
    return batch.values, utility


def test_every_scoring_that_works_one_by_one_gives_the_same_values_on_the_fast_path(
        setting):
    net, train, test, subsets = setting
    torch.set_num_threads(1)
    works, compared = [], {}
    for name in sorted(get_scorer_names()):
        slow, utility = _one_by_one(net, train, test, subsets, name)
        if slow is None:
            continue
        works.append(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = FastPathEvaluator(utility, required=True).evaluate_many(subsets)
        assert batch.fallback is None and batch.n_failed == 0, (name, batch.first_error)
        compared[name] = (slow, batch.values)
    assert PROBABILITY_SCORERS <= set(works), sorted(PROBABILITY_SCORERS - set(works))
    assert len(works) >= 40, works  # 45 with scikit-learn 1.9
    for name, (slow, fast) in compared.items():
        # the same models up to float32 rounding: probabilities differ by ~1e-7 (the largest
        # difference seen is 1.2e-7), labels not at all
        np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5, err_msg=name)
