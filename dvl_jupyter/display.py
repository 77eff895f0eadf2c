"""How a :class:`~dvl_jupyter.valuation.result.ValuationResult` shows itself in Jupyter.

One MIME bundle, four representations, so a result reads well in every frontend:

- ``application/vnd.dvl-jupyter.valuation.v1+json``: the data for the JupyterLab renderer
  (an interactive chart), described by ``dvl_jupyter/schema/valuation.v1.json``. It stays
  bounded whatever the number of points: at most :data:`MAX_POINTS` points (the lowest and
  highest half each), the rest summarised by counts, quantiles and a histogram, and image
  thumbnails up to :data:`THUMBNAIL_BUDGET` characters (the most extreme points first).
  NaN and infinities become ``null``.
- ``text/html``: the picture (error bars of the highest and lowest values with 95% intervals
  and, when the training data are images, an image grid of the highest- and lowest-valued
  points) as an inlined PNG, and a small static table. Frontends show only the richest type
  they know and every common one (JupyterLab, the classic notebook, nbconvert, GitHub, VS
  Code, Colab) ranks HTML above PNG, so the picture lives inside the HTML, and only there:
  the bundle stores it once. Every string is escaped. Where the renderer's script bundle is
  installed, the HTML also carries it (:mod:`dvl_jupyter.standalone`): where scripts run
  (VS Code, Colab, nbconvert's HTML) it draws the same interactive chart as the JupyterLab
  extension, and where they do not (GitHub, an untrusted notebook) the static part shows.
- ``image/png``: the same picture, only when HTML is not wanted (``exclude={"text/html"}``);
  otherwise the HTML carries it.
- ``text/plain``: a summary and the extremes, for terminals and logs.

One ranking everywhere (:func:`dvl_jupyter.plots.rank_order`): rank 1 is the highest value,
equal values are ranked by data index (lower first), so ranks are ordinal and every view
(static table and text, figures, the interactive chart, table, grid and tooltip) gives a
point the same rank, whichever direction it lists them in. Points without a finite value
have no rank and come last. And "±" always means the half-width of the normal confidence
interval at the level written beside it (95% in every static view); the standard error is
always labelled "stderr".

Figures are ``matplotlib.figure.Figure`` objects, never pyplot's: displaying a result must
not open windows or leave figures behind for the inline backend to show a second time.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import unicodedata
from collections.abc import Collection, Mapping
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dvl_jupyter.valuation.utils import format_duration, is_image_data, json_safe, plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from dvl_jupyter.valuation.result import ValuationResult

__all__ = [
    "MIME_TYPE",
    "MAX_POINTS",
    "MAX_THUMBNAILS",
    "THUMBNAIL_BUDGET",
    "SHOW_CHOICES",
    "load_schema",
    "mimebundle",
    "result_figure",
    "result_html",
    "result_text",
    "thumbnails",
    "valuation_json",
]

log = logging.getLogger(__name__)

#: The MIME type of the JSON payload; the labextension renders it.
MIME_TYPE = "application/vnd.dvl-jupyter.valuation.v1+json"
#: Points carried in the JSON at most: the MAX_POINTS // 2 lowest and the rest highest.
MAX_POINTS = 1000
#: Image thumbnails carried in the JSON at most (lowest and highest shown points).
MAX_THUMBNAILS = MAX_POINTS
#: Characters of base64 thumbnails the JSON carries at most: small images (digits) get a
#: thumbnail for every listed point, large ones for the most extreme points only.
THUMBNAIL_BUDGET = 300_000
#: The same for the copy of the payload in the HTML (VS Code, Colab): the PNG beside it
#: shows the extremes already.
HTML_THUMBNAIL_BUDGET = 100_000
#: Longest side of a thumbnail, in pixels; smaller images keep their size.
THUMBNAIL_SIDE = 64
#: How many of the lowest and of the highest points the plots and the table show.
K = 10
#: What ``--show`` may pick; ``auto`` is the full display (plot, grid when images, table).
SHOW_CHOICES = ("auto", "plot", "grid", "table", "none")
#: The confidence of every static interval: "±" is the half-width of the 95% interval.
LEVEL = 0.05

Show = Literal["auto", "plot", "grid", "table", "none"]
_PERCENT = f"{100 * (1 - LEVEL):g}%"
_Z = 1.959963984540054  # norm.ppf(1 - LEVEL / 2): "±" is this many standard errors
_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
_HISTOGRAM_BINS = 20
_DPI = 80


# -- the schema -------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The JSON Schema of the MIME payload (shipped as ``dvl_jupyter/schema/valuation.v1.json``)."""
    text = resources.files("dvl_jupyter").joinpath("schema/valuation.v1.json").read_text("utf-8")
    return json.loads(text)


