"""Built-in evaluation: flipped labels, detection scores and removal curves, against hand counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator

from dvl_jupyter.valuation import (
    Dataset,
    DetectionScores,
    DvlTypeError,
    DvlValueError,
    FailedFitsWarning,
    ModelUtility,
    SupervisedScorer,
    ValuationResult,
    detection_scores,
    flip_labels,
    removal_curve,
)

T_975_4 = 2.7764451051977987  # scipy.stats.t.ppf(0.975, 4), written out so a wrong quantile fails


# ---- flip_labels ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "fraction", "expected"), [(50, 0.1, 5), (10, 0.25, 2), (7, 0.5, 4)])
def test_flip_labels_flips_round_fraction_to_other_classes(n, fraction, expected):
    # round(): 10 * 0.25 = 2.5 rounds to 2 (ties to even), 7 * 0.5 = 3.5 to 4
    y = np.arange(n) % 3
    data = Dataset(np.zeros((n, 2)), y)
    noisy, mask = flip_labels(data, fraction, seed=1)
    assert mask.dtype == bool and mask.shape == (n,)
    assert mask.sum() == expected
    assert np.all(noisy.y[mask] != y[mask])
    assert np.array_equal(noisy.y[~mask], y[~mask])
    assert set(np.unique(noisy.y)) <= {0, 1, 2}
    assert np.array_equal(data.y, y)  # the input is not changed


def test_flip_labels_draws_the_new_class_uniformly_among_the_others():
    # 2,000 points of class 0 flipped: each goes to 1 or 2 with probability 1/2
    y = np.array([1, 2] + [0] * 3998)
    noisy, mask = flip_labels(Dataset(np.zeros((4000, 1)), y), 0.5, seed=3)
    from_zero = mask & (y == 0)
    m = int(from_zero.sum())
    to_one = int((noisy.y[from_zero] == 1).sum())
    assert set(np.unique(noisy.y[from_zero])) == {1, 2}
    assert abs(to_one - m / 2) < 4 * math.sqrt(m) / 2  # 4 binomial standard deviations


def test_flip_labels_is_reproducible_from_the_seed():
    data = Dataset(np.zeros((100, 1)), np.arange(100) % 10)
    a, mask_a = flip_labels(data, 0.1, seed=7)
    b, mask_b = flip_labels(data, 0.1, seed=7)
    c, mask_c = flip_labels(data, 0.1, seed=8)
    assert np.array_equal(mask_a, mask_b) and np.array_equal(a.y, b.y)
    assert not np.array_equal(mask_a, mask_c)


def test_flip_labels_keeps_x_names_indices_and_the_torch_type():
    x = torch.zeros((12, 1, 2, 2))
    y = torch.arange(12) % 4
    data = Dataset(x, y, names=[f"p{i}" for i in range(12)], indices=np.arange(12) * 5 + 3)
    noisy, mask = flip_labels(data, 0.5, seed=0)
    assert isinstance(noisy.y, torch.Tensor)
    assert noisy.y.dtype == torch.int64 and noisy.y.device == y.device
    assert noisy.x is x
    assert np.array_equal(noisy.names, data.names)
    assert np.array_equal(noisy.indices, data.indices)
    flipped = torch.as_tensor(mask)
    assert mask.sum() == 6
    assert torch.all(noisy.y[flipped] != y[flipped]) and torch.equal(noisy.y[~flipped], y[~flipped])
    assert torch.equal(y, torch.arange(12) % 4)


def test_flip_labels_takes_whole_floats_strings_and_xy_pairs():
    y_float = np.array([0.0, 1.0, 2.0] * 4)
    noisy, mask = flip_labels((np.zeros((12, 1)), y_float), 0.25, seed=0)
    assert isinstance(noisy, Dataset) and noisy.y.dtype == np.float64
    assert np.all(noisy.y[mask] != y_float[mask])
    y_str = np.array(["cat", "dog"] * 5)
    noisy, mask = flip_labels(Dataset(np.zeros((10, 1)), y_str), 0.2, seed=0)
    assert list(noisy.y[mask]) == ["dog" if v == "cat" else "cat" for v in y_str[mask]]


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.0, -0.1, 1.5, float("nan")])
def test_flip_labels_refuses_a_fraction_outside_the_open_interval(fraction):
    with pytest.raises(DvlValueError, match=r"^fraction must be a fraction strictly between"):
        flip_labels(Dataset(np.zeros((10, 1)), np.arange(10) % 2), fraction, seed=0)


def test_flip_labels_refuses_bad_fraction_types_and_fractions_that_flip_nothing():
    data = Dataset(np.zeros((10, 1)), np.arange(10) % 2)
    with pytest.raises(DvlTypeError, match=r"^fraction must be a number"):
        flip_labels(data, "0.1", seed=0)
    with pytest.raises(DvlTypeError, match=r"^fraction must be a number"):
        flip_labels(data, True, seed=0)
    with pytest.raises(DvlValueError, match=r"^fraction=0.01 of 10 points flips no label"):
        flip_labels(data, 0.01, seed=0)


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array([0.5, 1.0, 2.0, 0.0]), "floats with fractional parts"),
        (np.zeros(4, dtype=np.int64), "a single class"),
        (np.eye(4), "must be 1-D class labels"),
        (torch.tensor([0.1, 0.2, 0.3, 0.4]), "floats with fractional parts"),
    ],
)
def test_flip_labels_refuses_labels_that_are_not_classes(y, message):
    with pytest.raises(DvlValueError, match=rf"^dataset\.y .*{message}"):
        flip_labels(Dataset(np.zeros((4, 1)), y), 0.5, seed=0)


# ---- detection_scores ----------------------------------------------------------------------------


def test_detection_scores_of_a_small_ranking_by_hand():
    # lowest first: F T T F F. Each flagged point has a lower value than 2 of the 3 unflagged:
    # AUROC 4/6. The precisions at the flagged ranks 2 and 3 are 1/2 and 2/3: AP 7/12.
    r = ValuationResult(np.array([-0.5, -0.2, 0.0, 0.1, 0.3]))
    mask = np.array([False, True, True, False, False])
    s = detection_scores(r, mask)
    assert s == DetectionScores(
        auroc=pytest.approx(4 / 6),
        average_precision=pytest.approx(7 / 12),
        precision_at_k=0.5,
        k=2,
        n_points=5,
        n_flagged=2,
    )
    assert s.base_rate == 2 / 5
    assert detection_scores(r, mask, k=3).precision_at_k == pytest.approx(2 / 3)
    assert detection_scores(r, mask, k=5).precision_at_k == pytest.approx(2 / 5)


def test_detection_scores_count_ties_as_half():
    # the flagged point ties with one unflagged point at the lowest value: AUROC (0.5 + 2) / 3,
    # AP = precision 1/2 at the one threshold reaching it, precision@1 = 1/2 whatever the order
    r = ValuationResult(np.array([0.0, 0.0, 1.0, 1.0]))
    for mask in (np.array([True, False, False, False]), np.array([False, True, False, False])):
        s = detection_scores(r, mask)
        assert s.auroc == pytest.approx(5 / 6)
        assert s.average_precision == pytest.approx(0.5)
        assert s.precision_at_k == pytest.approx(0.5)


def test_detection_scores_of_a_perfect_and_an_inverted_ranking():
    mask = np.array([True, True, False, False, False])
    best = detection_scores(ValuationResult(np.array([-2.0, -1.0, 0.0, 1.0, 2.0])), mask)
    assert (best.auroc, best.average_precision, best.precision_at_k) == (1.0, 1.0, 1.0)
    worst = detection_scores(ValuationResult(np.array([2.0, 1.0, 0.0, -1.0, -2.0])), mask)
    # flagged at ranks 4 and 5: precisions 1/4 and 2/5
    assert worst.auroc == 0.0 and worst.precision_at_k == 0.0
    assert worst.average_precision == pytest.approx((1 / 4 + 2 / 5) / 2)


def test_detection_scores_align_sorted_results_through_the_datasets_indices():
    # positions 0..4 of the dataset have data indices 7, 3, 9, 1, 5; the mask flags positions
    # 1 and 4, i.e. data indices 3 and 5, which have the two lowest values: a perfect ranking
    data = Dataset(np.zeros((5, 1)), np.zeros(5), indices=[7, 3, 9, 1, 5])
    mask = np.array([False, True, False, False, True])
    value_of = {7: 0.3, 3: -1.0, 9: 0.1, 1: 0.2, 5: -0.5}
    r = ValuationResult(list(value_of.values()), indices=list(value_of))
    for res in (r, r.sort(), r.sort(reverse=True)):
        s = detection_scores(res, mask, dataset=data)
        assert (s.auroc, s.average_precision, s.precision_at_k) == (1.0, 1.0, 1.0)
    # without the dataset the mask would be read by data index: refused, it has no index 9
    with pytest.raises(DvlValueError, match=r"^mask has 5 entries, but result holds data"):
        detection_scores(r, mask)


def test_detection_scores_of_a_slice_are_among_its_points():
    # the 3 lowest of 5: values -1 (flagged), -0.5, 0 (flagged): AUROC 1/2, AP (1 + 2/3) / 2
    r = ValuationResult(np.array([0.0, -1.0, 2.0, -0.5, 1.0]))
    mask = np.array([True, True, False, False, False])
    s = detection_scores(r.sort()[:3], mask)
    assert (s.n_points, s.n_flagged, s.k) == (3, 2, 2)
    assert s.auroc == pytest.approx(0.5)
    assert s.average_precision == pytest.approx((1 + 2 / 3) / 2)
    assert s.precision_at_k == pytest.approx(0.5)


def test_detection_scores_take_integer_and_torch_masks():
    r = ValuationResult(np.array([-1.0, 0.0, 1.0]))
    for mask in (np.array([1, 0, 0]), torch.tensor([True, False, False])):
        assert detection_scores(r, mask).auroc == 1.0


def test_detection_scores_refuse_bad_masks_k_and_values():
    r = ValuationResult(np.array([-1.0, 0.0, 1.0, 2.0]))
    data = Dataset(np.zeros((4, 1)), np.zeros(4))
    good = np.array([True, False, False, False])
    with pytest.raises(DvlValueError, match=r"^mask has 3 entries but dataset has 4 points"):
        detection_scores(r, good[:3], dataset=data)
    with pytest.raises(DvlValueError, match=r"^mask has 3 entries but result has 4 points"):
        detection_scores(r, good[:3])
    with pytest.raises(DvlValueError, match=r"^mask flags no points among the result's 4"):
        detection_scores(r, np.zeros(4, dtype=bool))
    with pytest.raises(DvlValueError, match=r"^mask flags only points among the result's 4"):
        detection_scores(r, np.ones(4, dtype=bool))
    with pytest.raises(DvlTypeError, match=r"^mask must be booleans"):
        detection_scores(r, np.array([0.5, 0.0, 0.0, 0.0]))
    with pytest.raises(DvlValueError, match=r"^mask must be 1-D"):
        detection_scores(r, good[:, None])
    for k in (0, 5, 1.5, True):
        with pytest.raises(DvlValueError, match=r"^k must be an integer in 1\.\.4"):
            detection_scores(r, good, k=k)
    with pytest.raises(DvlValueError, match=r"^result has 1 values that are NaN"):
        detection_scores(ValuationResult(np.array([-1.0, np.nan, 1.0, 2.0])), good)
    with pytest.raises(DvlTypeError, match=r"^result must be a ValuationResult"):
        detection_scores(np.array([-1.0, 0.0, 1.0, 2.0]), good)
    with pytest.raises(DvlTypeError, match=r"^dataset must be the training Dataset"):
        detection_scores(r, good, dataset=(np.zeros((4, 1)), np.zeros(4)))


def test_flip_then_detect_with_values_that_know_the_answer():
    data = Dataset(np.zeros((200, 1)), np.arange(200) % 10)
    noisy, mask = flip_labels(data, 0.1, seed=0)
    # an oracle-like result: flipped points low, with overlap from noise
    rng = np.random.default_rng(0)
    values = np.where(mask, -1.0, 0.0) + rng.normal(0.0, 0.1, 200)
    s = detection_scores(ValuationResult(values, indices=noisy.indices), mask, dataset=noisy)
    assert s.n_flagged == 20 and s.k == 20
    assert s.auroc > 0.99  # the two groups are 10 standard deviations apart


# ---- removal_curve: a utility whose answer is known ------------------------------------------

# 20 training points, the first 4 flipped; a model trained on a set S scores the fraction of
# clean points in S. Values rank the flipped points lowest (by data index among equals).
N, N_FLIPPED = 20, 4
MASK = np.arange(N) < N_FLIPPED
VALUES = np.where(MASK, -1.0, 1.0) + 0.01 * np.arange(N)


def clean_fraction(positions: np.ndarray) -> float:
    return float(np.mean(~MASK[positions]))


FRACTIONS = (0.0, 0.1, 0.2, 0.3)  # remove 0, 2, 4, 6 points
LOWEST = [16 / 20, 16 / 18, 16 / 16, 14 / 14]  # the flipped go first, then clean ones
HIGHEST = [16 / 20, 14 / 18, 12 / 16, 10 / 14]  # clean ones go first


def test_removal_curve_removes_the_lowest_and_highest_values_first():
    curve = removal_curve(ValuationResult(VALUES), clean_fraction, fractions=FRACTIONS, n_seeds=3)
    assert curve.strategies == ("lowest", "highest", "random")
    assert np.array_equal(curve.fractions, FRACTIONS)
    assert np.array_equal(curve.n_removed, [0, 2, 4, 6])
    assert curve.n_points == N and curve.n_seeds == 3 and curve.score_name == "score"
    for strategy, expected in (("lowest", LOWEST), ("highest", HIGHEST)):
        assert curve.scores[strategy].shape == (3, 4)
        np.testing.assert_allclose(curve.scores[strategy], np.tile(expected, (3, 1)), rtol=1e-15)
        # a deterministic utility and a fixed order: the same every seed, a zero-width interval
        np.testing.assert_allclose(curve.mean[strategy], expected, rtol=1e-15)
        np.testing.assert_allclose(curve.low[strategy], expected, rtol=1e-15)
        np.testing.assert_allclose(curve.high[strategy], expected, rtol=1e-15)
    assert np.all(curve.scores["random"][:, 0] == 0.8)  # nothing removed


def test_random_removal_averages_to_the_clean_share():
    # keeping 14 of 20 at random, the clean count is hypergeometric with mean 14 * 16/20, so the
    # clean fraction has mean 0.8 exactly and variance 14 * 0.8 * 0.2 * (6/19) / 14**2
    n_seeds = 200
    curve = removal_curve(
        ValuationResult(VALUES), clean_fraction, fractions=(0.3,), n_seeds=n_seeds, which="random"
    )
    sd = math.sqrt(14 * 0.8 * 0.2 * (6 / 19)) / 14
    assert curve.strategies == ("random",)
    assert abs(curve.mean["random"][0] - 0.8) < 4 * sd / math.sqrt(n_seeds)
    assert curve.scores["random"].std(ddof=1) == pytest.approx(sd, rel=0.3)


def test_random_removals_are_nested_and_reproducible():
    calls: list[frozenset[int]] = []

    def recording(positions: np.ndarray) -> float:
        calls.append(frozenset(positions.tolist()))
        return clean_fraction(positions)

    def run(seed: int) -> tuple[np.ndarray, list[frozenset[int]]]:
        calls.clear()
        curve = removal_curve(
            ValuationResult(VALUES),
            recording,
            fractions=(0.1, 0.3, 0.5),
            n_seeds=2,
            seed=seed,
            which=("random",),
        )
        return curve.scores["random"], list(calls)

    scores, sets = run(0)
    assert len(sets) == 6  # 3 fractions x 2 seeds, in order of fraction per seed
    for first in (0, 3):
        kept = sets[first : first + 3]
        assert [len(k) for k in kept] == [18, 14, 10]
        assert kept[0] > kept[1] > kept[2]
    assert sets[0:3] != sets[3:6]  # another seed, another draw
    again, sets_again = run(0)
    assert np.array_equal(scores, again) and sets == sets_again
    assert run(1)[1] != sets


class CleanFraction(BaseEstimator):
    """x[:, 0] is 1 for clean points: score = their share, plus noise from numpy's global RNG."""

    fits = 0

    def __init__(self, noise: float = 0.0) -> None:
        self.noise = noise

    def fit(self, x: np.ndarray, y: np.ndarray) -> CleanFraction:
        CleanFraction.fits += 1
        self.score_ = float(np.mean(x[:, 0])) + self.noise * float(np.random.standard_normal())
        return self


