"""Static plots: error bars at the right confidence, image grids of the extreme points."""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from dvl_jupyter.plots import (
    figure_to_png,
    plain_text,
    plot_image_grid,
    plot_result_errors,
    rank_order,
)
from dvl_jupyter.valuation.dataset import Dataset

Z_90 = 1.6448536269514722  # norm.ppf(0.95), written out so a wrong quantile fails the test
Z_95 = 1.959963984540054  # norm.ppf(0.975)


@dataclass
class FakeResult:
    """Stand-in for ValuationResult with the attributes the plots read."""

    values: np.ndarray
    stderr: np.ndarray
    indices: np.ndarray = field(default=None)  # type: ignore[assignment]
    names: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        self.stderr = np.asarray(self.stderr, dtype=np.float64)
        if self.indices is None:
            self.indices = np.arange(len(self.values), dtype=np.int64)
        if self.names is None:
            self.names = np.array([f"p{i}" for i in self.indices], dtype=str)


@pytest.fixture(autouse=True)
def _agg_and_close():
    backend = matplotlib.get_backend()
    plt.switch_backend("Agg")
    yield
    plt.close("all")
    plt.switch_backend(backend)


def _result4() -> FakeResult:
    return FakeResult(
        values=[0.1, -0.2, 0.3, 0.05],
        stderr=[0.01, 0.02, 0.0, 0.05],
        names=np.array(["a", "b", "c", "d"]),
    )


# ---- plot_result_errors -------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "z"), [(0.1, Z_90), (0.05, Z_95)])
def test_error_bars_are_normal_intervals(level, z):
    result = _result4()
    ax = Figure().subplots()
    out = plot_result_errors(result, level=level, ax=ax)
    assert out is ax
    containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(containers) == 1
    data_line, _caps, (bars,) = containers[0].lines
    np.testing.assert_array_equal(data_line.get_xdata(), [0, 1, 2, 3])
    np.testing.assert_array_equal(data_line.get_ydata(), result.values)
    segments = bars.get_segments()
    assert len(segments) == 4
    for i, seg in enumerate(segments):
        (x0, lo), (x1, hi) = seg
        assert x0 == x1 == i
        np.testing.assert_allclose((hi - lo) / 2, z * result.stderr[i], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose((hi + lo) / 2, result.values[i], rtol=1e-12)


def test_tick_labels_are_names_in_the_given_order_and_texts_are_set():
    result = _result4()
    ax = plot_result_errors(
        result, ax=Figure().subplots(), title="Low values", xlabel="Image", ylabel="Shapley"
    )
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(ax.get_xticks(), [0, 1, 2, 3])
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("Low values", "Image", "Shapley")


def test_without_ax_draws_on_a_new_pyplot_figure():
    ax = plot_result_errors(_result4())
    assert ax.figure.number in plt.get_fignums()
    assert ax.get_title() == "" and ax.get_ylabel() == ""


@pytest.mark.parametrize("level", [0, 1, -0.1, 1.5, "0.05", None])
def test_bad_level_is_a_clear_error(level):
    with pytest.raises(ValueError, match="level must be a number strictly between 0 and 1"):
        plot_result_errors(_result4(), level=level, ax=Figure().subplots())


def test_mismatched_result_arrays_are_reported():
    bad = FakeResult(values=[1.0, 2.0], stderr=[0.1], names=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="same length"):
        plot_result_errors(bad, ax=Figure().subplots())


# ---- plot_image_grid ----------------------------------------------------------------------------


def _images(n: int = 6) -> np.ndarray:
    """n distinct 8x8 images: image i is an index ramp plus i."""
    return (np.arange(64, dtype=np.float32).reshape(8, 8)[None] + np.arange(n)[:, None, None]) / 70


def _grid_dataset(x) -> Dataset:
    n = len(x)
    return Dataset(x, np.arange(n, dtype=np.int64) + 10, names=[f"img{i}" for i in range(n)])


def _grid_result() -> FakeResult:
    # position:           0     1     2     3     4     5
    return FakeResult(
        values=[0.30, -0.10, 0.05, 0.50, -0.40, 0.20],
        stderr=[0.01, 0.02, 0.03, 0.04, 0.05, 0.06],
        names=np.array([f"img{i}" for i in range(6)]),
    )


def _image_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.images]


# ranks of _grid_result: 1 = position 3 (0.5), 2 = 0, 3 = 5, 4 = 2, 5 = 1, 6 = 4 (-0.4)
RANK = {3: 1, 0: 2, 5: 3, 2: 4, 1: 5, 4: 6}


