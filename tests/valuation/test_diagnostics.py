"""How far to trust a ranking: the figures against hand-computed cases and known noise."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from scipy.stats import chi2

from dvl_jupyter.valuation import (
    Dataset,
    MinUpdates,
    ModelUtility,
    RankReliability,
    SupervisedScorer,
    TMCShapleyValuation,
)
from dvl_jupyter.valuation.diagnostics import (
    LOW_RELIABILITY,
    Reliability,
    advice,
    benjamini_hochberg,
    distinguishable,
    samples_for,
    spearman,
    spearman_brown,
)


# -- the formulas, by hand ----------------------------------------------------------------------
def test_spearman_brown_and_its_prophecy():
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(0.0) == 0.0 and spearman_brown(1.0) == 1.0
    assert spearman_brown(-0.2) == pytest.approx(-0.4 / 0.8)
    assert math.isnan(spearman_brown(math.nan))
    # r = 0.5 on 10 samples: a reliability of 0.8 needs 0.8 * 0.5 / (0.5 * 0.2) = 4x as many
    assert samples_for(0.5, 10, target=0.8) == 40
    assert samples_for(0.9, 10, target=0.8) == 10
    assert samples_for(0.0, 10) is None and samples_for(math.nan, 10) is None


def test_benjamini_hochberg_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.5 against 0.0125, 0.025, 0.0375, 0.05: only 0.01 passes
    np.testing.assert_array_equal(benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5])),
                                  [True, False, False, False])
    # step-up: 0.04 <= 0.05 at rank 4 carries all smaller ones with it
    np.testing.assert_array_equal(benjamini_hochberg(np.array([0.02, 0.04, 0.03, 0.011])),
                                  [True, True, True, True])
    assert benjamini_hochberg(np.array([])).size == 0


def test_distinguishable_counts_intervals_that_exclude_zero_after_correction():
    values = np.array([5.0, -5.0, 0.1, 0.0, 3.0])
    stderr = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    counts = np.array([10, 10, 10, 10, 1])  # the last has no standard error yet
    assert distinguishable(values, stderr, counts) == 2
    # an exact value (no variance) that is not zero is distinguishable, a zero is not
    assert distinguishable(np.array([1.0, 0.0]), np.zeros(2), np.array([5, 5])) == 1


def test_advice_speaks_when_the_ranking_is_noise_and_not_otherwise():
    low = advice(Reliability(0.2, 3, 100, 20))
    assert low is not None and "mostly noise" in low and "0.20" in low
    # 0.2 on 20 permutations: 0.8 needs 20 * 0.8 * 0.8 / (0.2 * 0.2) = 320
    assert "about 320 permutations would reach 0.8" in low
    assert "Data-OOB or KNN-Shapley" in low
    assert "unknown" in advice(Reliability(math.nan, 0, 100, 1))
    assert advice(Reliability(LOW_RELIABILITY, 50, 100, 20)) is None


# -- calibrated on a game whose noise is known ------------------------------------------------
class NoisyAdditiveGame:
    """u(S) = sum of the points' weights + noise of a given size, a fixed function of S (as a
    seeded model fit is): the Shapley value of i is its weight plus the noise's share."""

    def __init__(self, weights: np.ndarray, sigma: float) -> None:
        self.weights, self.sigma = weights, sigma

    def __call__(self, s: np.ndarray) -> float:
        h = hashlib.sha256(np.sort(np.asarray(s, dtype=np.int64)).tobytes()).digest()
        z = np.random.default_rng(int.from_bytes(h[:8], "little")).standard_normal()
        return float(self.weights[s].sum() + self.sigma * z * (len(s) > 0))


def points(n: int) -> Dataset:
    return Dataset(np.zeros((n, 1)), np.zeros(n))


def run(game, n: int, perms: int, seed: int):
    v = TMCShapleyValuation(game, is_done=MinUpdates(perms), seed=seed)
    return v.fit(points(n)).result


