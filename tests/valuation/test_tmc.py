"""TMC-Shapley against exact values (enumeration) and against the Shapley axioms.

Tolerances come from the estimates' own standard errors: with NoTruncation TMC is unbiased, so
each estimate is within z standard errors of the truth, z chosen for a family-wise error of
1e-3 over all points (Bonferroni). Each test also checks that its tolerance is tight enough to
tell the points apart, so it cannot pass by being vague.
"""

from __future__ import annotations

import numpy as np
import pytest
from joblib import parallel_config
from scipy.stats import norm

from dvl_jupyter.valuation import (
    Dataset,
    FixedTruncation,
    MaxChecks,
    MinUpdates,
    NoTruncation,
    RelativeTruncation,
    TMCShapleyValuation,
)

from .games import PairsGame, SaturatingGame, WeightedVotingGame, exact_shapley


def points(n: int) -> Dataset:
    return Dataset(
        np.arange(n, dtype=float)[:, None], np.zeros(n), names=[f"p{i}" for i in range(n)]
    )


def z_for(n_points: int, alpha: float = 1e-3) -> float:
    return float(norm.ppf(1 - alpha / (2 * n_points)))


GAMES = {
    "voting": (WeightedVotingGame([4, 3, 2, 2, 1, 1, 0.5], quota=6.5), 7),
    "saturating": (SaturatingGame([1, 2, 3, 5, 8, 0.5, 0.25, 4]), 8),
    "pairs": (PairsGame(3, [0.1, 0.3, 0.0, 0.2, 0.5, 0.05]), 7),
}


@pytest.mark.parametrize("name", sorted(GAMES))
def test_tmc_matches_exact_shapley_within_standard_errors(name):
    game, n = GAMES[name]
    exact = exact_shapley(game, n)
    valuation = TMCShapleyValuation(
        game, truncation=NoTruncation(), is_done=MinUpdates(400), seed=7
    )
    result = valuation.fit(points(n)).result
    z = z_for(n)
    err = np.abs(result.values - exact)
    tol = z * result.stderr + 1e-12
    assert np.all(err <= tol), f"{name}: errors {err} exceed {tol}"
    # The check is discriminating: the band is narrower than the spread of the true values.
    assert tol.max() < 0.5 * (exact.max() - exact.min())
    assert np.all(result.counts >= 400)


@pytest.mark.parametrize("name", sorted(GAMES))
def test_efficiency_without_truncation_is_exact(name):
    game, n = GAMES[name]
    result = TMCShapleyValuation(game, is_done=MinUpdates(30), seed=1).fit(points(n)).result
    full, empty = game(np.arange(n)), game(np.empty(0, dtype=np.int64))
    assert result.values.sum() == pytest.approx(full - empty, abs=1e-9)


def test_symmetric_points_get_equal_values_within_standard_errors():
    game = WeightedVotingGame([2, 2, 2, 1, 1, 3], quota=5.5)  # points 0,1,2 symmetric; 3,4 too
    result = TMCShapleyValuation(game, is_done=MinUpdates(500), seed=3).fit(points(6)).result
    z = z_for(4)
    for i, j in [(0, 1), (1, 2), (3, 4)]:
        se = np.hypot(result.stderr[i], result.stderr[j])
        assert abs(result.values[i] - result.values[j]) <= z * se + 1e-12
    # and the two groups really differ, beyond the same band
    assert result.values[0] - result.values[3] > z * np.hypot(result.stderr[0], result.stderr[3])


def test_null_player_gets_exactly_zero():
    game = PairsGame(2, [0.2, 0.1, 0.4, 0.3])
    result = TMCShapleyValuation(game, is_done=MinUpdates(50), seed=5).fit(points(game.n)).result
    assert result.values[-1] == 0.0
    assert result.stderr[-1] == 0.0
    assert np.all(result.values[:-1] > 0)


def test_additive_game_is_recovered_exactly():
    w = np.array([0.5, -1.0, 2.0, 0.0, 3.0])
    result = (
        TMCShapleyValuation(lambda s: w[s].sum(), is_done=MinUpdates(5), seed=0)
        .fit(points(5))
        .result
    )
    np.testing.assert_allclose(result.values, w, atol=1e-12)


def test_every_point_is_updated_once_per_permutation_even_when_truncated():
    sizes = []
    saturating = SaturatingGame([1, 1, 1, 1, 1, 1, 1, 1, 1, 1])

    def game(s):
        sizes.append(len(s))
        return saturating(s)

    valuation = TMCShapleyValuation(
        game, truncation=FixedTruncation(0.3), is_done=MinUpdates(20), seed=2, lockstep=4
    )
    result = valuation.fit(points(10)).result
    assert len(set(result.counts.tolist())) == 1
    perms = result.meta["permutations"]
    assert result.counts[0] == perms
    # truncated at 3 of 10 points: no walk goes further (besides the full set, evaluated once)
    assert sorted(set(sizes)) == [0, 1, 2, 3, 10]
    assert sizes.count(10) == 1 and valuation.stats.evaluations == len(sizes)