@pytest.mark.parametrize(("which", "order", "expected"), [
    ("bottom", "extreme", [4, 1, 2]), ("top", "extreme", [3, 0, 5]),
    ("bottom", "rank", [2, 1, 4]), ("top", "rank", [3, 0, 5]),
])
def test_grid_shows_k_extreme_points_with_rank_label_and_interval(which, order, expected):
    x = _images()[:, None]  # (N, 1, 8, 8)
    result = _grid_result()
    fig = plot_image_grid(result, _grid_dataset(x), k=3, which=which, order=order, fig=Figure())
    axes = _image_axes(fig)
    assert len(axes) == 3
    for ax, pos in zip(axes, expected, strict=True):
        (img,) = ax.images
        np.testing.assert_array_equal(img.get_array(), x[pos, 0])
        assert img.get_cmap().name == "gray"
        assert ax.get_title() == f"img{pos}"
        v, s = result.values[pos], result.stderr[pos]
        # "±" is the half-width of the 95% interval, as in every view
        assert ax.get_xlabel() == f"#{RANK[pos]} · label {pos + 10}\n{v:.3g} ± {Z_95 * s:.2g}"
    word = "lowest" if which == "bottom" else "highest"
    assert fig._suptitle.get_text() == f"3 {word} valued points (value ± 95% CI)"


def test_grid_intervals_follow_the_level():
    result = _grid_result()
    fig = plot_image_grid(result, _grid_dataset(_images()), k=1, which="top", level=0.1,
                          fig=Figure())
    (ax,) = _image_axes(fig)
    assert ax.get_xlabel().endswith(f"0.5 ± {Z_90 * 0.04:.2g}")
    assert fig._suptitle.get_text() == "1 highest valued points (value ± 90% CI)"


def test_grid_ties_follow_the_rank_rule_and_skip_missing_values():
    # positions 0..5 hold data indices 5..0: the tie at 0.2 goes to the lower index
    values = [0.2, 0.2, np.nan, 0.2, -0.1, 0.0]
    result = FakeResult(values=values, stderr=[0.0] * 6, indices=np.arange(5, -1, -1))
    x = _images()
    ds = _grid_dataset(x)
    top = plot_image_grid(result, ds, k=3, which="top", fig=Figure())
    assert [ax.get_title() for ax in _image_axes(top)] == ["p2", "p4", "p5"]
    np.testing.assert_array_equal(_image_axes(top)[0].images[0].get_array(), x[2])
    bottom = plot_image_grid(result, ds, k=6, which="bottom", fig=Figure())
    # 5 ranked points (the NaN is not ranked), lowest first: the exact reverse
    assert [ax.get_title() for ax in _image_axes(bottom)] == ["p1", "p0", "p5", "p4", "p2"]
    nothing = FakeResult(values=[np.nan], stderr=[0.0])
    with pytest.raises(ValueError, match="no finite values"):
        plot_image_grid(nothing, ds, fig=Figure())


def test_rank_order_is_highest_first_ties_by_index():
    values = np.array([0.1, 0.3, 0.1, np.nan, 0.3, -np.inf])
    indices = np.array([9, 4, 2, 1, 7, 0])
    np.testing.assert_array_equal(rank_order(values, indices), [1, 4, 2, 0])
    np.testing.assert_array_equal(rank_order([], []), [])


@pytest.mark.parametrize(("text", "drawn"), [
    ("img_$1_$2.png", "img_$1_$2.png"),
    ("$x^2$", "$x^2$"),
    ("a < b & c", "a < b & c"),
    ("two\nlines", "two\nlines"),
    ("tab\there", "tab here"),
    ("dog 🐶", "dog [dog face]"),
    ("thumbs 👍🏽", "thumbs [thumbs up sign]"),  # the skin tone modifier is dropped
    ("smile 😀", "smile 😀"),  # DejaVu Sans has this one
])
def test_plain_text_is_what_the_fonts_can_draw(text, drawn):
    assert plain_text(text) == drawn


