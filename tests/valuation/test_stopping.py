"""Stopping criteria: each one's verdict, per-point convergence and completion; composites."""

from __future__ import annotations

import numpy as np
import pytest

from dvl_jupyter.valuation import stopping
from dvl_jupyter.valuation.result import Status, ValuationResult
from dvl_jupyter.valuation.stopping import (
    AbsoluteStandardError,
    HistoryDeviation,
    MaxChecks,
    MaxTime,
    MaxUpdates,
    MinUpdates,
    RankCorrelation,
    StoppingCriterion,
    check_stopping_criterion,
)

P, C, F = Status.Pending, Status.Converged, Status.Failed


def res(values=None, counts=None, variances=None) -> ValuationResult:
    n = len(values if values is not None else counts)
    return ValuationResult(
        values=np.zeros(n) if values is None else values,
        counts=np.ones(n, dtype=int) if counts is None else counts,
        variances=variances,
    )


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(stopping, "_now", fake)
    return fake


# ---------------------------------------------------------------------- counting criteria


def test_min_updates():
    c = MinUpdates(4)
    assert c.completion() == 0.0 and c.converged.shape == (0,)
    assert c(res(counts=[5, 2, 4])) is P
    np.testing.assert_array_equal(c.converged, [True, False, True])
    assert c.completion() == 0.5  # the slowest point has 2 of 4
    assert c(res(counts=[5, 4, 4])) is C
    assert c.completion() == 1.0 and c.n_checks == 2 and c.status is C


def test_max_updates():
    c = MaxUpdates(4)
    assert c(res(counts=[0, 2, 1])) is P
    assert c.completion() == 0.5  # the busiest point has 2 of 4
    assert c(res(counts=[0, 4, 1])) is C
    np.testing.assert_array_equal(c.converged, [False, True, False])
    never = MaxUpdates(None)
    assert never(res(counts=[10**6])) is P and never.completion() == 0.0


def test_max_checks():
    c = MaxChecks(3)
    r = res(counts=[1, 1])
    assert c(r) is P and c.completion() == pytest.approx(1 / 3)
    assert c(r) is P and c.completion() == pytest.approx(2 / 3)
    np.testing.assert_array_equal(c.converged, [False, False])
    assert c(r) is C and c.completion() == 1.0
    np.testing.assert_array_equal(c.converged, [True, True])
    never = MaxChecks(None)
    for _ in range(5):
        assert never(r) is P
    assert never.completion() == 0.0 and never.n_checks == 5


def test_max_time_starts_at_first_check(clock):
    c = MaxTime(seconds=60)
    r = res(counts=[1])
    clock.t += 500  # time before the first check (e.g. the notebook idling) does not count
    assert c(r) is P and c.completion() == 0.0
    clock.t += 15
    assert c(r) is P and c.completion() == 0.25 and c.elapsed == 15
    clock.t += 45
    assert c(r) is C and c.completion() == 1.0
    np.testing.assert_array_equal(c.converged, [True])


def test_max_time_reset_restarts_the_clock(clock):
    c = MaxTime(10)
    c(res(counts=[1]))
    clock.t += 20
    assert c(res(counts=[1])) is C
    c.reset()
    assert c.n_checks == 0 and c.status is P and c.completion() == 0.0
    clock.t += 4  # counted: the clock started at reset()
    assert c(res(counts=[1])) is P and c.completion() == pytest.approx(0.4)


def test_max_time_none_never_stops(clock):
    c = MaxTime(None)
    c(res(counts=[1]))
    clock.t += 1e9
    assert c(res(counts=[1])) is P and c.completion() == 0.0


# ---------------------------------------------------------------------- statistical criteria


def test_absolute_standard_error():
    # stderr = sqrt(var / count) = [0.1, 0.5, 0.05, 0.01]; the last has too few updates.
    r = res(values=np.zeros(4), counts=[4, 4, 25, 2], variances=[0.04, 1.0, 0.0625, 0.0002])
    c = AbsoluteStandardError(threshold=0.2, fraction=1.0, burn_in=3)
    assert c(r) is P
    np.testing.assert_array_equal(c.converged, [True, False, True, False])
    assert c.completion() == 0.5
    half = AbsoluteStandardError(threshold=0.2, fraction=0.5, burn_in=3)
    assert half(r) is C and half.completion() == 1.0
    no_burn_in = AbsoluteStandardError(threshold=0.2, fraction=0.75, burn_in=0)
    assert no_burn_in(r) is C


