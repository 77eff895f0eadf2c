"""MSR-Banzhaf against Banzhaf values by enumeration: tolerances from the reported standard
errors, which are themselves checked against the spread over seeds; properties; the run."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from dvl_jupyter.valuation import (
    AbsoluteStandardError,
    Dataset,
    MaxChecks,
    MinUpdates,
    ModelUtility,
    MSRBanzhafValuation,
    RunEnd,
    Status,
    SupervisedScorer,
    ValuationCallback,
)
from tests.semivalue_games import exact_banzhaf, points, z_scores
from tests.valuation.games import PairsGame, SaturatingGame, exact_shapley


def msr(u, n, updates=1500, seed=7, block_size=512, **kw):
    method = MSRBanzhafValuation(u, MinUpdates(updates), seed=seed, block_size=block_size, **kw)
    return method.fit(points(n)).result


def test_the_exact_banzhaf_values_of_a_saturating_game_within_four_standard_errors():
    game = SaturatingGame([1.0, 2.0, 3.0, 5.0, 8.0])
    exact = exact_banzhaf(game, 5)
    result = msr(game, 5)
    assert np.all(np.abs(z_scores(result.values, exact, result.stderr)) <= 4)
    # the tolerance can fail: the Shapley values of the same game are many errors away
    assert np.max(np.abs(z_scores(result.values, exact_shapley(game, 5), result.stderr))) > 4
    # a difference of two means of about 1,500 samples each of a utility spread ~0.7
    assert np.all((result.stderr > 0.005) & (result.stderr < 0.05))
    assert result.algorithm == "MSR-Banzhaf" and result.status == Status.Converged
    assert np.all(result.counts >= 1500) and result.meta["ended"] == RunEnd.DONE.value


def test_the_standard_errors_match_the_spread_over_seeds():
    # 30 seeds x 5 points: the mean squared z-score is about 1 when the stderr is right (the
    # points of one run are correlated, so it varies more than chi^2/150 would); a stderr
    # off by sqrt(2) either way (e.g. missing the "without" mean's variance) moves it to
    # about 2 or 0.5.
    game = SaturatingGame([1.0, 2.0, 3.0, 5.0, 8.0])
    exact = exact_banzhaf(game, 5)
    z = np.concatenate([z_scores(r.values, exact, r.stderr) for r in
                        (msr(game, 5, updates=60, seed=s, block_size=64) for s in range(30))])
    assert 0.6 < float(np.mean(z ** 2)) < 1.9


def test_symmetric_players_agree_and_a_null_player_is_worth_nothing():
    game = PairsGame(2, [0.1, 0.1, 0.6, 0.6])  # 0~1, 2~3 symmetric; 4 is a null player
    exact = exact_banzhaf(game, game.n)
    np.testing.assert_allclose(exact, [0.6, 0.6, 1.1, 1.1, 0.0], atol=1e-12)
    r = msr(game, game.n)
    v, se = r.values, r.stderr
    assert np.all(np.abs(z_scores(v, exact, se)) <= 4)
    assert abs(v[0] - v[1]) <= 4 * (se[0] + se[1]) and abs(v[2] - v[3]) <= 4 * (se[2] + se[3])
    assert abs(v[0] - v[2]) > 4 * (se[0] + se[2])  # players that differ are told apart
    assert abs(v[4]) <= 4 * se[4] and se[4] > 0


def test_seeded_reproducible_with_a_reliability_and_one_check_per_round():
    game = SaturatingGame([1.0, 2.0, 3.0, 5.0, 8.0])
    a = MSRBanzhafValuation(game, MaxChecks(3), seed=1, block_size=40).fit(points(5)).result
    b = MSRBanzhafValuation(game, MaxChecks(3), seed=1, block_size=40).fit(points(5)).result
    c = MSRBanzhafValuation(game, MaxChecks(3), seed=2, block_size=40).fit(points(5)).result
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert a.meta["samples"] == 120 and a.meta["seed"] == 1 and a.meta["block_size"] == 40
    assert -1 <= a.meta["reliability"] <= 1 and a.meta["reliability_samples"] == 120


def test_absolute_standard_error_stops_when_every_error_is_small():
    game = SaturatingGame([1.0, 2.0, 3.0, 5.0, 8.0])
    method = MSRBanzhafValuation(game, AbsoluteStandardError(0.05), seed=3, block_size=32)
    r = method.fit(points(5)).result
    assert np.all(r.stderr < 0.05) and r.status == Status.Converged


class StopAfter(ValuationCallback):
    def __init__(self, rounds: int) -> None:
        self.rounds, self.method = rounds, None

    def on_update(self, result, stats):
        self.rounds -= 1
        if self.rounds == 0:
            self.method.stop()


def test_stop_keeps_the_rounds_merged_so_far():
    stopper = StopAfter(2)
    method = MSRBanzhafValuation(SaturatingGame([1.0, 2.0, 3.0]), MinUpdates(10**6), seed=0,
                                 block_size=16, callbacks=[stopper])
    stopper.method = method
    r = method.fit(points(3)).result
    assert r.meta["ended"] == RunEnd.STOPPED.value and r.meta["samples"] == 32
    assert np.all(r.counts > 0) and r.status == Status.Pending


def test_an_interrupt_keeps_the_partial_result():
    calls = {"n": 0}

    def u(s):
        calls["n"] += 1
        if calls["n"] > 60:  # ends (2), then two rounds of 16 distinct subsets or fewer
            raise KeyboardInterrupt
        return float(len(s))

    method = MSRBanzhafValuation(u, MinUpdates(10**6), seed=0, block_size=16)
    with pytest.raises(KeyboardInterrupt):
        method.fit(points(8))
    r = method.result
    assert r.meta["ended"] == RunEnd.INTERRUPTED.value and r.meta["samples"] >= 16
    # what was merged is the rounds before the interrupt: the same as a run of that many
    rounds = r.meta["samples"] // 16
    whole = MSRBanzhafValuation(lambda s: float(len(s)), MaxChecks(rounds), seed=0,
                                block_size=16).fit(points(8)).result
    np.testing.assert_array_equal(r.values, whole.values)
    np.testing.assert_array_equal(r.counts, whole.counts)


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(26, 2))
    y = (x[:, 0] + 0.3 * rng.normal(size=26) > 0).astype(int)
    y[:6] = [0, 1, 0, 1, 1, 0]
    return Dataset(x[:6], y[:6]), Dataset(x[6:], y[6:])


def test_a_logistic_regression_end_to_end_against_enumeration_and_cached(tiny, tmp_path):
    train, test = tiny
    utility = ModelUtility(LogisticRegression(), SupervisedScorer("accuracy", test, default=0.0),
                           cache=str(tmp_path))
    exact = exact_banzhaf(utility.with_dataset(train), len(train))  # 64 fits
    method = MSRBanzhafValuation(utility, MinUpdates(150), seed=5, block_size=64)
    first = method.fit(train).result
    assert np.all(np.abs(z_scores(first.values, exact, first.stderr)) <= 4)
    assert first.meta["evaluations"] > 0 and first.meta["path"]
    again = MSRBanzhafValuation(utility, MinUpdates(150), seed=5, block_size=64).fit(train)
    np.testing.assert_array_equal(again.result.values, first.values)
    assert again.result.meta["evaluations"] == 0 and again.result.meta["cache_hits"] > 0