def test_relative_truncation_saves_evaluations_and_stays_close():
    game = SaturatingGame([5, 4, 3, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01])
    exact = exact_shapley(game, 10)
    # lockstep=1: one subset per round, so no two walks share (deduplicate) an evaluation
    plain = TMCShapleyValuation(game, is_done=MinUpdates(200), seed=4, lockstep=1)
    plain.fit(points(10))
    truncated = TMCShapleyValuation(
        game, truncation=RelativeTruncation(0.01, 0.0), is_done=MinUpdates(200), seed=4,
        lockstep=1,
    )
    truncated.fit(points(10))
    assert truncated.stats.evaluations < 0.9 * plain.stats.evaluations
    # truncation biases small values towards zero by at most ~rtol * u(N)
    bias_bound = 0.01 * game(np.arange(10)) + 5 * truncated.result.stderr
    assert np.all(np.abs(truncated.result.values - exact) <= bias_bound + 1e-9)


def test_same_seed_same_result_and_other_seed_differs():
    game, n = GAMES["saturating"]
    a = TMCShapleyValuation(game, is_done=MinUpdates(20), seed=11).fit(points(n)).result
    b = TMCShapleyValuation(game, is_done=MinUpdates(20), seed=11).fit(points(n)).result
    c = TMCShapleyValuation(game, is_done=MinUpdates(20), seed=12).fit(points(n)).result
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_one_and_two_jobs_give_identical_results(backend):
    game, n = GAMES["voting"]
    runs = []
    for n_jobs in (1, 2):
        with parallel_config(backend=backend, n_jobs=n_jobs):
            v = TMCShapleyValuation(
                game, truncation=RelativeTruncation(0.05, 0.3), is_done=MinUpdates(25), seed=9
            )
            runs.append(v.fit(points(n)).result)
    np.testing.assert_array_equal(runs[0].values, runs[1].values)
    np.testing.assert_array_equal(runs[0].counts, runs[1].counts)
    np.testing.assert_array_equal(runs[0].variances, runs[1].variances)


def counting(game):
    """``game`` that also counts its evaluations."""
    calls = []

    def u(s):
        calls.append(len(s))
        return game(s)

    return u, calls


@pytest.mark.parametrize("n_checks", [1, 3])
def test_max_checks_walks_exactly_as_many_permutations_as_it_checks(n_checks):
    """MaxChecks(n) checks once per merged permutation, so it starts n permutations and no
    more: with NoTruncation on 7 points, exactly n walks of 7 evaluations (plus the empty
    and the full set), whatever lockstep is (it used to walk a whole round of 64)."""
    game, n = GAMES["voting"]
    u, calls = counting(game)
    v = TMCShapleyValuation(u, is_done=MaxChecks(n_checks), seed=0, lockstep=64)
    result = v.fit(points(n)).result
    assert result.meta["ended"] == "done"
    assert result.meta["permutations"] == n_checks
    assert np.all(result.counts == n_checks)
    # no more than the walks asked for (equal prefixes within a round are computed once)
    assert n * n_checks // 2 < len(calls) <= n_checks * n + 2
    assert "dropped_permutations" not in result.meta


def test_a_criterion_without_a_bound_ends_the_run_within_a_round_of_firing():
    """AbsoluteStandardError has no bound on the work it needs: when it fires, the walks in
    flight are dropped (their utilities are cached) instead of walked to their end, and the
    result is the prefix of permutations up to the one that made it fire."""
    from dvl_jupyter.valuation import AbsoluteStandardError

    game, n = GAMES["saturating"]
    u, calls = counting(game)
    v = TMCShapleyValuation(u, is_done=AbsoluteStandardError(10.0, burn_in=0), seed=0,
                            lockstep=6, truncation=NoTruncation())
    result = v.fit(points(n)).result
    # every stderr is below 10 from the first check on: one permutation merged, and the other
    # five, walked side by side with it, are dropped when it fires
    assert result.meta["permutations"] == 1 and np.all(result.counts == 1)
    assert result.meta["dropped_permutations"] == 5
    assert len(calls) <= 6 * n + 2  # the six walks, side by side, until the first merged


