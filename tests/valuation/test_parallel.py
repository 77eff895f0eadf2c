"""SubsetEvaluator with loky workers: what users see when loky replaces a worker."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from joblib import Parallel, delayed, parallel_config
from joblib.externals.loky import get_reusable_executor

from dvl_jupyter.valuation.callbacks import RunStats
from dvl_jupyter.valuation.evaluators import FunctionEvaluator
from dvl_jupyter.valuation.parallel import SubsetEvaluator
from dvl_jupyter.valuation.utility import FunctionUtility

from .leaky import leaky_utility

pytest.importorskip("psutil")  # loky checks worker memory only when psutil is installed

RESTART = "A worker stopped while some jobs were given"
SUBSETS = [np.arange(k) for k in range(1, 9)]


@pytest.fixture(autouse=True)
def fresh_workers():
    """Start from new workers (reference memory not yet measured), and leave none behind
    holding the leaked memory."""
    get_reusable_executor(reuse=False).shutdown(wait=True)
    yield
    get_reusable_executor(reuse=False).shutdown(wait=True)


def restart_warnings(record: list[warnings.WarningMessage]) -> int:
    return sum(RESTART in str(w.message) for w in record)


def test_plain_joblib_warns_when_loky_replaces_a_worker():
    """The situation is real: without the engine's filter joblib warns (so the next test can
    fail)."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = Parallel(n_jobs=2, backend="loky")(delayed(leaky_utility)(s) for s in SUBSETS)
    assert out == [float(len(s)) for s in SUBSETS]
    assert restart_warnings(record) >= 1


def test_evaluator_replaces_workers_quietly_and_loses_nothing():
    stats = RunStats()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        before = list(warnings.filters)
        with parallel_config(backend="loky", n_jobs=2), SubsetEvaluator(
            FunctionEvaluator(FunctionUtility(leaky_utility)), stats
        ) as evaluator:
            values = evaluator(SUBSETS)
        assert warnings.filters == before  # the filter lasts for the run only
    np.testing.assert_array_equal(values, [float(len(s)) for s in SUBSETS])
    assert restart_warnings(record) == 0, [str(w.message) for w in record]
    assert stats.evaluations == len(SUBSETS)
