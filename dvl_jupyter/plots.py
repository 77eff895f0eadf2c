"""Static plots of valuation results (matplotlib only, so they work in scripts, CI and notebooks).

These are the plots of the reference notebook: values with normal confidence intervals, and the
images of the lowest / highest valued training points. They are also what a saved notebook shows
where the JupyterLab extension is not installed (through :func:`figure_to_png`).

When no ``ax`` / ``fig`` is given a new figure is made with ``matplotlib.pyplot``, so that
``plt.show()`` works as in the reference notebook. To render without touching pyplot's global
state (e.g. in a ``_repr_mimebundle_``), pass axes or a figure made with
``matplotlib.figure.Figure()``.
"""

from __future__ import annotations

import io
import math
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dvl_jupyter.valuation.exceptions import DvlValueError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, FigureBase

    from dvl_jupyter.valuation.dataset import Dataset
    from dvl_jupyter.valuation.result import ValuationResult

__all__ = ["plot_result_errors", "plot_image_grid", "figure_to_png", "plain_text", "rank_order"]

_ACCEPTED_SHAPES = (
    "(N, H, W), (N, 1, H, W) for grayscale, (N, 3, H, W) or (N, 4, H, W) for RGB(A), "
    "or flat (N, D) vectors with D a perfect square"
)


def _normal_z(level: float) -> float:
    """Two-sided normal quantile for a (1 - level) interval; ``level`` is checked here."""
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)):
        raise DvlValueError(f"level must be a number strictly between 0 and 1, got {level!r}")
    if not 0.0 < float(level) < 1.0:
        raise DvlValueError(f"level must be a number strictly between 0 and 1, got {level!r}")
    from scipy.stats import norm

    return float(norm.ppf(1.0 - float(level) / 2.0))


def rank_order(values: Any, indices: Any) -> np.ndarray:
    """Positions of the points with a finite value, in rank order (rank 1 first).

    The one tie rule of every display: rank 1 is the highest value, and equal values are
    ranked by data index, the lower index first, so ranks are ordinal (no two points share
    one) and do not depend on how the result happens to be ordered. Points whose value is
    not finite have no rank and are left out. "Low to high" is the exact reverse of this
    order, so a point keeps its rank whichever way a view lists the points.

    Args:
        values: The values, one per point.
        indices: The data index of each point (distinct, as in a ``ValuationResult``).

    Returns:
        Integer positions into ``values``, highest value first.
    """
    values = np.asarray(values, dtype=np.float64)
    indices = np.asarray(indices)
    finite = np.flatnonzero(np.isfinite(values))
    # lexsort sorts by the last key first: value descending, then index ascending
    return finite[np.lexsort((indices[finite], -values[finite]))]


_GENERIC_FAMILIES = ("serif", "sans-serif", "cursive", "fantasy", "monospace")


@lru_cache(maxsize=8)
def _drawable(families: tuple[str, ...]) -> frozenset[int]:
    """Code points that the fonts of ``families`` have glyphs for (matplotlib falls back
    from one family of the list to the next, so their union is what can be drawn)."""
    from matplotlib import font_manager

    codes: set[int] = set()
    for family in families:
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=family),
                                         fallback_to_default=False)
        except ValueError:  # not installed
            continue
        codes.update(font_manager.get_font(path).get_charmap())
    return frozenset(codes)


def plain_text(text: Any) -> str:
    """``text`` as a string that matplotlib draws literally, character for character.

    Give it to a matplotlib ``Text`` together with ``parse_math=False`` (so ``$`` never
    starts mathtext: a name such as ``img_$1_$2.png`` would otherwise be parsed as a formula,
    and fail). Characters that no configured font can draw (emoji, mostly) would come out as
    empty boxes with a warning; they are written as their Unicode name instead, e.g.
    ``[dog face]``, and invisible format characters that cannot be drawn (zero-width
    joiners, variation selectors, skin-tone modifiers) are dropped. Newlines stay; other
    control characters become spaces.
    """
    from matplotlib import rcParams

    families: list[str] = []
    for family in rcParams["font.family"]:
        families.extend(rcParams[f"font.{family}"] if family in _GENERIC_FAMILIES else [family])
    drawable = _drawable(tuple(families))
    out = []
    for ch in str(text):
        category = unicodedata.category(ch)
        if ch == "\n" or category in ("Zl", "Zp"):
            out.append("\n")
        elif category == "Cc":
            out.append(" ")
        elif ord(ch) in drawable:
            out.append(ch)
        elif category in ("Mn", "Me", "Cf", "Sk"):
            continue
        else:
            out.append(f"[{unicodedata.name(ch, f'U+{ord(ch):04X}').lower()}]")
    return "".join(out)


