"""TMC with the disk cache: re-runs train nothing, interrupted runs resume exactly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.datasets import make_classification
from sklearn.neighbors import KNeighborsClassifier

from dvl_jupyter.valuation import (
    Dataset,
    MinUpdates,
    ModelUtility,
    RelativeTruncation,
    SupervisedScorer,
    TMCShapleyValuation,
)

FITS = {"n": 0, "interrupt_at": None}


class CountingKNN(KNeighborsClassifier):
    """Counts fits in this process (the one-job runs below fit in the driver).

    Set ``FITS["interrupt_at"]`` to raise KeyboardInterrupt at that fit, as Ctrl-C would.
    (Patching the class instead would change its fingerprint, and so the cache keys; so would
    reading the counter as a global, which the fingerprint covers: it is a class attribute.)
    """

    counter = FITS

    def fit(self, x, y):
        self.counter["n"] += 1
        if self.counter["n"] == self.counter["interrupt_at"]:
            raise KeyboardInterrupt
        return super().fit(x, y)


@pytest.fixture(scope="module")
def data():
    x, y = make_classification(n_samples=60, n_features=4, n_informative=3, n_redundant=0,
                               random_state=1)
    return Dataset.from_arrays(x, y, train_size=0.2, random_state=0, stratify_by_target=True)


def valuation(data, cache, stopping=None, seed=5):
    train, test = data
    scorer = SupervisedScorer("accuracy", test, default=0.0, range=(0, 1))
    utility = ModelUtility(CountingKNN(n_neighbors=1), scorer, cache=cache)
    return TMCShapleyValuation(utility, truncation=RelativeTruncation(0.02, 0.3),
                               is_done=stopping or MinUpdates(12), seed=seed, lockstep=4)


def test_rerun_trains_no_model_and_gives_the_identical_result(data, tmp_path):
    train, _ = data
    first = valuation(data, tmp_path / "c").fit(train)
    FITS["n"] = 0
    second = valuation(data, tmp_path / "c").fit(train)
    assert FITS["n"] == 0
    assert second.stats.evaluations == 0
    assert second.stats.cache_hits == first.stats.evaluations + first.stats.cache_hits
    np.testing.assert_array_equal(first.result.values, second.result.values)
    np.testing.assert_array_equal(first.result.variances, second.result.variances)


def test_without_cache_the_same_run_trains_again(data):
    train, _ = data
    FITS["n"] = 0
    valuation(data, None).fit(train)
    assert FITS["n"] > 0


def test_interrupted_then_resumed_equals_uninterrupted(data, tmp_path):
    train, _ = data
    reference = valuation(data, None).fit(train).result

    interrupted = valuation(data, tmp_path / "c")
    FITS.update(n=0, interrupt_at=40)
    try:
        with pytest.raises(KeyboardInterrupt):
            interrupted.fit(train)
    finally:
        FITS["interrupt_at"] = None
    done_before = interrupted.stats.evaluations
    assert interrupted.result.meta["ended"] == "interrupted"

    resumed = valuation(data, tmp_path / "c").fit(train)
    assert resumed.stats.cache_hits >= done_before  # every finished fit was stored
    # no subset computed twice across the two runs: together they did what one cached run does
    once = valuation(data, tmp_path / "fresh").fit(train)
    assert done_before + resumed.stats.evaluations == once.stats.evaluations
    np.testing.assert_array_equal(resumed.result.values, reference.values)
    np.testing.assert_array_equal(resumed.result.counts, reference.counts)


def test_a_longer_criterion_reuses_the_shorter_run(data, tmp_path):
    train, _ = data
    short = valuation(data, tmp_path / "c", MinUpdates(4)).fit(train)
    longer = valuation(data, tmp_path / "c", MinUpdates(12)).fit(train)
    assert longer.stats.cache_hits >= short.stats.evaluations


def test_cache_works_with_two_jobs(data, tmp_path):
    train, _ = data
    with parallel_config(backend="loky", n_jobs=2):
        first = valuation(data, tmp_path / "c").fit(train)
        second = valuation(data, tmp_path / "c").fit(train)
    assert second.stats.evaluations == 0
    np.testing.assert_array_equal(first.result.values, second.result.values)


def test_unusable_cache_warns_and_the_run_goes_on(data, tmp_path):
    from dvl_jupyter.valuation.cache import CacheWarning

    train, _ = data
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        v = valuation(data, blocker / "cache").fit(train)
    assert sum(issubclass(w.category, CacheWarning) for w in record) == 1
    assert v.result.counts.min() >= 12