def _model_utility(noise: float = 0.0, **kw) -> ModelUtility:
    scorer = SupervisedScorer(
        lambda m, x, y: m.score_, (np.zeros((1, 1)), np.zeros(1)), name="clean share"
    )
    return ModelUtility(CleanFraction(noise), scorer, **kw)


def _train(indices=None) -> Dataset:
    x = (~MASK).astype(np.float64)[:, None]
    return Dataset(x, np.zeros(N), indices=indices)


def test_removal_curve_through_a_model_utility_with_any_result_order():
    # data indices are not positions, and the result comes sorted by value, descending
    train = _train(indices=np.arange(N) * 3 + 100)
    r = ValuationResult(VALUES, indices=train.indices).sort(reverse=True)
    for utility, given in ((_model_utility(), train), (_model_utility().with_dataset(train), None)):
        curve = removal_curve(r, utility, given, fractions=FRACTIONS, n_seeds=2)
        np.testing.assert_allclose(curve.mean["lowest"], LOWEST, rtol=1e-15)
        np.testing.assert_allclose(curve.mean["highest"], HIGHEST, rtol=1e-15)
        assert curve.score_name == "clean share"


def test_removal_curve_varies_the_fits_random_state_per_seed_and_fits_each_subset_once():
    train = _train()
    CleanFraction.fits = 0
    curve = removal_curve(
        ValuationResult(VALUES),
        _model_utility(noise=0.05),
        train,
        fractions=FRACTIONS,
        n_seeds=5,
        seed=10,
    )
    # per seed one fit at fraction 0 for all strategies, then 3 x 3 distinct subsets
    assert CleanFraction.fits == 5 * (1 + 3 * 3)
    for s in range(5):
        u = _model_utility(noise=0.05, random_state=10 + s).with_dataset(train)
        kept = np.sort(np.argsort(VALUES, kind="stable")[2:])  # the 2 lowest removed
        assert curve.scores["lowest"][s, 1] == u(kept)
        assert curve.scores["lowest"][s, 0] == curve.scores["highest"][s, 0]
        assert curve.scores["lowest"][s, 0] == curve.scores["random"][s, 0]
    assert len(np.unique(curve.scores["lowest"][:, 1])) == 5  # other seeds, other noise
    sc = curve.scores["highest"]
    half = T_975_4 * sc.std(axis=0, ddof=1) / math.sqrt(5)
    np.testing.assert_allclose(curve.mean["highest"], sc.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(curve.low["highest"], sc.mean(axis=0) - half, rtol=1e-12)
    np.testing.assert_allclose(curve.high["highest"], sc.mean(axis=0) + half, rtol=1e-12)


def test_removal_curve_with_one_seed_has_no_interval():
    curve = removal_curve(ValuationResult(VALUES), clean_fraction, fractions=FRACTIONS, n_seeds=1)
    np.testing.assert_allclose(curve.mean["lowest"], LOWEST, rtol=1e-15)
    assert np.isnan(curve.low["lowest"]).all() and np.isnan(curve.high["lowest"]).all()


def test_removal_curve_warns_when_fits_fail():
    class FailsOnSmallSets(CleanFraction):
        def fit(self, x, y):
            if len(x) < 18:
                raise RuntimeError("too few points")
            return super().fit(x, y)

    scorer = SupervisedScorer(lambda m, x, y: m.score_, (np.zeros((1, 1)), np.zeros(1)))
    utility = ModelUtility(FailsOnSmallSets(), scorer)
    with pytest.warns(FailedFitsWarning, match=r"^4 fits of the removal curve failed"):
        curve = removal_curve(
            ValuationResult(VALUES),
            utility,
            _train(),
            fractions=(0.0, 0.2),
            n_seeds=2,
            which=("lowest", "highest"),
        )
    assert np.all(curve.scores["lowest"][:, 1] == 0.0)  # the scorer's default


def test_removal_curve_with_logistic_regression_equals_a_fit_on_the_clean_points():
    from sklearn.datasets import make_blobs
    from sklearn.linear_model import LogisticRegression

    x, y = make_blobs(n_samples=120, centers=[[-2, 0], [2, 0]], random_state=0)
    train, test = Dataset(x[:60], y[:60]), Dataset(x[60:], y[60:])
    noisy, mask = flip_labels(train, 0.2, seed=0)
    result = ValuationResult(np.where(mask, -1.0, 1.0))  # values that know the flipped points
    utility = ModelUtility(LogisticRegression(), SupervisedScorer("accuracy", test))
    curve = removal_curve(result, utility, noisy, fractions=(0.0, 0.2), n_seeds=2)
    clean_fit = LogisticRegression().fit(noisy.x[~mask], noisy.y[~mask])
    assert curve.mean["lowest"][1] == clean_fit.score(test.x, test.y)
    assert curve.mean["lowest"][1] > curve.mean["highest"][1]


def test_removal_curve_refuses_bad_input():
    r = ValuationResult(VALUES)
    with pytest.raises(DvlValueError, match=r"^fractions must be in \[0, 1\).*\[1\.0\]"):
        removal_curve(r, clean_fraction, fractions=(0.0, 1.0))
    with pytest.raises(DvlValueError, match=r"^fractions must be in \[0, 1\).*-0\.1"):
        removal_curve(r, clean_fraction, fractions=(-0.1, 0.2))
    with pytest.raises(DvlValueError, match=r"^fractions \[0\.98\] remove all 20 training points"):
        removal_curve(r, clean_fraction, fractions=(0.5, 0.98))
    with pytest.raises(DvlValueError, match=r"^fractions is empty"):
        removal_curve(r, clean_fraction, fractions=())
    with pytest.raises(DvlValueError, match=r"^result must value every point of the training"):
        removal_curve(r[:19], clean_fraction, train=_train())
    with pytest.raises(DvlValueError, match=r"^result must value every point of the training"):
        removal_curve(r[1:], clean_fraction)  # a plain callable's positions are 0..n-1
    with pytest.raises(DvlValueError, match=r"^result must value every point of the training"):
        removal_curve(ValuationResult(VALUES, indices=np.arange(N) + 1), _model_utility(), _train())
    with pytest.raises(DvlValueError, match=r"^result has 1 values that are NaN"):
        removal_curve(ValuationResult(np.r_[np.nan, VALUES[1:]]), clean_fraction)
    with pytest.raises(DvlValueError, match=r"^utility is not bound to training data; pass train"):
        removal_curve(r, _model_utility())
    with pytest.raises(DvlValueError, match=r"^which must name distinct strategies"):
        removal_curve(r, clean_fraction, which=("lowest", "best"))
    with pytest.raises(DvlValueError, match=r"^which must name distinct strategies"):
        removal_curve(r, clean_fraction, which=())
    with pytest.raises(DvlValueError, match=r"^n_seeds must be an integer >= 1"):
        removal_curve(r, clean_fraction, n_seeds=0)
    with pytest.raises(DvlTypeError, match=r"^seed must be an int >= 0"):
        removal_curve(r, clean_fraction, seed=None)
    with pytest.raises(DvlValueError, match=r"^seed must be an int >= 0; got -1"):
        removal_curve(r, clean_fraction, seed=-1)
    with pytest.raises(DvlTypeError, match=r"^train must be the training Dataset"):
        removal_curve(r, clean_fraction, train=(np.zeros((N, 1)), np.zeros(N)))