def test_names_with_dollars_and_emoji_plot_literally_without_warnings():
    import warnings

    result = FakeResult(values=[0.1, 0.2, 0.3], stderr=[0.01] * 3,
                        names=np.array(["img_$1_$2.png", "🐶 <&>", "a\nb"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ax = plot_result_errors(result, ax=Figure().subplots(), title="$title$",
                                ylabel="TMC-$hapley value")
        figure_to_png(ax.figure, dpi=40)
    labels = ax.get_xticklabels()
    assert [t.get_text() for t in labels] == ["img_$1_$2.png", "[dog face] <&>", "a\nb"]
    assert all(t.get_parse_math() is False for t in [*labels, ax.title, ax.yaxis.label])
    assert ax.get_title() == "$title$"


def test_grid_layout_with_ncols_and_k_larger_than_result():
    ds, result = _grid_dataset(_images()), _grid_result()
    fig = plot_image_grid(result, ds, k=4, ncols=3, fig=Figure(), title="Custom")
    assert len(fig.axes) == 6 and len(_image_axes(fig)) == 4
    assert sum(not ax.axison for ax in fig.axes) == 2
    assert fig._suptitle.get_text() == "Custom"
    fig = plot_image_grid(result, ds, k=50, fig=Figure())
    assert len(_image_axes(fig)) == 6


@pytest.mark.parametrize(
    ("make_x", "image_shape"),
    [
        (lambda: _images(), (8, 8)),  # (N, H, W)
        (lambda: _images().reshape(6, 64), (8, 8)),  # flat, square
        (lambda: np.repeat(_images()[:, None], 3, axis=1), (8, 8, 3)),  # (N, 3, H, W)
        (lambda: torch.from_numpy(_images()[:, None]), (8, 8)),  # torch tensor
    ],
)
def test_grid_accepts_image_layouts(make_x, image_shape):
    fig = plot_image_grid(_grid_result(), _grid_dataset(make_x()), k=2, fig=Figure())
    axes = _image_axes(fig)
    assert len(axes) == 2
    shown = np.asarray(axes[0].images[0].get_array())
    assert shown.shape == image_shape
    gray = shown[..., 0] if shown.ndim == 3 else shown
    np.testing.assert_allclose(gray, _images()[4])  # the lowest value is at position 4


def test_grid_uses_data_indices_of_a_sliced_dataset():
    x = _images()[:, None]
    sliced = _grid_dataset(x)[2:]  # positions 0..3 hold data indices 2..5
    result = FakeResult(
        values=[0.3, -0.1, 0.2, 0.0], stderr=[0.0] * 4, indices=np.array([2, 3, 4, 5])
    )
    fig = plot_image_grid(result, sliced, k=1, fig=Figure())
    (ax,) = _image_axes(fig)
    np.testing.assert_array_equal(ax.images[0].get_array(), x[3, 0])
    assert ax.get_xlabel().startswith("#4 · label 13\n")  # rank 4 of the 4 values

    stray = FakeResult(values=[0.1], stderr=[0.0], indices=np.array([0]))
    with pytest.raises(ValueError, match=r"result indices \[0\] are not among"):
        plot_image_grid(stray, sliced, fig=Figure())


def test_grid_without_fig_makes_a_pyplot_figure_and_renders_to_png():
    fig = plot_image_grid(_grid_result(), _grid_dataset(_images()), k=5)
    assert fig.number in plt.get_fignums()
    png = figure_to_png(fig, dpi=40)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 500


def test_figure_to_png_works_without_pyplot():
    fig = Figure()
    plot_result_errors(_result4(), ax=fig.subplots())
    small, large = figure_to_png(fig, dpi=30), figure_to_png(fig, dpi=90)
    assert small.startswith(b"\x89PNG") and large.startswith(b"\x89PNG")
    assert len(large) > len(small)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"which": "middle"}, 'which must be "bottom" or "top"'),
        ({"k": 0}, "k must be an integer >= 1"),
        ({"k": 2.5}, "k must be an integer >= 1"),
        ({"ncols": 0}, "ncols must be an integer >= 1"),
    ],
)
def test_grid_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_image_grid(_grid_result(), _grid_dataset(_images()), fig=Figure(), **kwargs)


@pytest.mark.parametrize("x", [np.zeros((6, 10)), np.zeros((6, 2, 8, 8)), np.zeros(6)])
def test_grid_rejects_non_image_data_and_says_what_is_accepted(x):
    ds = Dataset(x, np.zeros(6, dtype=np.int64))
    with pytest.raises(ValueError, match=r"accepted shapes are \(N, H, W\), \(N, 1, H, W\)"):
        plot_image_grid(_grid_result(), ds, fig=Figure())


def test_grid_rejects_an_empty_result():
    empty = FakeResult(values=[], stderr=[])
    with pytest.raises(ValueError, match="result is empty"):
        plot_image_grid(empty, _grid_dataset(_images()), fig=Figure())