@pytest.mark.parametrize("sigma", [0.0, 0.3, 3.0])
def test_reliability_predicts_the_agreement_of_two_independent_runs(sigma):
    """The split-half figure of a run estimates the Spearman correlation between two runs of
    that size with other seeds. Over repetitions, their means agree within three standard
    errors of the difference, for no noise, some noise and noise that swamps the points."""
    n, perms = 40, 24
    weights = np.linspace(-0.5, 0.5, n)
    game = NoisyAdditiveGame(weights, sigma)
    predicted, observed = [], []
    for rep in range(6):
        a, b = run(game, n, perms, 2 * rep), run(game, n, perms, 2 * rep + 1)
        predicted += [a.meta["reliability"], b.meta["reliability"]]
        observed.append(spearman(a.values, b.values))
    predicted, observed = np.array(predicted), np.array(observed)
    diff = predicted.mean() - observed.mean()
    se = math.sqrt(predicted.var(ddof=1) / len(predicted) + observed.var(ddof=1) / len(observed))
    assert abs(diff) <= 3 * se + 0.02, (predicted, observed)
    if sigma == 0.0:
        assert predicted.min() > 0.99  # an additive game is ranked exactly by any permutation
    if sigma == 3.0:
        assert predicted.mean() < LOW_RELIABILITY  # noise 100x the weights' spacing
        assert run(game, n, perms, 99).meta["advice"] is not None


def test_the_result_carries_the_figures_and_the_advice_only_when_needed():
    n = 30
    clean = run(NoisyAdditiveGame(np.linspace(0, 1, n), 0.0), n, 10, 0)
    assert clean.meta["reliability"] > 0.99 and clean.meta["advice"] is None
    assert clean.meta["distinguishable"] >= n - 2  # the two weights nearest zero may not be


# -- the training-noise probe on a model whose noise is known ---------------------------------
class NoisyEstimator:
    """An 'estimator' whose score is the fraction of class-1 points it saw, plus training
    noise N(0, sigma) drawn from numpy's global generator (which each fit seeds)."""

    def __init__(self, sigma: float = 0.1) -> None:
        self.sigma = sigma

    def get_params(self, deep: bool = True) -> dict:
        return {"sigma": self.sigma}

    def set_params(self, **params) -> NoisyEstimator:
        self.sigma = params.get("sigma", self.sigma)
        return self

    def fit(self, x, y) -> NoisyEstimator:
        self.level_ = float(np.mean(y)) + self.sigma * np.random.standard_normal()
        return self

    def score(self, x, y) -> float:
        return self.level_


@pytest.mark.parametrize("coupled", [False, True])
def test_the_probe_measures_a_known_training_noise(coupled):
    sigma, n = 0.1, 40
    train = Dataset(np.zeros((n, 1)), np.arange(n) % 2)
    scorer = SupervisedScorer(None, train, default=0.0)
    utility = ModelUtility(NoisyEstimator(sigma), scorer, coupled_training=coupled)
    result = TMCShapleyValuation(utility, is_done=MinUpdates(1), seed=0).fit(train).result
    noise = result.meta["noise"]
    if coupled:
        # S and S + i share their seed: the training noise cancels in the marginal
        assert noise["marginal_sd"] == pytest.approx(0.0, abs=1e-12)
        assert noise["text"].startswith("none")
    else:
        # u(S + i) - u(S) carries two independent draws: sd sigma * sqrt(2); with k seeds the
        # sample variance is sigma^2 * 2 * chi2(k - 1) / (k - 1)
        k = noise["seeds"]
        low, high = (math.sqrt(2 * sigma**2 * chi2.ppf(q, k - 1) / (k - 1))
                     for q in (1e-4, 1 - 1e-4))
        assert low <= noise["marginal_sd"] <= high
        assert noise["ratio"] > 1 and "x a point's average effect" in noise["text"]


# -- stopping on the reliability --------------------------------------------------------------
def test_rank_reliability_stops_once_the_ranking_is_trustworthy():
    n = 30
    clean = NoisyAdditiveGame(np.linspace(0, 1, n), 0.0)
    v = TMCShapleyValuation(clean, is_done=RankReliability(0.9, min_updates=4) | MinUpdates(500),
                            seed=0, lockstep=2)
    r = v.fit(points(n)).result
    assert r.meta["permutations"] == 4  # trustworthy from the start, once every point has 4
    assert r.meta["reliability"] >= 0.9
    noisy = NoisyAdditiveGame(np.linspace(0, 0.01, n), 5.0)
    v = TMCShapleyValuation(noisy, is_done=RankReliability(0.9) | MinUpdates(12), seed=0)
    r = v.fit(points(n)).result
    assert r.meta["permutations"] == 12 and r.meta["reliability"] < 0.9  # MinUpdates ended it


def test_rank_reliability_checks_its_arguments():
    with pytest.raises(ValueError, match=r"RankReliability\(threshold=...\) must be a number"):
        RankReliability(1.5)
    with pytest.raises(ValueError, match=r"RankReliability\(min_updates=...\) must be an int"):
        RankReliability(0.8, min_updates=1)
