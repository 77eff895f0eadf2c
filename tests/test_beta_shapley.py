"""Beta-Shapley against the Beta semivalue by enumeration (tolerances from the reported
standard errors, themselves checked against the spread over seeds); Beta(1, 1) is Shapley;
properties; the run; bad arguments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from dvl_jupyter.valuation import (
    BetaShapleyValuation,
    Dataset,
    DvlParameterError,
    MinUpdates,
    ModelUtility,
    RunEnd,
    Status,
    SupervisedScorer,
)
from dvl_jupyter.valuation.methods.semivalue import beta_coefficient, shapley_coefficient
from tests.semivalue_games import exact_semivalue, points, z_scores
from tests.valuation.games import PairsGame, SaturatingGame, exact_shapley

GAME = SaturatingGame([1.0, 2.0, 3.0, 5.0, 8.0])


def beta(u, n, alpha, b, updates=1500, seed=7, block_size=500, **kw):
    method = BetaShapleyValuation(u, MinUpdates(updates), alpha=alpha, beta=b, seed=seed,
                                  block_size=block_size, **kw)
    return method.fit(points(n)).result


def exact_beta(u, n, alpha, b):
    return exact_semivalue(u, n, lambda n, k: beta_coefficient(alpha, b, n, k))


@pytest.mark.parametrize(("alpha", "b"), [(2.0, 3.0), (1.0, 1.0), (4.0, 0.5)])
def test_the_coefficients_are_weights_of_a_probability_over_subsets(alpha, b):
    for n in (1, 2, 5, 9):
        total = sum(math.comb(n - 1, k) * beta_coefficient(alpha, b, n, k) for k in range(n))
        assert total == pytest.approx(1.0, abs=1e-12)


def test_beta_1_1_coefficients_are_shapleys():
    for n in (1, 3, 7):
        for k in range(n):
            assert beta_coefficient(1, 1, n, k) == pytest.approx(shapley_coefficient(n, k))


@pytest.mark.parametrize(("alpha", "b"), [(4, 1), (16, 1)])
def test_the_exact_beta_semivalue_within_four_standard_errors(alpha, b):
    exact = exact_beta(GAME, 5, alpha, b)
    result = beta(GAME, 5, alpha, b)
    assert np.all(np.abs(z_scores(result.values, exact, result.stderr)) <= 4)
    # the tolerance can fail: the Shapley values are many errors away
    assert np.max(np.abs(z_scores(result.values, exact_shapley(GAME, 5), result.stderr))) > 4
    assert np.all((result.stderr > 1e-3) & (result.stderr < 0.05))
    assert result.algorithm == "Beta-Shapley" and result.status == Status.Converged
    assert result.meta["alpha"] == alpha and result.meta["beta"] == b
    # MinUpdates(m): exactly m rounds of the n points
    np.testing.assert_array_equal(result.counts, 1500)
    assert result.meta["samples"] == 1500 * 5 and result.meta["ended"] == RunEnd.DONE.value


def test_beta_1_1_is_the_shapley_value_and_efficient():
    exact = exact_shapley(GAME, 5)  # an independent enumeration, with Shapley's own weights
    r = beta(GAME, 5, 1, 1)
    assert np.all(np.abs(z_scores(r.values, exact, r.stderr)) <= 4)
    # efficiency: the points' estimates are independent, so the sum's error is the root sum
    total = GAME(np.arange(5)) - GAME(np.arange(0))
    assert abs(r.values.sum() - total) <= 4 * math.sqrt(float(np.sum(r.stderr ** 2)))
    assert abs(exact.sum() - total) < 1e-12


def test_the_standard_errors_match_the_spread_over_seeds():
    # 20 seeds x 5 independent points: mean z^2 about 1 (sd about 0.12) when the stderr is
    # right; off by sqrt(2) either way moves it to 2 or 0.5.
    exact = exact_beta(GAME, 5, 4, 1)
    z = np.concatenate([z_scores(r.values, exact, r.stderr) for r in
                        (beta(GAME, 5, 4, 1, updates=60, seed=s, block_size=300)
                         for s in range(20))])
    assert 0.65 < float(np.mean(z ** 2)) < 1.5


def test_symmetric_players_agree_and_a_null_player_is_exactly_worth_nothing():
    game = PairsGame(2, [0.1, 0.1, 0.6, 0.6])  # 0~1, 2~3 symmetric; 4 is a null player
    exact = exact_beta(game, game.n, 4, 1)
    assert exact[0] == pytest.approx(exact[1]) and exact[4] == 0
    r = beta(game, game.n, 4, 1, updates=800)
    v, se = r.values, r.stderr
    assert np.all(np.abs(v[:4] - exact[:4]) <= 4 * se[:4])
    assert abs(v[0] - v[1]) <= 4 * math.hypot(se[0], se[1])  # independent estimates
    assert abs(v[2] - v[3]) <= 4 * math.hypot(se[2], se[3])
    assert abs(v[0] - v[2]) > 4 * math.hypot(se[0], se[2])  # players that differ differ
    assert v[4] == 0 and se[4] == 0 and r.counts[4] == 800  # every marginal of it is 0


def test_seeded_reproducible_with_a_reliability_of_even_and_odd_rounds():
    a = beta(GAME, 5, 4, 1, updates=6, seed=1, block_size=7)
    b = beta(GAME, 5, 4, 1, updates=6, seed=1, block_size=7)
    c = beta(GAME, 5, 4, 1, updates=6, seed=2, block_size=7)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert a.meta["samples"] == 30 and -1 <= a.meta["reliability"] <= 1
    # the block size does not change what is drawn, only when the criterion is checked
    np.testing.assert_array_equal(beta(GAME, 5, 4, 1, updates=6, seed=1, block_size=30).values,
                                  a.values)


@pytest.mark.parametrize(("kw", "message"), [
    ({"alpha": 0}, r"^alpha must be a number > 0; got int 0\.$"),
    ({"alpha": -1.5}, r"^alpha must be a number > 0; got float -1\.5\.$"),
    ({"beta": 0.0}, r"^beta must be a number > 0; got float 0\.0\.$"),
    ({"alpha": "4"}, r"^alpha must be a number > 0; got str '4'\.$"),
    ({"alpha": float("nan")}, r"^alpha must be a number > 0"),
])
def test_bad_alpha_or_beta_is_a_short_error_naming_it(kw, message):
    with pytest.raises(DvlParameterError, match=message):
        BetaShapleyValuation(GAME, MinUpdates(1), **kw).fit(points(5))


def test_a_logistic_regression_end_to_end_against_enumeration():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(26, 2))
    y = (x[:, 0] + 0.3 * rng.normal(size=26) > 0).astype(int)
    y[:6] = [0, 1, 0, 1, 1, 0]
    train, test = Dataset(x[:6], y[:6]), Dataset(x[6:], y[6:])
    utility = ModelUtility(LogisticRegression(), SupervisedScorer("accuracy", test, default=0.0))
    exact = exact_beta(utility.with_dataset(train), 6, 4, 1)  # 64 fits
    method = BetaShapleyValuation(utility, MinUpdates(40), alpha=4, beta=1, seed=5,
                                  block_size=120)
    r = method.fit(train).result
    assert np.all(np.abs(r.values - exact) <= 4 * r.stderr + 1e-12)
    assert np.all(r.counts == 40) and r.meta["evaluations"] > 0