# -- the bundle -------------------------------------------------------------------------------
def mimebundle(
    result: ValuationResult,
    show: Show = "auto",
    include: Collection[str] | None = None,
    exclude: Collection[str] | None = None,
    k: int = K,
) -> dict[str, Any]:
    """The MIME bundle of ``result``, restricted to what ``show`` asks for.

    ``auto`` (what displaying a result gives): the HTML (the picture of the error bars and,
    for image data, of the image grid, and the table), the JSON and the text. ``plot`` and
    ``grid`` leave out the table, ``table`` leaves out the picture, ``none`` gives an empty
    bundle. The JSON says which view was asked for (``"view"``) so the renderer opens on it.
    ``include`` / ``exclude`` are IPython's MIME-type filters; the picture comes as
    ``image/png`` of its own only when ``text/html`` is filtered out.
    """
    if show not in SHOW_CHOICES:
        raise ValueError(f"show must be one of {', '.join(SHOW_CHOICES)}; got {show!r}.")
    if show == "none":
        return {}

    def wanted(mime: str) -> bool:
        return (include is None or mime in include) and (exclude is None or mime not in exclude)

    bundle: dict[str, Any] = {}
    html_wanted = wanted("text/html")
    payload: dict[str, Any] | None = None
    if wanted(MIME_TYPE) or html_wanted:
        payload = valuation_json(result, view=None if show == "auto" else show)
    if wanted(MIME_TYPE):
        bundle[MIME_TYPE] = payload
    png: bytes | None = None
    nothing_yet = _no_value_yet(result) is not None  # a plot of zeros would say nothing
    if show != "table" and not nothing_yet and (wanted("image/png") or html_wanted):
        kind = {"auto": "summary", "plot": "plot", "grid": "grid"}[show]
        png = _render_png(result, kind, k)
    if png is not None and wanted("image/png") and not html_wanted:
        bundle["image/png"] = png  # else the HTML carries it: stored once
    if html_wanted:
        from dvl_jupyter.standalone import standalone_html

        static = result_html(result, k=k, png=png, table=show in ("auto", "table"))
        bundle["text/html"] = standalone_html(static, _trimmed(payload, HTML_THUMBNAIL_BUDGET))
    if wanted("text/plain"):
        bundle["text/plain"] = result_text(result)
    return bundle


# -- JSON ---------------------------------------------------------------------------------------
def valuation_json(
    result: ValuationResult,
    view: str | None = None,
    max_points: int = MAX_POINTS,
    max_thumbnails: int = MAX_THUMBNAILS,
    thumbnail_budget: int = THUMBNAIL_BUDGET,
) -> dict[str, Any]:
    """The payload of :data:`MIME_TYPE`: JSON-safe (no NaN), bounded, valid against the schema.

    Points are listed by ascending value, as the exact reverse of rank order (equal values:
    the higher data index first), with the points without a finite value last; ``ranks``
    gives each listed point its rank (1 = highest, see the module docstring), so no reader
    has to re-derive the tie rule. When there are more than ``max_points`` the JSON keeps the
    lowest and the highest by rank (what one looks at) and ``summary`` describes all of them.
    """
    values = np.asarray(result.values, dtype=np.float64)
    shown, ranks = _shown_positions(values, np.asarray(result.indices), max_points)
    indices = np.asarray(result.indices)[shown]
    y = _labels(result.display_data, indices)
    payload: dict[str, Any] = {
        "version": 1,
        "method": result.algorithm or "unknown",
        "indices": [int(i) for i in indices],
        "names": [str(s) for s in np.asarray(result.names)[shown]],
        "values": _floats(values[shown]),
        "stderr": _floats(np.asarray(result.stderr)[shown]),
        "counts": [int(c) for c in np.asarray(result.counts)[shown]],
        "labels": None if y is None else [_label(v) for v in y],
        "ranks": ranks,
        "summary": _summary(values, len(shown)),
        "meta": _meta(result),
    }
    if view is not None:
        payload["view"] = view
    if max_thumbnails > 0 and _has_images(result):
        n_ranked = sum(r is not None for r in ranks)
        column = _thumbnail_column(result.display_data, indices, n_ranked, max_thumbnails,
                                   thumbnail_budget)
        if column is not None:
            payload["images"] = column
    return payload