def test_absolute_standard_error_waits_for_burn_in():
    r = res(values=np.zeros(2), counts=[4, 4], variances=[0.0, 0.0])
    assert AbsoluteStandardError(0.1, burn_in=4)(r) is P
    assert AbsoluteStandardError(0.1, burn_in=3)(r) is C


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    from dvl_jupyter.valuation.diagnostics import spearman

    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, 4, size=9).astype(float)  # many ties
        b = rng.normal(size=9)
        if np.ptp(a) > 0:
            assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert np.isnan(spearman(np.ones(3), np.arange(3.0)))
    assert np.isnan(spearman(np.array([1.0, np.nan]), np.arange(2.0)))


def test_rank_correlation():
    c = RankCorrelation(rtol=0.1, burn_in=2)  # the first two comparisons are not trusted
    assert c(res(values=[1.0, 2.0, 3.0, 4.0], counts=[1] * 4)) is P  # first memory
    assert np.isnan(c.correlation)
    # Reversed ranking: correlation -1.
    assert c(res(values=[4.0, 3.0, 2.0, 1.0], counts=[2] * 4)) is P
    assert c.correlation == pytest.approx(-1.0) and c.completion() == 0.0
    # Same ranking as before, but only the 2nd comparison: still in the burn-in.
    assert c(res(values=[4.1, 3.1, 2.1, 1.1], counts=[3] * 4)) is P
    assert c.correlation == pytest.approx(1.0) and c.completion() == 0.0
    # Third comparison, one swap: rho = 1 - 6*2/(4*15) = 0.8 < 0.9.
    assert c(res(values=[4.1, 3.1, 1.0, 2.1], counts=[4] * 4)) is P
    assert c.correlation == pytest.approx(0.8)
    assert c.completion() == pytest.approx(0.8 / 0.9)
    np.testing.assert_array_equal(c.converged, [False] * 4)
    assert c(res(values=[4.2, 3.2, 1.1, 2.2], counts=[5] * 4)) is C
    assert c.completion() == 1.0
    np.testing.assert_array_equal(c.converged, [True] * 4)


def test_rank_correlation_skips_checks_without_new_updates():
    c = RankCorrelation(rtol=0.1, burn_in=0)
    r = res(values=[3.0, 1.0, 2.0], counts=[1, 1, 1])
    for _ in range(5):
        assert c(r) is P  # comparing a ranking with itself would "converge" at once
    assert np.isnan(c.correlation) and c.n_checks == 5


def test_rank_correlation_never_converges_on_constant_values():
    c = RankCorrelation(rtol=0.5, burn_in=0)
    c(res(values=[0.0, 0.0, 0.0], counts=[0, 0, 0]))
    assert c(res(values=[0.0, 0.0, 0.0], counts=[1, 1, 1])) is P
    assert np.isnan(c.correlation) and c.completion() == 0.0


def test_history_deviation_pins_converged_points():
    c = HistoryDeviation(n_steps=2, rtol=0.1, pin_converged=True)
    steps = [
        [10.0, 1.0, 0.05],
        [10.5, 2.0, 0.3],
        [10.9, 3.0, 0.0],  # vs step 0: 0.9/10.9 < .1; 2/3 no; |0 - 0.05| (absolute at 0) < .1
        [20.0, 3.1, 0.5],  # vs step 1: 9.5/20 no; 1.1/3.1 no; 0.2/0.5 no
    ]
    statuses = []
    for k, v in enumerate(steps):
        statuses.append(c(res(values=v, counts=[k + 1] * 3)))
        if k == 1:
            assert c.completion() == 0.0  # not enough history yet
    assert statuses == [P, P, P, P]
    np.testing.assert_array_equal(c.converged, [True, False, True])  # pinned from step 2
    assert c.completion() == pytest.approx(2 / 3)
    # vs step 2: |3.15 - 3.0| / 3.15 < 0.1 -> the last point converges, so all do.
    assert c(res(values=[30.0, 3.15, 9.0], counts=[5] * 3)) is C
    assert c.completion() == 1.0


def test_history_deviation_without_pinning_retests_points():
    c = HistoryDeviation(n_steps=1, rtol=0.1, pin_converged=False)
    c(res(values=[1.0, 1.0], counts=[1, 1]))
    c(res(values=[1.01, 5.0], counts=[2, 2]))
    np.testing.assert_array_equal(c.converged, [True, False])
    c(res(values=[3.0, 5.01], counts=[3, 3]))
    np.testing.assert_array_equal(c.converged, [False, True])
    assert c.status is P


