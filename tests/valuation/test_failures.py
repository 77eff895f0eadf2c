"""Failures of the user's code: named, with the step, the user's traceback, across workers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.tree import DecisionTreeClassifier

from dvl_jupyter.valuation import (
    Dataset,
    MinUpdates,
    ModelUtility,
    SupervisedScorer,
    TMCShapleyValuation,
)
from dvl_jupyter.valuation.evaluators import FunctionEvaluator, OneByOneEvaluator
from dvl_jupyter.valuation.exceptions import UserCodeError
from dvl_jupyter.valuation.failures import Failure, NotANumber, as_value, user_traceback
from dvl_jupyter.valuation.utility import FunctionUtility


class Unpicklable(Exception):
    """An exception whose constructor needs two arguments: pickle cannot rebuild it."""

    def __init__(self, a, b):
        super().__init__(f"{a} and {b}")
        self.lock = __import__("threading").Lock()


def users_function():
    raise KeyError("the user's key")


def test_the_users_traceback_leaves_the_engine_out():
    utility = FunctionUtility(lambda s: users_function()).with_dataset(
        Dataset(np.zeros((3, 1)), np.zeros(3)))
    with pytest.raises(UserCodeError) as info:
        utility(np.arange(2))
    error = info.value
    assert error.step == "utility" and "utility function '<lambda>'" in error.culprit
    assert str(error) == ("Evaluating the utility on a subset of 2 training points failed: "
                          "the utility function '<lambda>' raised KeyError: \"the user's key\".")
    assert "in users_function" in error.user_traceback
    assert "dvl_jupyter" not in error.user_traceback
    assert isinstance(error.original, KeyError) and error.__cause__ is error.original
    # what IPython shows for it: the user's traceback, then the message
    lines = error._render_traceback_()
    assert lines[0].startswith("Traceback") and lines[-1].startswith("UserCodeError: ")


def test_failures_and_errors_pickle_even_when_the_users_exception_does_not():
    try:
        raise Unpicklable(1, 2)
    except Unpicklable as exc:
        failure = Failure.raised("score", "the scoring function 'f'", exc, 7)
    assert failure.exception is None  # it would not cross a process boundary
    assert "Unpicklable: 1 and 2" in failure.traceback
    again = pickle.loads(pickle.dumps(failure))
    assert again == failure
    error = pickle.loads(pickle.dumps(failure.to_error(30)))
    assert isinstance(error, UserCodeError) and error.step == "score"
    assert str(error).startswith("Scoring the model fitted on a subset of 7 training points")
    try:
        raise ValueError("fine")
    except ValueError as exc:
        kept = pickle.loads(pickle.dumps(Failure.raised("fit", "M.fit", exc, 3).to_error()))
    assert isinstance(kept.original, ValueError) and "in test_" in kept.user_traceback


@pytest.mark.parametrize(("value", "expected"), [
    (1, 1.0), (0.5, 0.5), (np.float32(0.25), 0.25), (np.array(2.0), 2.0), (True, 1.0),
    (float("nan"), "nan"),
])
def test_as_value_takes_real_numbers_and_returns_nan_as_it_is(value, expected):
    got = as_value(value)
    assert (np.isnan(got) if expected == "nan" else got == expected)


@pytest.mark.parametrize("value", [None, "0.5", np.ones(2), [1.0], {"score": 1}, 1 + 2j])
def test_as_value_refuses_what_is_not_a_number(value):
    with pytest.raises(NotANumber, match="not a number"):
        as_value(value)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    return Dataset(x[:30], y[:30]), Dataset(x[30:], y[30:])


class FailsOnSmall(DecisionTreeClassifier):
    def fit(self, x, y):
        if len(x) < 4:
            raise RuntimeError("too few points")
        return super().fit(x, y)


def test_a_failure_in_a_worker_comes_back_with_its_step_and_traceback(data):
    train, test = data
    utility = ModelUtility(FailsOnSmall(), SupervisedScorer("accuracy", test)).with_dataset(
        train)
    y = np.asarray(train.y)
    two_classes = np.array([np.flatnonzero(y == 0)[0], np.flatnonzero(y == 1)[0]])
    subsets = [two_classes, np.arange(10)]  # too few points (and not one class), and fine
    with parallel_config(n_jobs=2):
        from joblib import Parallel, delayed

        (batch,) = Parallel()(delayed(OneByOneEvaluator(utility).evaluate_many)(subsets)
                              for _ in range(1))
    assert batch.n_failed == 1 and batch.n_one_class == 0
    failure = batch.first_failure
    assert failure.step == "fit" and failure.culprit == "FailsOnSmall.fit"
    assert failure.error == "RuntimeError: too few points" and failure.size == 2
    assert "in fit" in failure.traceback and "dvl_jupyter" not in failure.traceback
    assert isinstance(failure.exception, RuntimeError)


def test_catch_errors_false_stops_the_run_in_a_worker_with_the_users_error(data):
    train, test = data
    utility = ModelUtility(FailsOnSmall(), SupervisedScorer("accuracy", test),
                           catch_errors=False)
    v = TMCShapleyValuation(utility, is_done=MinUpdates(2), seed=0)
    with parallel_config(n_jobs=2), pytest.raises(UserCodeError) as info:
        v.fit(train)
    error = info.value
    assert error.step == "fit" and "FailsOnSmall.fit raised RuntimeError" in str(error)
    assert "too few points" in error.user_traceback
    assert v.result.meta["ended"] == "error"


def test_a_nan_score_is_a_counted_failure_never_the_default_in_silence(data):
    train, test = data
    nan_when_small = SupervisedScorer(
        lambda m, x, y: float("nan") if len(m.classes_) < 2 else 0.75, test)
    v = TMCShapleyValuation(ModelUtility(DecisionTreeClassifier(), nan_when_small),
                            is_done=MinUpdates(2), seed=0)
    with pytest.warns(UserWarning, match=r"gave no finite number") as record:
        v.fit(train)
    assert len(record) == 1
    meta = v.result.meta
    assert meta["failed_fits"] == meta["non_finite"] > 0
    assert any("NaN or infinite" in note for note in meta["notes"])
    # the scorer itself never swaps NaN for the default
    one_class = np.flatnonzero(np.asarray(train.y) == 0)[:3]
    fitted = DecisionTreeClassifier().fit(*train.data(one_class))
    assert np.isnan(nan_when_small(fitted))


def test_a_utility_that_returns_nan_is_counted_with_its_default():
    utility = FunctionUtility(lambda s: float("nan") if len(s) == 2 else 1.0, default=-1.0)
    batch = FunctionEvaluator(utility).evaluate_many([np.arange(2), np.arange(3)])
    assert batch.values.tolist() == [-1.0, 1.0]
    assert batch.n_failed == batch.n_non_finite == 1
    assert batch.first_failure.error == "returned nan"


def test_scoring_failures_name_the_scoring_not_the_fit(data):
    train, test = data

    def my_score(model, x, y):
        raise LookupError("no such column")

    v = TMCShapleyValuation(ModelUtility(DecisionTreeClassifier(),
                                         SupervisedScorer(my_score, test)),
                            is_done=MinUpdates(2), seed=0)
    with pytest.raises(UserCodeError, match=r"^Scoring the model fitted on the whole training "
                       r"set \(30 points\) failed: the scoring function 'my_score' raised "
                       r"LookupError: no such column\.$"):
        v.fit(train)


def test_a_test_set_with_other_features_is_refused_before_any_fit(data):
    train, _ = data
    scorer = SupervisedScorer("accuracy", (np.zeros((4, 5)), np.zeros(4)))
    v = TMCShapleyValuation(ModelUtility(DecisionTreeClassifier(), scorer),
                            is_done=MinUpdates(2), seed=0)
    with pytest.raises(ValueError, match="test data have 5 features per point, the training "
                                         "data 3"):
        v.fit(train)
    assert v.stats.evaluations == 0


def test_default_that_is_not_a_finite_number_is_refused(data):
    _, test = data
    for bad in ("abc", float("nan"), float("inf"), None):
        with pytest.raises(ValueError, match="default"):
            SupervisedScorer("accuracy", test, default=bad)
    user_traceback(ValueError("no traceback"))  # an exception never raised formats too
