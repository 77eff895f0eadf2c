"""ModelUtility with real models: scikit-learn's LogisticRegression and skorch's SimpleCNN."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from dvl_jupyter.valuation import (
    Dataset,
    FailedFitsWarning,
    MinUpdates,
    ModelUtility,
    RelativeTruncation,
    SkorchSupervisedScorer,
    SupervisedScorer,
    TMCShapleyValuation,
)


@pytest.fixture(scope="module")
def blobs():
    x, y = make_classification(
        n_samples=80, n_features=4, n_informative=3, n_redundant=0, random_state=0
    )
    return Dataset.from_arrays(x, y, train_size=0.25, random_state=0, stratify_by_target=True)


def test_logistic_regression_utility(blobs):
    train, test = blobs
    scorer = SupervisedScorer("accuracy", test, default=0.0, range=(0, 1))
    u = ModelUtility(LogisticRegression(), scorer).with_dataset(train)
    full = u(np.arange(len(train)))
    reference = LogisticRegression().fit(*train.data()).score(*test.data())
    assert full == pytest.approx(reference)
    assert u(np.empty(0, dtype=np.int64)) == 0.0
    # one class only: LogisticRegression raises; an expected case, the default, counted
    # apart from failures
    one_class = np.flatnonzero(np.asarray(train.y) == 0)[:3]
    from dvl_jupyter.valuation.evaluators import OneByOneEvaluator

    batch = OneByOneEvaluator(u).evaluate_many([one_class])
    assert batch.values[0] == 0.0 and batch.n_one_class == 1
    assert batch.n_failed == 0 and batch.first_error is None


def test_logistic_regression_valuation_flags_mislabelled_points(blobs):
    train, test = blobs
    x, y = train.data()
    y = y.copy()
    flipped = np.arange(3)
    y[flipped] = 1 - y[flipped]
    noisy = Dataset(x, y)
    scorer = SupervisedScorer("accuracy", test, default=0.0, range=(0, 1))
    v = TMCShapleyValuation(
        ModelUtility(LogisticRegression(), scorer),
        truncation=RelativeTruncation(0.01, 0.3),
        is_done=MinUpdates(40),
        seed=0,
    )
    result = v.fit(noisy).result  # tiny one-class prefixes: no warning, counted
    assert result.meta["one_class_subsets"] > 0 and result.meta["failed_fits"] == 0
    # flipped labels should on average be worth less than the rest
    assert result.values[flipped].mean() < np.delete(result.values, flipped).mean()


def test_one_class_subsets_are_counted_and_noted_not_warned(blobs):
    train, test = blobs
    scorer = SupervisedScorer("accuracy", test, default=0.0, range=(0, 1))
    v = TMCShapleyValuation(
        ModelUtility(LogisticRegression(), scorer), is_done=MinUpdates(3), seed=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FailedFitsWarning at an engine line
        v.fit(train)
    meta = v.result.meta
    assert meta["one_class_subsets"] >= 3  # every walk starts with a one-point subset
    assert meta["failed_fits"] == 0
    (note,) = meta["notes"]
    assert note.startswith(f"{meta['one_class_subsets']} subsets with a single class")


def test_failed_fits_are_reported_once_at_the_callers_line(blobs):
    train, test = blobs

    class FailsOnSmall(LogisticRegression):
        def fit(self, x, y):
            if len(x) < 5:
                raise RuntimeError("too small")
            return super().fit(x, y)

    scorer = SupervisedScorer("accuracy", test, default=0.0, range=(0, 1))
    v = TMCShapleyValuation(ModelUtility(FailsOnSmall(), scorer), is_done=MinUpdates(3),
                            seed=0)
    with pytest.warns(FailedFitsWarning) as record:
        v.fit(train)
    assert len(record) == 1
    message = str(record[0].message)
    assert "evaluations failed and scored the default" in message
    assert "FailsOnSmall.fit raised RuntimeError: too small" in message
    assert "catch_errors=False" in message and ".." not in message
    assert record[0].filename == __file__  # the user's line, not the engine's
    assert v.result.meta["failed_fits"] >= 3


def test_all_fits_failing_stops_with_the_first_error(blobs):
    train, test = blobs

    class Broken(LogisticRegression):
        def fit(self, x, y):
            raise RuntimeError("boom in fit")

    scorer = SupervisedScorer("accuracy", test, default=0.0)
    v = TMCShapleyValuation(ModelUtility(Broken(), scorer), is_done=MinUpdates(3), seed=0)
    with pytest.raises(ValueError, match=r"Fitting the model on the whole training set \(20 "
                       r"points\) failed: Broken.fit raised RuntimeError: boom in fit"):
        v.fit(train)


def test_utility_is_a_function_of_the_subset(blobs):
    train, test = blobs
    scorer = SupervisedScorer("accuracy", test)
    u = ModelUtility(LogisticRegression(), scorer).with_dataset(train)
    s = np.array([0, 3, 5, 7, 9, 11, 2])
    assert u(s) == u(s[::-1])


@pytest.mark.slow
def test_skorch_simplecnn_utility_on_tiny_digits():
    import torch
    from skorch import NeuralNetClassifier

    from dvl_jupyter.datasets import load_digits
    from dvl_jupyter.models import SimpleCNN

    train, test = load_digits(train_size=0.7, random_state=36)
    train, test = train[:40], test[:30]
    net = NeuralNetClassifier(
        SimpleCNN,
        criterion=torch.nn.CrossEntropyLoss,
        lr=0.01,
        max_epochs=2,
        batch_size=16,
        train_split=None,
        optimizer=torch.optim.Adam,
        verbose=False,
    )
    scorer = SkorchSupervisedScorer(net, test_data=test, default=0.0, range=(0, 1))
    u = ModelUtility(net, scorer).with_dataset(train)
    a = u(np.arange(20))  # calling a utility fits one model, whatever the fast path could do
    assert 0.0 <= a <= 1.0
    assert u(np.arange(20)) == a  # seeded by the subset: reproducible
    v = TMCShapleyValuation(
        ModelUtility(net, scorer),
        truncation=RelativeTruncation(0.05, 0.3),
        is_done=MinUpdates(1),
        seed=0,
        batched=False,
        lockstep=2,
    )
    result = v.fit(train[:8]).result
    assert len(result) == 8 and np.all(result.counts >= 1)
    assert np.isfinite(result.values).all()
