"""Bad input: a short error naming the argument and the fix, raised before any work."""

from __future__ import annotations

import numpy as np
import pytest

from dvl_jupyter.valuation import (
    Dataset,
    MinUpdates,
    ModelUtility,
    RelativeTruncation,
    SupervisedScorer,
    TMCShapleyValuation,
)


def test_x_and_y_of_different_lengths():
    with pytest.raises(ValueError, match=r"x and y must have the same length.*10 rows.*9"):
        Dataset(np.zeros((10, 2)), np.zeros(9))


def test_empty_training_set():
    v = TMCShapleyValuation(lambda s: 0.0, is_done=MinUpdates(1))
    with pytest.raises(ValueError, match="training set is empty"):
        v.fit(Dataset(np.zeros((0, 2)), np.zeros(0)))


def test_model_without_fit():
    scorer = SupervisedScorer("accuracy", (np.zeros((3, 1)), np.zeros(3)))
    v = TMCShapleyValuation(ModelUtility(object(), scorer), is_done=MinUpdates(1))
    with pytest.raises(TypeError, match=r"model must be an estimator with a fit\(x, y\)"):
        v.fit(Dataset(np.zeros((3, 1)), np.zeros(3)))


def test_unknown_scoring_string_suggests_names():
    with pytest.raises(ValueError, match=r"scoring='acuracy'.*Did you mean 'accuracy'"):
        SupervisedScorer("acuracy", (np.zeros((3, 1)), np.zeros(3)))


@pytest.mark.parametrize("rtol", [-0.1, -1])
def test_negative_rtol(rtol):
    with pytest.raises(ValueError, match=r"rtol must be >= 0.*rtol=0.05"):
        RelativeTruncation(rtol=rtol, burn_in_fraction=0.3)


@pytest.mark.parametrize("burn_in", [-0.1, 1.5])
def test_burn_in_fraction_outside_unit_interval(burn_in):
    with pytest.raises(ValueError, match=r"burn_in_fraction must be in \[0, 1\]"):
        RelativeTruncation(rtol=0.05, burn_in_fraction=burn_in)


@pytest.mark.parametrize("not_a_criterion", [5, "MinUpdates(100)", lambda r: True])
def test_is_done_that_is_not_a_stopping_criterion(not_a_criterion):
    v = TMCShapleyValuation(lambda s: 0.0, is_done=not_a_criterion)
    with pytest.raises(TypeError, match=r"is_done must be a stopping criterion.*MinUpdates"):
        v.fit(Dataset(np.zeros((3, 1)), np.zeros(3)))


def test_missing_is_done():
    with pytest.raises(ValueError, match=r"is_done is required.*MinUpdates\(100\)"):
        TMCShapleyValuation(lambda s: 0.0).fit(Dataset(np.zeros((3, 1)), np.zeros(3)))


def test_truncation_of_wrong_type():
    v = TMCShapleyValuation(lambda s: 0.0, truncation=0.05, is_done=MinUpdates(1))
    with pytest.raises(TypeError, match="truncation must be NoTruncation"):
        v.fit(Dataset(np.zeros((3, 1)), np.zeros(3)))


def test_utility_that_is_not_callable():
    v = TMCShapleyValuation(42, is_done=MinUpdates(1))
    with pytest.raises(TypeError, match="utility must be a ModelUtility or a callable"):
        v.fit(Dataset(np.zeros((3, 1)), np.zeros(3)))


def test_training_data_of_wrong_type():
    v = TMCShapleyValuation(lambda s: 0.0, is_done=MinUpdates(1))
    with pytest.raises(TypeError, match=r"data must be a Dataset or an \(x, y\) tuple"):
        v.fit([1, 2, 3])