def plot_result_errors(
    result: ValuationResult,
    level: float = 0.05,
    ax: Axes | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> Axes:
    """Plot each value as a point with the error bar of its normal ``(1 - level)`` interval.

    Monte Carlo estimates are only useful with their uncertainty: two points whose intervals
    overlap cannot be told apart, so the bars are the main message of this plot. The half-width
    is ``z * stderr`` with ``z = norm.ppf(1 - level / 2)`` (1.96 for the default 95%).

    Points are drawn in the order of ``result`` (sort or slice it first, e.g.
    ``result.sort()[:10]``), with ``result.names`` as x tick labels. Every text is drawn as
    it is (see :func:`plain_text`): a ``$`` in a name is a dollar sign, not mathtext.

    Args:
        result: A ``ValuationResult`` (anything with ``values``, ``stderr`` and ``names``).
        level: Significance level, strictly between 0 and 1.
        ax: Axes to draw on; a new pyplot figure when None.
        title, xlabel, ylabel: Set on the axes when given.

    Returns:
        The axes drawn on.
    """
    z = _normal_z(level)
    values = np.asarray(result.values, dtype=np.float64)
    stderr = np.asarray(result.stderr, dtype=np.float64)
    names = [str(n) for n in np.asarray(result.names)]
    if not (len(values) == len(stderr) == len(names)):
        raise DvlValueError(
            "result.values, result.stderr and result.names must have the same length, got "
            f"{len(values)}, {len(stderr)} and {len(names)}"
        )

    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()

    positions = np.arange(len(values))
    ax.errorbar(
        positions,
        values,
        yerr=z * stderr,
        fmt="o",
        capsize=3,
        label=f"value ± {_percent(level)} CI",
    )
    ax.set_xticks(positions, labels=[plain_text(n) for n in names], rotation=60, ha="right",
                  rotation_mode="anchor", parse_math=False)
    if title is not None:
        ax.set_title(plain_text(title), parse_math=False)
    if xlabel is not None:
        ax.set_xlabel(plain_text(xlabel), parse_math=False)
    if ylabel is not None:
        ax.set_ylabel(plain_text(ylabel), parse_math=False)
    return ax


def _to_numpy(a: Any) -> np.ndarray:
    """Torch tensors (on any device) and array-likes to numpy, without importing torch."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _positions_of(dataset: Dataset, wanted: np.ndarray) -> np.ndarray:
    """Positions in ``dataset`` of the data indices ``wanted`` (what results report).

    ``Dataset.data()`` takes positions, while a result holds data indices; they differ for a
    sliced dataset (``train[100:]`` keeps the original indices). Datasets without ``indices``
    are taken to be indexed by position.
    """
    own = getattr(dataset, "indices", None)
    if own is None:
        return wanted
    own = np.asarray(own)
    if len(own) == 0:
        raise DvlValueError("dataset is empty: it cannot hold the points of this result")
    sorter = np.argsort(own, kind="stable")
    loc = np.clip(np.searchsorted(own, wanted, sorter=sorter), 0, len(own) - 1)
    found = own[sorter[loc]] == wanted
    if not found.all():
        missing = wanted[~found][:5].tolist()
        raise DvlValueError(
            f"result indices {missing} are not among the dataset's indices; pass the dataset "
            "that was valued (the training set given to fit)"
        )
    return sorter[loc]


def _as_images(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """Bring a batch of images to (N, H, W) (grayscale) or (N, H, W, C) (colour).

    Returns the images and whether they are grayscale.
    """
    shape = tuple(x.shape)
    if x.ndim == 2:
        side = math.isqrt(shape[1])
        if shape[1] > 0 and side * side == shape[1]:
            return x.reshape(shape[0], side, side), True
    elif x.ndim == 3:
        return x, True
    elif x.ndim == 4:
        if shape[1] == 1:
            return x[:, 0], True
        if shape[1] in (3, 4):
            return np.moveaxis(x, 1, -1), False
    raise DvlValueError(
        f"plot_image_grid needs image data, got x of shape {shape}; accepted shapes are "
        f"{_ACCEPTED_SHAPES}"
    )


def plot_image_grid(
    result: ValuationResult,
    dataset: Dataset,
    k: int = 10,
    which: Literal["bottom", "top"] = "bottom",
    ncols: int | None = None,
    fig: FigureBase | None = None,
    title: str | None = None,
    level: float = 0.05,
    order: Literal["extreme", "rank"] = "extreme",
) -> FigureBase:
    """Show the images of the ``k`` lowest (``"bottom"``) or highest (``"top"``) valued points.

    Looking at the extremes is how one finds mislabelled or atypical training points (low
    values) and the most helpful ones (high values). Under each image: its rank, its label,
    and its value ± the half-width of its normal ``(1 - level)`` confidence interval (95% by
    default, as in :func:`plot_result_errors`), so that the ranking is read with its
    uncertainty. Ranks follow :func:`rank_order` over the whole ``result`` (1 = highest,
    ties by data index); points without a finite value have no rank and are not shown.

    Args:
        result: A ``ValuationResult`` (``values``, ``stderr``, ``indices``, ``names``); its
            ``indices`` are passed to ``dataset.data()`` to fetch the points.
        dataset: The training ``Dataset`` that was valued. Its ``x`` must be images, see
            the error message for the shapes accepted; torch tensors are moved to the cpu.
        k: How many points to show (all of them if ``result`` has fewer).
        which: ``"bottom"`` for the lowest values, ``"top"`` for the highest.
        ncols: Images per row; at most 5 by default.
        fig: Figure (or SubFigure) to draw into; a new pyplot figure when None.
        title: Figure title; by default says which points are shown and what ± means.
        level: Significance level of the intervals, strictly between 0 and 1.
        order: ``"extreme"``: the most extreme point first (the lowest for ``"bottom"``,
            the highest for ``"top"``); ``"rank"``: by rank, highest first, in both cases
            (as the result's own display lists them).

    Returns:
        The figure drawn into.
    """
    if which not in ("bottom", "top"):
        raise DvlValueError(f'which must be "bottom" or "top", got {which!r}')
    if order not in ("extreme", "rank"):
        raise DvlValueError(f'order must be "extreme" or "rank", got {order!r}')
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DvlValueError(f"k must be an integer >= 1, got {k!r}")
    if ncols is not None and (
        isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1
    ):
        raise DvlValueError(f"ncols must be an integer >= 1 or None, got {ncols!r}")
    z = _normal_z(level)

    values = np.asarray(result.values, dtype=np.float64)
    stderr = np.asarray(result.stderr, dtype=np.float64)
    indices = np.asarray(result.indices)
    names = np.asarray(result.names)
    if len(values) == 0:
        raise DvlValueError("result is empty: there are no points to show")
    ranked = rank_order(values, indices)
    if len(ranked) == 0:
        raise DvlValueError("result has no finite values: there are no ranked points to show")
    rank = np.zeros(len(values), dtype=np.int64)
    rank[ranked] = np.arange(1, len(ranked) + 1)

    k = min(int(k), len(ranked))
    if which == "top":
        chosen = ranked[:k]
    else:
        chosen = ranked[len(ranked) - k:]
        if order == "extreme":
            chosen = chosen[::-1]
    n = len(chosen)

    x, y = dataset.data(_positions_of(dataset, indices[chosen]))
    images, gray = _as_images(_to_numpy(x))
    labels = None if y is None else _to_numpy(y)
    if len(images) != n:
        raise DvlValueError(
            f"dataset.data() returned {len(images)} points for {n} indices; is this the "
            "dataset that was valued?"
        )

    cols = int(ncols) if ncols is not None else min(n, 5)
    rows = math.ceil(n / cols)
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(1.9 * cols, 2.5 * rows + 0.5), layout="constrained")
        fig.get_layout_engine().set(h_pad=0.08)  # room between a caption and the next title
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()

    if gray:
        # One shared scale, so that brightness compares across tiles.
        imshow_kw: dict[str, Any] = {
            "cmap": "gray",
            "vmin": float(np.nanmin(images)),
            "vmax": float(np.nanmax(images)),
        }
    else:
        imshow_kw = {}
        if images.dtype.kind == "f":
            lo, hi = float(np.nanmin(images)), float(np.nanmax(images))
            if lo < 0.0 or hi > 1.0:  # imshow clips float RGB outside [0, 1]; rescale instead
                images = (images - lo) / (hi - lo) if hi > lo else np.zeros_like(images)

    for i, ax in enumerate(axes):
        if i >= n:
            ax.set_axis_off()
            continue
        pos = chosen[i]
        ax.imshow(images[i], interpolation="nearest", **imshow_kw)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(plain_text(names[pos]), fontsize="small", parse_math=False)
        label = "" if labels is None else f" · label {plain_text(labels[i])}"
        ax.set_xlabel(f"#{rank[pos]:,}{label}\n{values[pos]:.3g} ± {z * stderr[pos]:.2g}",
                      fontsize="small", parse_math=False)

    if title is None:
        title = (f"{n} {'lowest' if which == 'bottom' else 'highest'} valued points "
                 f"(value ± {_percent(level)} CI)")
    if title:
        fig.suptitle(plain_text(title), parse_math=False)
    return fig


def _percent(level: float) -> str:
    """The confidence of a significance level, as people write it: 0.05 -> "95%"."""
    return f"{100 * (1 - float(level)):g}%"


def figure_to_png(fig: Figure | FigureBase, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes, e.g. for an ``image/png`` MIME bundle entry.

    Works with figures not managed by pyplot and on headless machines (it only needs Agg).
    """
    buf = io.BytesIO()
    target = fig.figure if hasattr(fig, "figure") and fig.figure is not None else fig
    target.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


if TYPE_CHECKING:
    from dvl_jupyter.valuation.evaluation import RemovalCurve

_REMOVAL_STYLE = {
    "lowest": {"color": "tab:blue", "marker": "o", "linestyle": "-",
               "label": "lowest values removed first"},
    "highest": {"color": "tab:red", "marker": "s", "linestyle": "-",
                "label": "highest values removed first"},
    "random": {"color": "tab:gray", "marker": "^", "linestyle": "--",
               "label": "random points removed"},
}


def plot_removal_curve(
    curve: RemovalCurve,
    ax: Axes | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> Axes:
    """Plot the score after removing the lowest / highest valued points, beside random removal.

    The picture of the Data Shapley paper: each strategy's mean score over seeds against the
    fraction of training points removed, with its 95% interval as a band (no band with one
    seed). Values that mean something put the "lowest" curve above the random one and the
    "highest" curve below it; curves whose bands overlap the random one cannot be told from it.

    Parameters
    ----------
    curve
        A :class:`~dvl_jupyter.valuation.evaluation.RemovalCurve` from ``removal_curve``.
    ax
        Axes to draw on; a new pyplot figure when None.
    title, xlabel, ylabel
        Axes labels; by default the x axis says "fraction of training points removed" and the
        y axis names the score (``curve.score_name``).

    Returns
    -------
    Axes
        The axes drawn on.
    """
    from dvl_jupyter.valuation.exceptions import DvlTypeError

    strategies = tuple(getattr(curve, "strategies", ()))
    if not strategies:
        raise DvlTypeError(
            f"curve must be a RemovalCurve (from removal_curve) with at least one strategy; "
            f"got {type(curve).__name__}"
        )
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()

    x = np.asarray(curve.fractions, dtype=np.float64)
    for strategy in strategies:
        style = dict(_REMOVAL_STYLE.get(strategy, {"label": strategy}))
        line = ax.plot(x, curve.mean[strategy], **style)[0]
        low, high = np.asarray(curve.low[strategy]), np.asarray(curve.high[strategy])
        if np.isfinite(low).all() and np.isfinite(high).all():
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    n_seeds = getattr(curve, "n_seeds", None)
    band = f", 95% interval over {n_seeds} seeds" if n_seeds and n_seeds > 1 else ""
    legend = ax.legend(title=f"mean{band}", fontsize="small", title_fontsize="small")
    for text in legend.get_texts():  # strategy names as they are (see plain_text)
        text.set_text(plain_text(text.get_text()))
        text.set_parse_math(False)
    ax.set_xlabel(plain_text(xlabel if xlabel is not None else
                             "fraction of training points removed"), parse_math=False)
    ax.set_ylabel(plain_text(ylabel if ylabel is not None else
                             str(getattr(curve, "score_name", "score"))), parse_math=False)
    if title is not None:
        ax.set_title(plain_text(title), parse_math=False)
    return ax


__all__.append("plot_removal_curve")