def test_antithetic_pairs_reverse_each_other():
    from dvl_jupyter.valuation import PermutationSampler

    s = PermutationSampler(9, entropy=3, antithetic=True)
    np.testing.assert_array_equal(s.permutation(4)[::-1], s.permutation(5))
    game, n = GAMES["pairs"]
    exact = exact_shapley(game, n)
    r = (
        TMCShapleyValuation(game, is_done=MinUpdates(300), seed=1, antithetic=True)
        .fit(points(n))
        .result
    )
    assert np.all(np.abs(r.values - exact) <= z_for(n) * r.stderr * np.sqrt(2) + 1e-12)


def test_stop_request_keeps_partial_result():
    from dvl_jupyter.valuation import ValuationCallback

    class StopAfterTwo(ValuationCallback):
        def __init__(self, valuation_ref):
            self.ref = valuation_ref

        def on_update(self, result, stats):
            if stats.permutations >= 2:
                self.ref[0].stop()

    ref = []
    game, n = GAMES["saturating"]
    v = TMCShapleyValuation(
        game, is_done=MinUpdates(10_000), seed=0, lockstep=1, callbacks=[StopAfterTwo(ref)]
    )
    ref.append(v)
    v.fit(points(n))
    assert v.result.meta["ended"] == "stopped"
    assert v.result.meta["permutations"] == 2
    assert np.all(v.result.counts == 2)


def test_keyboard_interrupt_keeps_partial_result():
    calls = {"n": 0}

    def game(s):
        calls["n"] += 1
        if calls["n"] > 40:
            raise KeyboardInterrupt
        return float(len(s))

    v = TMCShapleyValuation(game, is_done=MinUpdates(1000), seed=0, lockstep=1)
    with pytest.raises(KeyboardInterrupt):
        v.fit(points(5))
    r = v.result
    assert r.meta["ended"] == "interrupted"
    assert r.meta["permutations"] >= 1
    np.testing.assert_allclose(r.values, 1.0)  # additive with unit weights


def test_equal_subsets_in_one_round_are_computed_once():
    from dvl_jupyter.valuation.callbacks import RunStats
    from dvl_jupyter.valuation.evaluators import FunctionEvaluator
    from dvl_jupyter.valuation.parallel import SubsetEvaluator
    from dvl_jupyter.valuation.utility import FunctionUtility

    calls = []
    stats = RunStats()
    utility = FunctionUtility(lambda s: calls.append(1) or float(s.sum()))
    with SubsetEvaluator(FunctionEvaluator(utility), stats) as evaluate:
        values = evaluate([np.array([1, 2]), np.array([2, 1]), np.array([3]), np.array([1, 2])])
    np.testing.assert_array_equal(values, [3, 3, 3, 3])
    assert len(calls) == 2 and stats.evaluations == 2


# -- time limits --------------------------------------------------------------------------------
class _Clock:
    """A fake monotonic clock for MaxTime; each utility evaluation advances it by ``dt``."""

    def __init__(self, dt: float) -> None:
        self.t, self.dt = 1000.0, dt

    def __call__(self) -> float:
        return self.t

    def game(self, s: np.ndarray) -> float:
        self.t += self.dt
        return float(len(s))


@pytest.fixture
def slow_clock(monkeypatch):
    from dvl_jupyter.valuation import stopping

    clock = _Clock(dt=0.1)
    monkeypatch.setattr(stopping, "_now", clock)
    return clock


def test_time_limit_stops_a_run_in_which_no_permutation_has_finished(slow_clock):
    """30 points, 4 permutations side by side: a permutation takes 30 rounds of 0.4 s, the
    budget is 10 s. The run stops in the round that crosses 10 s, not after 12 s when the
    first permutations would merge."""
    from dvl_jupyter.valuation import MaxTime

    start = slow_clock.t
    v = TMCShapleyValuation(slow_clock.game, is_done=MaxTime(10), seed=0, lockstep=4)
    r = v.fit(points(30)).result
    elapsed = slow_clock.t - start
    assert 10 <= elapsed <= 10 + 4 * 0.1 + 0.2 + 1e-9  # one round (+ the first evaluations)
    assert r.meta["ended"] == "time limit" and r.meta["dropped_permutations"] == 4
    assert r.meta["permutations"] == 0 and np.all(r.counts == 0)
    assert bool(r.status)  # converged: the criterion stopped the run


