"""Coupled training: one-by-one skorch fits and the fast path train the same models, and a
coupled ``u(S)`` is one function of ``S``, whichever process or job count computes it.

Coupled fits start from one set of initial weights per utility and visit their points in the
restriction of one run-wide order per epoch (``valuation/coupling.py``). The nets here shuffle
(``iterator_train__shuffle=True``), the case where the order matters, and take several
minibatches per epoch. Each equivalence also checks that *independent* fits of the same
subset train clearly different models, so a comparison that could never fail would show.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from joblib import parallel_config

skorch = pytest.importorskip("skorch")

from dvl_jupyter.valuation import (  # noqa: E402
    Dataset,
    LOOValuation,
    ModelUtility,
    SkorchSupervisedScorer,
)
from dvl_jupyter.valuation.coupling import coupled_order, epoch_permutation  # noqa: E402
from dvl_jupyter.valuation.evaluators import OneByOneEvaluator  # noqa: E402
from dvl_jupyter.valuation.fastpath.evaluator import FastPathEvaluator  # noqa: E402
from dvl_jupyter.valuation.fastpath.train import train_models  # noqa: E402

from .conftest import SHUFFLING_EPOCHS  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

ATOL, RTOL = 2e-5, 1e-4  # as tests/valuation/test_fastpath.py: float32 training, reordered sums
N_TRAIN = 120
EPOCHS = SHUFFLING_EPOCHS


class Capture:
    """A scoring callable that keeps the parameters of every skorch model it scores."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def __call__(self, model, x, y) -> float:
        if hasattr(model, "module_"):  # a one-by-one fit (the fast path scores predictions)
            self.states.append({k: v.detach().clone()
                                for k, v in model.module_.state_dict().items()})
        return mean_true_probability(model, x, y)


def mean_true_probability(model, x, y) -> float:
    p = np.asarray(model.predict_proba(x))
    return float(np.mean(p[np.arange(len(y)), np.asarray(y)]))


@pytest.fixture
def utility_of(digits, shuffling_cnn):
    """``utility_of(coupled, scoring=None)``: a utility of the shuffling CNN on 120 digits
    (a Capture of the fitted models unless another scoring is given)."""
    x, y, x_test, y_test = digits

    def make(coupled: bool, scoring=None) -> ModelUtility:
        scorer = SkorchSupervisedScorer(shuffling_cnn, test_data=(x_test, y_test),
                                        range=(0, 1), scoring=scoring or Capture())
        return ModelUtility(shuffling_cnn, scorer, coupled_training=coupled).with_dataset(
            Dataset(x[:N_TRAIN], y[:N_TRAIN]))

    return make


def nested_subsets(seed: int = 0) -> list[np.ndarray]:
    """S, S + i and a larger set: 2, 3 and 5 minibatches per epoch, last ones partial."""
    order = np.random.default_rng(seed).permutation(N_TRAIN)
    return [np.sort(order[:k]) for k in (29, 30, 70)]


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("trainer", ["kernel", "vmap"])
def test_coupled_one_by_one_fits_and_the_fast_path_train_the_same_models(utility_of, trainer):
    utility = utility_of(coupled=True)
    capture = utility.scorer.scoring
    subsets = nested_subsets()
    for s in subsets:
        utility.attempt(s)  # the one-by-one path, as OneByOneEvaluator takes it
    x, y = utility.training_data.data()
    fast = train_models(utility.model, x, y, subsets, [utility.fit_seed(s) for s in subsets],
                        trainer=trainer, orders=[utility.training_order(s) for s in subsets])
    assert fast.trainer == trainer
    for one, batched in zip(capture.states, fast.states(), strict=True):
        for key in one:
            torch.testing.assert_close(batched[key].cpu(), one[key], atol=ATOL, rtol=RTOL)

    independent = utility_of(coupled=False)
    independent.attempt(subsets[0])
    assert max_diff(independent.scorer.scoring.states[0], capture.states[0]) > 1e-3


def test_coupled_scores_agree_one_by_one_and_on_the_fast_path(utility_of):
    utility = utility_of(coupled=True)
    subsets = nested_subsets(1)
    one = OneByOneEvaluator(utility).evaluate_many(subsets).values
    fast = FastPathEvaluator(utility).evaluate_many(subsets).values
    np.testing.assert_allclose(fast, one, atol=1e-5)
    assert len(set(np.round(one, 4))) == len(subsets)  # three different models, not one


def test_nested_subsets_start_alike_and_visit_their_points_in_one_order(utility_of):
    coupled, independent = utility_of(True), utility_of(False)
    s, with_i, larger = nested_subsets()
    assert coupled.fit_seed(s) == coupled.fit_seed(with_i) == coupled.fit_seed(larger)
    assert independent.fit_seed(s) != independent.fit_seed(with_i)
    assert independent.training_order(s) is None  # the net's own shuffling

    order_s, order_t = coupled.training_order(s), coupled.training_order(with_i)
    assert len(order_s) == EPOCHS * len(s) and len(order_t) == EPOCHS * len(with_i)
    (i,) = np.setdiff1d(with_i, s)
    for e in range(EPOCHS):  # epoch e of S is epoch e of S + i without i ...
        epoch_s = order_s[e * len(s):(e + 1) * len(s)]
        epoch_t = order_t[e * len(with_i):(e + 1) * len(with_i)]
        np.testing.assert_array_equal(epoch_s, epoch_t[epoch_t != i])
    # ... and the epochs differ from one another (the order is reshuffled each epoch)
    assert not np.array_equal(order_s[:len(s)], order_s[len(s):2 * len(s)])


def test_coupled_order_is_the_restriction_of_the_epochs_permutation():
    n, seed = 50, 123
    subset = np.array([3, 7, 8, 20, 41, 49])
    order = coupled_order(subset, n, seed, epochs=2)
    for e in range(2):
        pi = epoch_permutation(n, seed, e)
        np.testing.assert_array_equal(order[e * 6:(e + 1) * 6], pi[np.isin(pi, subset)])


def test_a_coupled_utility_is_one_function_of_the_subset_for_any_job_count(utility_of):
    """The same values sequentially, in two loky worker processes and through the fast path
    (there within float rounding); the cache keys tell coupled and independent fits apart."""
    def loo(batched, backend, n_jobs):
        utility = utility_of(True, scoring=mean_true_probability)
        points = Dataset(*utility.training_data.data(np.arange(40)))
        with parallel_config(backend=backend, n_jobs=n_jobs):
            return LOOValuation(utility, batched=batched).fit(points).result.values

    sequential = loo(False, "sequential", 1)
    np.testing.assert_array_equal(loo(False, "loky", 2), sequential)
    np.testing.assert_allclose(loo(True, "loky", 2), sequential, atol=1e-5)
    assert np.ptp(sequential) > 1e-4  # points that matter differently: values, not zeros
    coupled = utility_of(True, scoring="accuracy").fingerprint()
    assert coupled != utility_of(False, scoring="accuracy").fingerprint()