def test_plots_accept_a_real_valuation_result():
    """Against the engine's ValuationResult (skipped until valuation/result.py exists)."""
    result_mod = pytest.importorskip("dvl_jupyter.valuation.result")
    result = result_mod.ValuationResult.zeros(
        np.arange(6, dtype=np.int64), names=np.array([f"img{i}" for i in range(6)])
    )
    rng = np.random.default_rng(0)
    for _ in range(5):
        result.update(np.arange(6), _grid_result().values + rng.normal(0, 0.01, size=6))
    bottom = result.sort()[:3]
    ax = plot_result_errors(bottom, ax=Figure().subplots())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["img4", "img1", "img2"]
    (bars,) = ax.containers[0].lines[2]
    half = [(hi - lo) / 2 for (_, lo), (_, hi) in bars.get_segments()]
    np.testing.assert_allclose(half, Z_95 * np.asarray(bottom.stderr), rtol=1e-12)
    fig = plot_image_grid(result, _grid_dataset(_images()), k=2, which="top", fig=Figure())
    assert [ax.get_title() for ax in _image_axes(fig)] == ["img3", "img0"]


# ---- plot_removal_curve --------------------------------------------------------------------------

from dvl_jupyter.plots import plot_removal_curve  # noqa: E402 - this section was appended


def _curve(n_seeds: int = 5):
    from dvl_jupyter.valuation.evaluation import RemovalCurve

    fractions = np.array([0.0, 0.1, 0.2])
    mean = {"lowest": np.array([0.8, 0.85, 0.9]), "random": np.array([0.8, 0.79, 0.78])}
    width = 0.01 if n_seeds > 1 else np.nan
    return RemovalCurve(
        fractions=fractions,
        n_removed=np.array([0, 2, 4]),
        scores={k: np.tile(v, (n_seeds, 1)) for k, v in mean.items()},
        mean=mean,
        low={k: v - width for k, v in mean.items()},
        high={k: v + width for k, v in mean.items()},
        n_points=20,
        score_name="accuracy",
        seed=0,
    )


def test_plot_removal_curve_draws_each_mean_and_its_interval():
    fig = Figure()
    ax = fig.subplots()
    curve = _curve()
    assert plot_removal_curve(curve, ax=ax, title="removal") is ax
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == [
        "lowest values removed first",
        "random points removed",
    ]
    for line, strategy in zip(lines, ("lowest", "random"), strict=True):
        assert np.array_equal(line.get_xdata(), curve.fractions)
        assert np.array_equal(line.get_ydata(), curve.mean[strategy])
    bands = ax.collections
    assert len(bands) == 2
    for band, strategy in zip(bands, ("lowest", "random"), strict=True):
        ys = band.get_paths()[0].vertices[:, 1]
        assert ys.min() == pytest.approx(curve.low[strategy].min())
        assert ys.max() == pytest.approx(curve.high[strategy].max())
    assert ax.get_xlabel() == "fraction of training points removed"
    assert ax.get_ylabel() == "accuracy"
    assert ax.get_title() == "removal"
    assert ax.get_legend().get_title().get_text() == "mean, 95% interval over 5 seeds"


def test_plot_removal_curve_without_axes_or_seeds_to_spread():
    ax = plot_removal_curve(_curve(n_seeds=1), ylabel="test accuracy")
    assert ax.figure is plt.gcf()
    assert len(ax.collections) == 0  # one seed: no interval to draw
    assert ax.get_ylabel() == "test accuracy"
    assert ax.get_legend().get_title().get_text() == "mean"


def test_plot_removal_curve_refuses_what_is_not_a_curve():
    from dvl_jupyter.valuation import DvlTypeError

    with pytest.raises(DvlTypeError, match=r"^curve must be a RemovalCurve"):
        plot_removal_curve(_result4())


def test_removal_curve_labels_are_drawn_literally():
    import warnings
    from types import SimpleNamespace

    curve = SimpleNamespace(strategies=("lowest", "$weird$"), fractions=[0.0, 0.5],
                            mean={"lowest": [0.9, 0.8], "$weird$": [0.9, 0.7]},
                            low={"lowest": [0.85, 0.75], "$weird$": [0.85, 0.65]},
                            high={"lowest": [0.95, 0.85], "$weird$": [0.95, 0.75]},
                            n_seeds=2, score_name="acc_$1$")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ax = plot_removal_curve(curve, ax=Figure().subplots(), title="img_$1_$2 🐶")
        figure_to_png(ax.figure, dpi=40)
    assert ax.get_ylabel() == "acc_$1$" and ax.yaxis.label.get_parse_math() is False
    assert ax.get_title() == "img_$1_$2 [dog face]"
    texts = ax.get_legend().get_texts()
    assert "$weird$" in [t.get_text() for t in texts]
    assert all(t.get_parse_math() is False for t in texts)