def _shown_positions(
    values: np.ndarray, indices: np.ndarray, max_points: int
) -> tuple[np.ndarray, list[int | None]]:
    """Positions to list, in ascending order (the reverse of rank order, non-finite last),
    and the rank of each: all points, or the highest and lowest by rank.

    The choice follows the ranks, not the values, so with ties at the cut the listed points
    are exactly ranks 1..h and F-l+1..F (F points have a finite value) and a reader can count
    what is left out between them.
    """
    from dvl_jupyter.plots import rank_order

    ranked = rank_order(values, indices)
    missing = np.flatnonzero(~np.isfinite(values))
    n_finite = len(ranked)
    if n_finite <= max_points:
        top, ranks = ranked, list(range(1, n_finite + 1))
        missing = missing[: max_points - n_finite]
    else:
        low = max_points // 2
        high = max_points - low
        top = np.concatenate([ranked[:high], ranked[n_finite - low:]])
        ranks = list(range(1, high + 1)) + list(range(n_finite - low + 1, n_finite + 1))
        missing = missing[:0]
    shown = np.concatenate([top[::-1], missing]).astype(np.intp)
    return shown, [*reversed(ranks), *([None] * len(missing))]


def _floats(a: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(a, dtype=np.float64)]


def _summary(values: np.ndarray, n_shown: int) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    out: dict[str, Any] = {
        "n": int(len(values)),
        "shown": int(n_shown),
        "omitted": int(len(values) - n_shown),
        "non_finite": int(len(values) - len(finite)),
        "mean": None,
        "quantiles": {"levels": list(_QUANTILES), "values": [None] * len(_QUANTILES)},
        "histogram": {"edges": [], "counts": []},
    }
    if len(finite):
        out["mean"] = float(finite.mean())
        out["quantiles"]["values"] = _floats(np.quantile(finite, _QUANTILES))
        counts, edges = np.histogram(finite, bins=_HISTOGRAM_BINS)
        out["histogram"] = {"edges": _floats(edges), "counts": [int(c) for c in counts]}
    return out


def _meta(result: ValuationResult) -> dict[str, Any]:
    m = result.meta
    settings = m.get("settings")
    if not isinstance(settings, Mapping):  # a result made in plain Python: what the engine kept
        settings = {k: m[k] for k in ("truncation", "stopping", "seed", "lockstep",
                                      "antithetic", "path") if k in m}
    status = getattr(result, "status", None)
    return {
        "evaluations": _int_or_none(m.get("evaluations")),
        "cache_hits": _int_or_none(m.get("cache_hits")),
        "elapsed": json_safe(m.get("elapsed_s")),
        "settings": json_safe(dict(settings)),
        "status": str(getattr(status, "value", status)) if status is not None else None,
        "ended": json_safe(m.get("ended")),
        "run_id": json_safe(m.get("run_id")),
        "permutations": _int_or_none(m.get("permutations")),
        "failed_fits": _int_or_none(m.get("failed_fits")),
        "path": json_safe(m.get("path")),
        "reliability": json_safe(m.get("reliability")),
        "distinguishable": _int_or_none(m.get("distinguishable")),
        "advice": json_safe(m.get("advice")),
        "exact": bool(m.get("exact", False)),
    }