def test_time_limit_does_not_wait_for_the_permutations_in_flight(slow_clock):
    """One permutation at a time, 6 points: 0.6 s each after 0.2 s for the empty and the full
    set. With a 2.3 s budget, 3 permutations merge (by 2.0 s); the 4th is dropped at 2.3 s
    instead of being finished at 2.6 s, and the count criterion alongside does not matter.
    Every point keeps one update per merged permutation."""
    from dvl_jupyter.valuation import MaxTime

    start = slow_clock.t
    v = TMCShapleyValuation(slow_clock.game, is_done=MinUpdates(10_000) | MaxTime(2.3), seed=0,
                            lockstep=1)
    r = v.fit(points(6)).result
    assert slow_clock.t - start <= 2.3 + 0.1 + 1e-9
    assert r.meta["ended"] == "time limit" and r.meta["dropped_permutations"] == 1
    assert r.meta["permutations"] == 3 and np.all(r.counts == 3)
    np.testing.assert_allclose(r.values, 1.0)  # additive game: merged permutations are whole


def test_time_limit_inside_and_waits_for_the_other_criterion(slow_clock):
    """``MaxTime & MinUpdates``: time alone does not stop it, so the run goes on past the
    budget until the updates are there. The criterion has no bound (its time part has none),
    so walks were started ahead; when it fires, the run ends at once, as "done"."""
    from dvl_jupyter.valuation import MaxTime

    v = TMCShapleyValuation(slow_clock.game, is_done=MaxTime(1) & MinUpdates(5), seed=0,
                            lockstep=2)
    r = v.fit(points(6)).result
    assert r.meta["ended"] == "done"
    assert r.meta["permutations"] == 5 and np.all(r.counts == 5)
    assert r.meta["dropped_permutations"] == 1  # the sixth, walking beside the fifth


# -- no more permutations than the criterion can use ---------------------------------------------
@pytest.mark.parametrize("lockstep", [1, 4, 8, 64])
def test_min_updates_starts_exactly_the_permutations_it_needs(lockstep):
    """MinUpdates(10) with up to 64 permutations side by side: 10 are walked, not 10 plus
    whatever was in flight when it fired."""
    calls = {"n": 0}

    def game(s):
        calls["n"] += 1
        return float(len(s))

    r = TMCShapleyValuation(game, is_done=MinUpdates(10), seed=0, lockstep=lockstep).fit(
        points(6)).result
    assert r.meta["permutations"] == 10 and np.all(r.counts == 10)
    assert calls["n"] <= 2 + 10 * 6  # empty + full set, then at most 6 subsets a permutation


def test_an_or_with_a_count_is_bounded_and_an_and_stops_at_once():
    from dvl_jupyter.valuation import AbsoluteStandardError

    game, n = GAMES["voting"]
    never = AbsoluteStandardError(threshold=1e-12, fraction=1.0, burn_in=10**6)
    either = TMCShapleyValuation(game, is_done=never | MinUpdates(5), seed=0, lockstep=8)
    assert either.fit(points(n)).result.meta["permutations"] == 5
    both = TMCShapleyValuation(game, is_done=MaxChecks(1) & MinUpdates(5), seed=0, lockstep=8)
    # an & of a check count and an update count has no bound: 8 walk side by side; when it
    # fires (at the 5th merge) the 3 still in flight are dropped, not walked to their end
    r = both.fit(points(n)).result
    assert r.meta["permutations"] == 5 and r.meta["dropped_permutations"] == 3


def test_keeping_rounds_full_changes_no_value_and_fills_the_rounds(monkeypatch):
    """In the tail of a run, walks ask for several prefixes at once: the same values (they
    are a function of the subsets), in fewer and fuller rounds."""
    game, n = GAMES["saturating"]
    sizes = {}
    for full in (False, True):
        rounds: list[int] = []

        def u(s, rounds=rounds):
            return game(s)

        monkeypatch.setattr(TMCShapleyValuation, "keep_rounds_full", full)
        v = TMCShapleyValuation(u, truncation=RelativeTruncation(0.05, 0.3),
                                is_done=MinUpdates(10), seed=3, lockstep=8)
        from dvl_jupyter.valuation.parallel import SubsetEvaluator

        original = SubsetEvaluator.__call__

        def counting(self, subsets, evaluator=None, rounds=rounds, original=original):
            rounds.append(len(subsets))
            return original(self, subsets, evaluator)

        monkeypatch.setattr(SubsetEvaluator, "__call__", counting)
        sizes[full] = (v.fit(points(n)).result, rounds)
        monkeypatch.setattr(SubsetEvaluator, "__call__", original)
    (stepwise, r_step), (full, r_full) = sizes[False], sizes[True]
    np.testing.assert_array_equal(stepwise.values, full.values)
    np.testing.assert_array_equal(stepwise.counts, full.counts)
    assert len(r_full) < len(r_step)
    # without it, the tail's rounds shrink to one subset; with it none is smaller than lockstep
    # unless the walks left cannot fill it
    assert min(r_step[1:]) == 1 and np.mean(r_full[1:]) > np.mean(r_step[1:])