def test_history_deviation_ignores_checks_without_new_updates():
    c = HistoryDeviation(n_steps=1, rtol=0.1)
    r = res(values=[1.0, 2.0], counts=[1, 1])
    for _ in range(4):
        assert c(r) is P
    assert c.completion() == 0.0


# ---------------------------------------------------------------------- composites


def test_or_stops_when_either_stops_and_takes_the_larger_completion():
    c = MinUpdates(10) | MaxChecks(4)
    r = res(counts=[5, 3])
    assert c(r) is P
    assert c.completion() == pytest.approx(max(0.3, 0.25))
    c(r), c(r)
    assert c(r) is C and c.completion() == 1.0
    np.testing.assert_array_equal(c.converged, [True, True])
    assert c.left.n_checks == 4 and c.right.n_checks == 4 and c.n_checks == 4


def test_and_needs_both_and_takes_the_smaller_completion():
    c = MinUpdates(4) & MaxUpdates(8)
    assert c(res(counts=[4, 6])) is P
    assert c.completion() == pytest.approx(min(1.0, 6 / 8))
    np.testing.assert_array_equal(c.converged, [False, False])
    assert c(res(counts=[4, 8])) is C
    np.testing.assert_array_equal(c.converged, [False, True])


def test_not_inverts_status_converged_and_completion():
    c = ~MinUpdates(4)
    assert c(res(counts=[1, 5])) is C  # ~Pending
    np.testing.assert_array_equal(c.converged, [True, False])
    assert c.completion() == pytest.approx(0.75)
    assert c(res(counts=[4, 5])) is F  # ~Converged
    assert c.completion() == 0.0


def test_reset_propagates_to_children(clock):
    c = (MaxChecks(2) | MaxTime(5)) & ~MinUpdates(3)
    c(res(counts=[1])), c(res(counts=[1]))
    assert c.left.left.n_checks == 2
    c.reset()
    assert c.n_checks == 0 and c.left.left.n_checks == 0 and c.right.inner.n_checks == 0
    assert c.status is P and c.converged.shape == (0,)


def test_str_reads_like_the_expression():
    assert str(MinUpdates(100) | MaxTime(seconds=60)) == (
        "MinUpdates(n_updates=100) | MaxTime(seconds=60)"
    )
    expr = (MinUpdates(5) & MaxChecks(None)) | ~(RankCorrelation(0.01, 10) | MaxUpdates(9))
    assert str(expr) == (
        "(MinUpdates(n_updates=5) & MaxChecks(n_checks=None)) | "
        "~(RankCorrelation(rtol=0.01, burn_in=10) | MaxUpdates(n_updates=9))"
    )
    assert repr(AbsoluteStandardError(0.1)) == (
        "AbsoluteStandardError(threshold=0.1, fraction=1.0, burn_in=4)"
    )
    assert str(HistoryDeviation(100, 0.05)) == (
        "HistoryDeviation(n_steps=100, rtol=0.05, pin_converged=True)"
    )