def _int_or_none(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else None


def _label(v: Any) -> str | int | float | bool | None:
    a = np.asarray(v)
    if a.ndim:  # one-hot or multi-output targets: shown as text
        text = str(a.tolist())
        return text if len(text) <= 60 else text[:57] + "..."
    item = a.item()
    if isinstance(item, float) and not math.isfinite(item):
        return None
    if isinstance(item, bytes):
        return item.decode("utf-8", "replace")
    return item if isinstance(item, (bool, int, float, str)) else str(item)


# -- the display data ----------------------------------------------------------------------------
def _images(data: Any, indices: np.ndarray) -> np.ndarray | None:
    """``x`` of the points with these data indices, as numpy (None when unknown).

    A display must never fail because of its data: anything unexpected means "no images"
    (logged at debug level), and the values are shown all the same.
    """
    if data is None or not callable(getattr(data, "data", None)) or len(indices) == 0:
        return None
    from dvl_jupyter.plots import _positions_of, _to_numpy

    try:
        x, _ = data.data(_positions_of(data, np.asarray(indices)))
        return _to_numpy(x)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.debug("no images for this result: %s", exc)
        return None


def _labels(data: Any, indices: np.ndarray) -> np.ndarray | None:
    """``y`` of the points with these data indices, without copying ``x`` (None when unknown)."""
    y = getattr(data, "y", None)
    if y is None or len(indices) == 0:
        return None
    from dvl_jupyter.plots import _positions_of, _to_numpy

    try:
        return _to_numpy(y)[_positions_of(data, np.asarray(indices))]
    except Exception as exc:  # noqa: BLE001 - as for _images
        log.debug("no labels for this result: %s", exc)
        return None


def _extremes_first(n_ranked: int, n: int) -> list[int]:
    """Listed positions from both ends of the ranked ones inwards (0, n_ranked - 1, 1, ...),
    then the points without a rank (listed after them): the order thumbnails are kept in."""
    order: list[int] = []
    lo, hi = 0, n_ranked - 1
    while lo <= hi:
        order += [lo, hi] if lo < hi else [lo]
        lo, hi = lo + 1, hi - 1
    return order + list(range(n_ranked, n))


def _thumbnail_column(
    data: Any, indices: np.ndarray, n_ranked: int, max_thumbnails: int, budget: int
) -> list[str | None] | None:
    """Base64 PNG thumbnails of the most extreme listed points, None for the others.

    The first ``n_ranked`` listed points have a rank (ascending); the ones without a finite
    value come after them. Thumbnails are made from both ends inwards, a batch at a time,
    until ``max_thumbnails`` of them or ``budget`` characters.
    """
    n = len(indices)
    column: list[str | None] = [None] * n
    wanted = _extremes_first(n_ranked, n)[:max_thumbnails]
    used, batch = 0, 64
    for start in range(0, len(wanted), batch):
        chosen = np.asarray(wanted[start:start + batch])
        x = _images(data, indices[chosen])
        if x is None or not is_image_data(x):
            return None if start == 0 else column
        for pos, png in zip(chosen, thumbnails(x), strict=True):
            b64 = base64.b64encode(png).decode("ascii")
            if used + len(b64) > budget:
                return column
            column[int(pos)] = b64
            used += len(b64)
    return column


def _trimmed(payload: dict[str, Any] | None, budget: int) -> dict[str, Any] | None:
    """A shallow copy of ``payload`` whose thumbnails fit in ``budget`` characters, kept
    in the same order as they were made (the most extreme points first)."""
    images = payload.get("images") if payload else None
    if not isinstance(images, list) or sum(len(b) for b in images if b) <= budget:
        return payload
    ranks = payload.get("ranks") or []
    kept: list[str | None] = [None] * len(images)
    used = 0
    for i in _extremes_first(sum(r is not None for r in ranks), len(images)):
        b = images[i]
        if b and used + len(b) > budget:
            break
        kept[i] = b
        used += len(b or "")
    return {**payload, "images": kept}


def thumbnails(x: np.ndarray, side: int = THUMBNAIL_SIDE) -> list[bytes]:
    """Small PNGs of a batch of images, on one shared intensity scale (as in the image grid)."""
    from PIL import Image

    from dvl_jupyter.plots import _as_images

    images, gray = _as_images(np.asarray(x))
    if images.dtype != np.uint8:
        f = images.astype(np.float64)
        lo, hi = float(np.nanmin(f)), float(np.nanmax(f))
        scaled = (f - lo) / (hi - lo) if hi > lo else np.zeros_like(f)
        images = np.nan_to_num(np.clip(scaled, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    out = []
    for img in images:
        pil = Image.fromarray(img)
        if max(pil.size) > side:
            pil.thumbnail((side, side))
        buf = io.BytesIO()
        pil.save(buf, format="PNG", optimize=True)
        out.append(buf.getvalue())
    return out


# -- figures -------------------------------------------------------------------------------------
def result_figure(
    result: ValuationResult, kind: Literal["summary", "plot", "grid"] = "summary", k: int = K
) -> Figure | None:
    """A figure of the extremes: ``plot`` (error bars), ``grid`` (images) or ``summary`` (both).

    ``grid`` falls back to the error bars when there are no images to show. None for an
    empty result.
    """
    from matplotlib.figure import Figure

    n = len(result)
    if n == 0:
        return None
    images = kind != "plot" and _has_images(result)
    plot = kind != "grid" or not images
    # Tiles are square and 1.3 in wide (5 per half of 13 in), wide enough for "value ± half-width"
    # under each; each row adds its two lines of text.
    grid_height = 2.0 * math.ceil(_grid_k(n, k) / 5) + 0.4
    fig = Figure(figsize=(13, (3.6 if plot else 0) + (grid_height if images else 0)),
                 layout="constrained")
    parts = fig.subfigures(2, 1, height_ratios=[3.6, grid_height]) if plot and images else [fig]
    if plot:
        _plot_errors(parts[0], result, k)
    if images:
        _plot_grids(parts[-1], result, k)
    return fig


def _has_images(result: ValuationResult) -> bool:
    x = _images(result.display_data, np.asarray(result.indices)[:1])
    return x is not None and is_image_data(x)


def _plot_errors(fig: Any, result: ValuationResult, k: int) -> None:
    """Error bars of the k highest and the k lowest values, both in rank order (highest
    first, as the table and the interactive chart list them), with their ranks in the titles."""
    from dvl_jupyter.plots import plot_result_errors, rank_order

    order = rank_order(result.values, result.indices)
    n = len(order)
    ylabel = f"{result.algorithm or 'data'} value"
    ci = f"bars: {_PERCENT} CI"
    if n == 0:
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no finite values to plot", ha="center", va="center",
                parse_math=False)
        return
    if n <= 2 * k:
        ax = fig.subplots()
        title = (f"All {n:,} values, ranks 1–{n:,} ({ci})" if n > 1
                 else f"The only value ({ci})")
        plot_result_errors(result[order], level=LEVEL, ax=ax, title=title, ylabel=ylabel)
        return
    high, low = fig.subplots(1, 2, sharey=True)
    plot_result_errors(result[order[:k]], level=LEVEL, ax=high, ylabel=ylabel,
                       title=f"{k} highest values, ranks 1–{k} ({ci})")
    plot_result_errors(result[order[n - k:]], level=LEVEL, ax=low,
                       title=f"{k} lowest values, ranks {n - k + 1:,}–{n:,} ({ci})")


def _grid_k(n: int, k: int) -> int:
    """Images per grid: k, or half of the points when there are fewer than 2k (no repeats)."""
    return max(1, min(k, n // 2))


def _plot_grids(fig: Any, result: ValuationResult, k: int) -> None:
    """Image grids of the k highest and k lowest, in rank order like the error bars."""
    from dvl_jupyter.plots import plot_image_grid, rank_order

    n = len(rank_order(result.values, result.indices))
    data = result.display_data
    if n == 0:
        return
    if n == 1:
        plot_image_grid(result, data, k=1, fig=fig, level=LEVEL,
                        title=f"the only point (value ± {_PERCENT} CI)")
        return
    k = _grid_k(n, k)
    high, low = fig.subfigures(1, 2)
    plot_image_grid(result, data, k=k, which="top", fig=high, level=LEVEL,
                    title=f"{k} highest valued, ranks 1–{k} (value ± {_PERCENT} CI)")
    plot_image_grid(result, data, k=k, which="bottom", order="rank", fig=low, level=LEVEL,
                    title=f"{k} lowest valued, ranks {n - k + 1:,}–{n:,} "
                          f"(value ± {_PERCENT} CI)")


def _render_png(result: ValuationResult, kind: Literal["summary", "plot", "grid"], k: int
                ) -> bytes | None:
    from dvl_jupyter.plots import figure_to_png

    fig = result_figure(result, kind, k)
    return None if fig is None else figure_to_png(fig, dpi=_DPI)


# -- text and HTML --------------------------------------------------------------------------------
def _fmt(v: float, spec: str = ".4g") -> str:
    return format(float(v), spec) if math.isfinite(v) else str(v)


def _headline(result: ValuationResult) -> tuple[str, str]:
    """(what, how it ran) in words, e.g. ("TMC-Shapley values of 30 points", "converged, ...")."""
    m = result.meta
    status = getattr(getattr(result, "status", None), "value", "")
    what = f"{result.algorithm or 'Data'} values of {plural(len(result), 'point')}"
    how = [str(m.get("ended") or status)]
    if _int_or_none(m.get("evaluations")) is not None:
        how.append(plural(int(m["evaluations"]), "evaluation"))
    if _int_or_none(m.get("cache_hits")) is not None:
        how.append(plural(int(m["cache_hits"]), "cache hit"))
    if "elapsed_s" in m:
        how.append(format_duration(m.get("elapsed_s")))
    return what, ", ".join(h for h in how if h)


def _trust(result: ValuationResult) -> tuple[str, bool] | None:
    """How far the ranking can be trusted, in words, and whether to warn; None when the
    result says nothing about it (exact methods say they are exact)."""
    m = result.meta
    if m.get("exact"):
        return "exact values (no sampling)", False
    if m.get("advice"):
        return str(m["advice"]), True
    r = m.get("reliability")
    if not isinstance(r, (int, float)) or not math.isfinite(r):
        return None
    text = f"reliability of the ranking {r:.2f}"
    if _int_or_none(m.get("distinguishable")) is not None:
        text += (f"; {m['distinguishable']:,} of {len(result):,} values distinguishable "
                 "from zero")
    return text, False


def _one_line(text: Any) -> str:
    """A string on one line for the terminal's columns: control characters as escapes."""
    out = []
    for ch in str(text):
        if ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _width(text: str) -> int:
    """Terminal columns of ``text``: wide characters (CJK, most emoji) take two, combining
    and format characters none."""
    return sum(0 if unicodedata.category(ch) in ("Mn", "Me", "Cf")
               else 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _ljust(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


class _Rows:
    """The rows of the static table and text: the k highest and k lowest in rank order."""

    def __init__(self, result: ValuationResult, k: int):
        from dvl_jupyter.plots import rank_order

        order = rank_order(result.values, result.indices)
        self.n_ranked = len(order)
        #: points without a finite value (no rank; not listed, only counted)
        self.missing = len(result) - self.n_ranked
        if self.n_ranked <= 2 * k:
            self.positions = [int(p) for p in order]
            self.gap = 0
        else:
            self.positions = [int(p) for p in np.r_[order[:k], order[self.n_ranked - k:]]]
            self.gap = self.n_ranked - 2 * k
        self.k = k
        self.rank = {p: (j + 1 if j < k or not self.gap else self.gap + j + 1)
                     for j, p in enumerate(self.positions)}

    def gap_text(self) -> str:
        """What the gap row says, e.g. "... 1,237 more (ranks 11–1,247) ..."."""
        return f"... {self.gap:,} more (ranks {self.k + 1:,}–{self.k + self.gap:,}) ..."

    def missing_text(self) -> str:
        return f"{plural(self.missing, 'point')} without a finite value (no rank)"


def _no_value_yet(result: ValuationResult) -> str | None:
    """The sentence for a result in which no point has been updated (a run stopped before
    its first permutation finished), else None: its zeros are no values."""
    if np.any(np.asarray(result.counts)):
        return None
    what = "permutation" if "permutations" in result.meta else "sample"
    return f"No value was estimated yet: no {what} finished."


def _notes(result: ValuationResult) -> list[str]:
    """What the engine says once about how the values were made (``meta["notes"]``)."""
    notes = result.meta.get("notes")
    return [str(n) for n in notes] if isinstance(notes, list) else []


def result_text(result: ValuationResult, k: int = 5) -> str:
    """A few lines for terminals: what ran, then the highest and lowest values, by rank."""
    what, how = _headline(result)
    rows = _Rows(result, k)
    values, stderr = np.asarray(result.values), np.asarray(result.stderr)
    names = [_one_line(n) for n in np.asarray(result.names)]
    lines = [f"{what} ({how})" if how else what]
    nothing_yet = _no_value_yet(result)
    if nothing_yet is not None:
        return "\n".join([*lines, f"  {nothing_yet}"])
    trust = _trust(result)
    if trust is not None:
        lines.append(("! " if trust[1] else "  ") + trust[0])
    lines += [f"  {note}" for note in _notes(result)]
    if rows.positions:
        rank_w = max(4, len(f"{rows.n_ranked:,}"))
        name_w = max(4, *(_width(names[p]) for p in rows.positions))
        lines.append(f"  {'rank':>{rank_w}}  {_ljust('name', name_w)}  {'value':>10} "
                     f"± {_PERCENT} CI")
    for i, p in enumerate(rows.positions):
        if rows.gap and i == k:
            lines.append(f"  {rows.gap_text()}")
        value, half = _fmt(values[p]), _fmt(_Z * stderr[p], ".2g")
        lines.append(f"  {rows.rank[p]:>{rank_w},}  {_ljust(names[p], name_w)}  {value:>10} "
                     f"± {half}")
    if rows.missing:
        lines.append(f"  {rows.missing_text()}")
    return "\n".join(lines)


_CELL = 'style="padding:1px 8px;text-align:{align}"'
#: Names and labels keep their line breaks (as text: the cell is escaped).
_TEXT_CELL = 'style="padding:1px 8px;text-align:left;white-space:pre-line"'


def result_html(
    result: ValuationResult, k: int = K, png: bytes | None = None, table: bool = True
) -> str:
    """Static HTML: the picture (if any) and a table of the k highest and lowest values.

    Rows are in rank order (rank 1 = the highest value, as in every view). Every piece of
    text from the result (names, labels, settings) is escaped with ``html.escape``; there is
    no script, so the output is safe in an untrusted notebook.
    """
    esc = html.escape
    what, how = _headline(result)
    parts = ['<div class="dvl-valuation">']
    nothing_yet = _no_value_yet(result)
    if nothing_yet is not None:
        return (f'<div class="dvl-valuation"><p>{esc(what)}{": " + esc(how) if how else ""}'
                f"</p><p>{esc(nothing_yet)}</p></div>")
    trust = _trust(result)
    if trust is not None:
        style = ("border-left:3px solid #e69500;padding-left:6px;font-weight:600"
                 if trust[1] else "opacity:0.8")
        parts.append(f'<div class="dvl-trust" style="font-size:90%;{style}">'
                     f"{esc(trust[0])}</div>")
    parts += [f"<p>{esc(note)}</p>" for note in _notes(result)]
    if png is not None:
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(f'<img class="dvl-png" alt="{esc(what)}" style="max-width:100%" '
                     f'src="data:image/png;base64,{b64}"/>')
    if table:
        rows = _Rows(result, k)
        shown = rows.positions
        values, stderr = np.asarray(result.values), np.asarray(result.stderr)
        names, indices = np.asarray(result.names), np.asarray(result.indices)
        counts = np.asarray(result.counts)
        y = _labels(result.display_data, indices[shown])
        head = ["rank", "name", "index"] + (["label"] if y is not None else []) + [
            "value", f"± {_PERCENT} CI", "stderr", "updates"]
        left, right = _TEXT_CELL, _CELL.format(align="right")
        parts.append('<table style="border-collapse:collapse;font-size:90%">')
        parts.append(f"<caption style=\"text-align:left\">{esc(what)}"
                     f"{': ' + esc(how) if how else ''}</caption>")
        parts.append("<thead><tr>" + "".join(
            f"<th {left if h in ('name', 'label') else right}>{esc(h)}</th>" for h in head
        ) + "</tr></thead><tbody>")
        for i, p in enumerate(shown):
            if rows.gap and i == k:
                parts.append(f'<tr><td colspan="{len(head)}" {left}>'
                             f"{esc(rows.gap_text())}</td></tr>")
            cells = [(f"{rows.rank[p]:,}", right), (str(names[p]), left),
                     (str(indices[p]), right)]
            if y is not None:
                cells.append((str(_label(y[i])), left))
            cells += [(_fmt(values[p]), right), (_fmt(_Z * stderr[p], ".2g"), right),
                      (_fmt(stderr[p], ".2g"), right), (f"{counts[p]:,}", right)]
            parts.append("<tr>" + "".join(f"<td {a}>{esc(c)}</td>" for c, a in cells) + "</tr>")
        if rows.missing:
            parts.append(f'<tr><td colspan="{len(head)}" {left}>'
                         f"{esc(rows.missing_text())}</td></tr>")
        parts.append("</tbody></table>")
        parts.append('<div style="font-size:85%;opacity:0.8">'
                     f"rank 1 = the highest value (equal values: the lower index first); "
                     f"± = half-width of the {_PERCENT} confidence interval "
                     f"({_Z:.2f} × stderr)</div>")
    parts.append("</div>")
    return "".join(parts)
