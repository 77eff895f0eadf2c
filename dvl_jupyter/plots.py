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
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dvl_jupyter.valuation.exceptions import DvlValueError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, FigureBase

    from dvl_jupyter.valuation.dataset import Dataset
    from dvl_jupyter.valuation.result import ValuationResult

__all__ = ["plot_result_errors", "plot_image_grid", "figure_to_png"]

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
    ``result.sort()[:10]``), with ``result.names`` as x tick labels.

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
        label=f"value ± {100 * (1 - level):g}% CI",
    )
    ax.set_xticks(positions, labels=names, rotation=60, ha="right", rotation_mode="anchor")
    if title is not None:
        ax.set_title(title)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
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
) -> FigureBase:
    """Show the images of the ``k`` lowest (``"bottom"``) or highest (``"top"``) valued points.

    Looking at the extremes is how one finds mislabelled or atypical training points (low
    values) and the most helpful ones (high values). Under each image: its label, and its value
    ± standard error, so that the ranking is read with its uncertainty.

    Args:
        result: A ``ValuationResult`` (``values``, ``stderr``, ``indices``, ``names``); its
            ``indices`` are passed to ``dataset.data()`` to fetch the points.
        dataset: The training ``Dataset`` that was valued. Its ``x`` must be images, see
            the error message for the shapes accepted; torch tensors are moved to the cpu.
        k: How many points to show (all of them if ``result`` has fewer).
        which: ``"bottom"`` for the lowest values (ascending), ``"top"`` for the highest
            (descending).
        ncols: Images per row; at most 5 by default.
        fig: Figure (or SubFigure) to draw into; a new pyplot figure when None.
        title: Figure title; by default says which points are shown.

    Returns:
        The figure drawn into.
    """
    if which not in ("bottom", "top"):
        raise DvlValueError(f'which must be "bottom" or "top", got {which!r}')
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DvlValueError(f"k must be an integer >= 1, got {k!r}")
    if ncols is not None and (
        isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1
    ):
        raise DvlValueError(f"ncols must be an integer >= 1 or None, got {ncols!r}")

    values = np.asarray(result.values, dtype=np.float64)
    stderr = np.asarray(result.stderr, dtype=np.float64)
    indices = np.asarray(result.indices)
    names = np.asarray(result.names)
    if len(values) == 0:
        raise DvlValueError("result is empty: there are no points to show")

    # Stable sorts, so ties keep the result's order; NaNs go last in both directions.
    order = np.argsort(values if which == "bottom" else -values, kind="stable")
    chosen = order[: int(k)]
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
        ax.set_title(str(names[pos]), fontsize="small")
        label = "" if labels is None else f"label {labels[i]}\n"
        ax.set_xlabel(f"{label}{values[pos]:.3g} ± {stderr[pos]:.2g}", fontsize="small")

    if title is None:
        title = f"{n} {'lowest' if which == 'bottom' else 'highest'} valued points"
    if title:
        fig.suptitle(title)
    return fig


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
    ax.legend(title=f"mean{band}", fontsize="small", title_fontsize="small")
    ax.set_xlabel(xlabel if xlabel is not None else "fraction of training points removed")
    ax.set_ylabel(ylabel if ylabel is not None else str(getattr(curve, "score_name", "score")))
    if title is not None:
        ax.set_title(title)
    return ax


__all__.append("plot_removal_curve")