@pytest.mark.parametrize("other", [5, "MinUpdates(3)", Status.Converged, None])
def test_combining_with_a_non_criterion_is_a_type_error(other):
    with pytest.raises(TypeError, match="combines stopping criteria only; got"):
        _ = MinUpdates(3) | other
    with pytest.raises(TypeError, match="combines stopping criteria only; got"):
        _ = other & MinUpdates(3)


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: MinUpdates(n_updates=-1), ValueError,
         r"MinUpdates\(n_updates=...\) must be an integer >= 1; got -1. Use e.g. MinUpdates"),
        (lambda: MinUpdates(0), ValueError, r"got 0"),
        (lambda: MinUpdates(2.5), TypeError, r"must be an integer >= 1; got float 2.5"),
        (lambda: MinUpdates(True), TypeError, r"got bool True"),
        (lambda: MinUpdates(None), TypeError, r"got NoneType None"),
        (lambda: MaxUpdates("10"), TypeError, r"MaxUpdates\(n_updates=...\) must be an integer"
         r" >= 1 or None; got str '10'"),
        (lambda: MaxChecks(0), ValueError, r"MaxChecks\(n_checks=...\)"),
        (lambda: MaxTime(-3), ValueError,
         r"MaxTime\(seconds=...\) must be a number in \(0, inf\) or None; got -3"),
        (lambda: MaxTime(float("nan")), ValueError, r"MaxTime\(seconds=...\)"),
        (lambda: AbsoluteStandardError(0), ValueError, r"\(threshold=...\)"),
        (lambda: AbsoluteStandardError(0.1, fraction=1.5), ValueError,
         r"\(fraction=...\) must be a number in \(0, 1\]; got 1.5"),
        (lambda: AbsoluteStandardError(0.1, burn_in=-1), ValueError, r"\(burn_in=...\)"),
        (lambda: RankCorrelation(rtol=1.0, burn_in=3), ValueError,
         r"RankCorrelation\(rtol=...\) must be a number in \(0, 1\); got 1.0"),
        (lambda: RankCorrelation(rtol=0.1, burn_in=1.5), TypeError, r"\(burn_in=...\)"),
        (lambda: HistoryDeviation(0, 0.1), ValueError, r"HistoryDeviation\(n_steps=...\)"),
        (lambda: HistoryDeviation(10, -0.1), ValueError, r"HistoryDeviation\(rtol=...\)"),
        (lambda: HistoryDeviation(10, 0.1, pin_converged="yes"), TypeError,
         r"pin_converged=...\) must be True or False"),
    ],
)  # fmt: skip
def test_bad_arguments_say_what_is_allowed_and_what_came(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_numpy_scalars_are_accepted():
    assert MinUpdates(np.int64(3)).n_updates == 3
    assert MaxTime(np.float64(2.5)).seconds == 2.5


def test_check_stopping_criterion():
    c = MinUpdates(1)
    assert check_stopping_criterion(c) is c
    with pytest.raises(TypeError) as info:
        check_stopping_criterion(5)
    assert str(info.value) == (
        "is_done must be a stopping criterion such as MinUpdates(100) | MaxTime(600); got int 5"
    )
    with pytest.raises(TypeError, match="stopping must be .* got the class MinUpdates itself"):
        check_stopping_criterion(MinUpdates, name="stopping")


def test_calling_with_something_else_than_a_result():
    with pytest.raises(TypeError, match=r"MinUpdates\(n_updates=1\) must be called with a Val"):
        MinUpdates(1)(np.zeros(3))


def test_custom_criterion():
    class EveryOther(StoppingCriterion):
        def _check(self, result):
            return C if self.n_checks % 2 == 0 else P

    c = EveryOther() | MinUpdates(100)
    r = res(counts=[1, 1, 1])
    assert c(r) is P and c.completion() == pytest.approx(0.01)
    assert c(r) is C and c.completion() == 1.0
    np.testing.assert_array_equal(c.converged, [True, True, True])  # filled in by the base

    class ReturnsBool(StoppingCriterion):
        def _check(self, result):
            return True

    with pytest.raises(TypeError, match="_check must return a Status; got bool True"):
        ReturnsBool()(r)


def test_time_is_up_only_where_time_alone_decides(clock):
    from dvl_jupyter.valuation.stopping import time_is_up

    t = MaxTime(10)
    t.reset()
    forms = {"alone": t, "or": MinUpdates(5) | t, "nested or": MinUpdates(5) | (MaxChecks(9) | t),
             "and": t & MinUpdates(5), "not": ~t, "none": MaxTime(None) | MinUpdates(5)}
    assert not any(time_is_up(c) for c in forms.values())
    clock.t += 10
    assert {k: time_is_up(c) for k, c in forms.items()} == {
        "alone": True, "or": True, "nested or": True, "and": False, "not": False, "none": False}
    assert t.n_checks == 0  # asking does not check the criterion


def test_updates_needed_bounds_what_count_criteria_can_use():
    r = res(counts=[3, 5, 4])
    assert MinUpdates(10).updates_needed(r) == 7  # the least-updated point needs 7 more
    assert MaxUpdates(10).updates_needed(r) == 5  # the busiest point reaches 10 in 5
    assert MaxUpdates(None).updates_needed(r) is None
    assert MaxTime(60).updates_needed(r) is None and MaxChecks(3).updates_needed(r) is None
    assert (MinUpdates(10) | MaxTime(60)).updates_needed(r) == 7
    assert (MinUpdates(10) | MaxUpdates(6)).updates_needed(r) == 1
    assert (MinUpdates(10) & MaxUpdates(6)).updates_needed(r) == 7
    assert (MinUpdates(10) & MaxTime(60)).updates_needed(r) is None
    assert (~MinUpdates(10)).updates_needed(r) is None
    assert MinUpdates(2).updates_needed(r) == 0
    c = MinUpdates(10)
    c.updates_needed(r)
    assert c.n_checks == 0  # asking is not a check
