"""How a :class:`~dvl_jupyter.valuation.result.ValuationResult` shows itself in Jupyter.

One MIME bundle, four representations, so a result reads well in every frontend:

- ``application/vnd.dvl-jupyter.valuation.v1+json``: the data for the JupyterLab renderer
  (an interactive chart), described by ``dvl_jupyter/schema/valuation.v1.json``. It stays
  bounded whatever the number of points: at most :data:`MAX_POINTS` points (the lowest and
  highest half each), the rest summarised by counts, quantiles and a histogram, and at most
  :data:`MAX_THUMBNAILS` image thumbnails. NaN and infinities become ``null``.
- ``image/png``: error bars of the lowest and highest values with 95% intervals and, when the
  training data are images, an image grid of the lowest- and highest-valued points.
- ``text/html``: a small static table, with the PNG inlined as an ``<img>``. Frontends show
  only the richest type they know and every common one (JupyterLab, the classic notebook,
  nbconvert, GitHub) ranks HTML above PNG, so the picture must live inside the HTML to be seen
  next to the table. Every string is escaped; there is no script and no style sheet.
- ``text/plain``: a summary and the extremes, for terminals and logs.

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
from collections.abc import Collection, Mapping
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dvl_jupyter.valuation.utils import format_duration, is_image_data, json_safe

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from dvl_jupyter.valuation.result import ValuationResult

__all__ = [
    "MIME_TYPE",
    "MAX_POINTS",
    "MAX_THUMBNAILS",
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
MAX_THUMBNAILS = 200
#: Longest side of a thumbnail, in pixels; smaller images keep their size.
THUMBNAIL_SIDE = 64
#: How many of the lowest and of the highest points the plots and the table show.
K = 10
#: What ``--show`` may pick; ``auto`` is the full display (plot, grid when images, table).
SHOW_CHOICES = ("auto", "plot", "grid", "table", "none")

Show = Literal["auto", "plot", "grid", "table", "none"]
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

    ``auto`` (what displaying a result gives): the PNG of the error bars (and of the image
    grid for image data), the HTML table with that PNG, the JSON and the text. ``plot`` and
    ``grid`` leave out the table, ``table`` leaves out the PNG, ``none`` gives an empty
    bundle. The JSON says which view was asked for (``"view"``) so the renderer opens on it.
    ``include`` / ``exclude`` are IPython's MIME-type filters.
    """
    if show not in SHOW_CHOICES:
        raise ValueError(f"show must be one of {', '.join(SHOW_CHOICES)}; got {show!r}.")
    if show == "none":
        return {}

    def wanted(mime: str) -> bool:
        return (include is None or mime in include) and (exclude is None or mime not in exclude)

    bundle: dict[str, Any] = {}
    if wanted(MIME_TYPE):
        bundle[MIME_TYPE] = valuation_json(result, view=None if show == "auto" else show)
    png: bytes | None = None
    nothing_yet = _no_value_yet(result) is not None  # a plot of zeros would say nothing
    if show != "table" and not nothing_yet and (wanted("image/png") or wanted("text/html")):
        kind = {"auto": "summary", "plot": "plot", "grid": "grid"}[show]
        png = _render_png(result, kind, k)
    if png is not None and wanted("image/png"):
        bundle["image/png"] = png
    if wanted("text/html"):
        bundle["text/html"] = result_html(result, k=k, png=png, table=show in ("auto", "table"))
    if wanted("text/plain"):
        bundle["text/plain"] = result_text(result)
    return bundle


# -- JSON ---------------------------------------------------------------------------------------
def valuation_json(
    result: ValuationResult,
    view: str | None = None,
    max_points: int = MAX_POINTS,
    max_thumbnails: int = MAX_THUMBNAILS,
) -> dict[str, Any]:
    """The payload of :data:`MIME_TYPE`: JSON-safe (no NaN), bounded, valid against the schema.

    Points are listed by ascending value. When there are more than ``max_points`` the JSON
    keeps the lowest and the highest (what one looks at) and ``summary`` describes all of them.
    """
    values = np.asarray(result.values, dtype=np.float64)
    shown = _shown_positions(values, max_points)
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
        "summary": _summary(values, len(shown)),
        "meta": _meta(result),
    }
    if view is not None:
        payload["view"] = view
    if max_thumbnails > 0 and _has_images(result):
        column = _thumbnail_column(result.display_data, indices, max_thumbnails)
        if column is not None:
            payload["images"] = column
    return payload


def _shown_positions(values: np.ndarray, max_points: int) -> np.ndarray:
    """Positions to list, by ascending value: all of them, or the lowest and highest."""
    order = np.argsort(values, kind="stable")  # NaN last
    if len(order) <= max_points:
        return order
    finite = order[~np.isnan(values[order])]
    if len(finite) <= max_points:
        rest = order[np.isnan(values[order])]
        return np.concatenate([finite, rest[: max_points - len(finite)]])
    low = max_points // 2
    return np.concatenate([finite[:low], finite[len(finite) - (max_points - low):]])


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


def _thumbnail_column(
    data: Any, indices: np.ndarray, max_thumbnails: int
) -> list[str | None] | None:
    """Base64 PNG thumbnails of the lowest and highest listed points, None for the others."""
    n = len(indices)
    if n <= max_thumbnails:
        chosen = np.arange(n)
    else:
        low = max_thumbnails // 2
        chosen = np.r_[0:low, n - (max_thumbnails - low):n]
    x = _images(data, indices[chosen])
    if x is None or not is_image_data(x):
        return None
    column: list[str | None] = [None] * n
    for pos, png in zip(chosen, thumbnails(x), strict=True):
        column[int(pos)] = base64.b64encode(png).decode("ascii")
    return column


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
    # Tiles are square and 1.3 in wide (5 per half of 13 in), wide enough for "value ± stderr"
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
    from dvl_jupyter.plots import plot_result_errors

    ranked = result.sort()
    n = len(ranked)
    if n <= 2 * k:
        ax = fig.subplots()
        title = f"All {n} values (95% CI)" if n > 1 else "The only value (95% CI)"
        plot_result_errors(ranked, level=0.05, ax=ax, title=title,
                           ylabel="value")
        return
    left, right = fig.subplots(1, 2, sharey=True)
    plot_result_errors(ranked[:k], level=0.05, ax=left, title=f"{k} lowest values (95% CI)",
                       ylabel="value")
    plot_result_errors(ranked[n - k:], level=0.05, ax=right,
                       title=f"{k} highest values (95% CI)")


def _grid_k(n: int, k: int) -> int:
    """Images per grid: k, or half of the points when there are fewer than 2k (no repeats)."""
    return max(1, min(k, n // 2))


def _plot_grids(fig: Any, result: ValuationResult, k: int) -> None:
    from dvl_jupyter.plots import plot_image_grid

    n, k = len(result), _grid_k(len(result), k)
    if n == 1:
        plot_image_grid(result, result.display_data, k=1, fig=fig, title="the only point")
        return
    low, high = fig.subfigures(1, 2)
    plot_image_grid(result, result.display_data, k=k, which="bottom", fig=low,
                    title=f"{k} lowest valued")
    plot_image_grid(result, result.display_data, k=k, which="top", fig=high,
                    title=f"{k} highest valued")


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
    what = f"{result.algorithm or 'Data'} values of {len(result):,} points"
    how = [str(m.get("ended") or status)]
    if isinstance(m.get("evaluations"), int):
        how.append(f"{m['evaluations']:,} evaluations")
    if isinstance(m.get("cache_hits"), int):
        how.append(f"{m['cache_hits']:,} cache hits")
    if "elapsed_s" in m:
        how.append(format_duration(m.get("elapsed_s")))
    return what, ", ".join(h for h in how if h)


def _extreme_rows(result: ValuationResult, k: int) -> tuple[list[int], int]:
    """Positions of the k lowest and k highest (ascending) and how many lie between."""
    order = np.argsort(np.asarray(result.values), kind="stable")
    n = len(order)
    if n <= 2 * k:
        return [int(p) for p in order], 0
    return [int(p) for p in np.r_[order[:k], order[n - k:]]], n - 2 * k


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
    """A few lines for terminals: what ran, then the lowest and highest values."""
    what, how = _headline(result)
    lines = [f"{what} ({how})" if how else what]
    nothing_yet = _no_value_yet(result)
    if nothing_yet is not None:
        return "\n".join([*lines, f"  {nothing_yet}"])
    lines += [f"  {note}" for note in _notes(result)]
    rows, gap = _extreme_rows(result, k)
    values, stderr = np.asarray(result.values), np.asarray(result.stderr)
    names = np.asarray(result.names)
    width = max((len(str(names[p])) for p in rows), default=4)
    for i, p in enumerate(rows):
        if gap and i == k:
            lines.append(f"  ... {gap:,} more ...")
        value, err = _fmt(values[p]), _fmt(stderr[p], ".2g")
        lines.append(f"  {str(names[p]):<{width}}  {value:>10} ± {err}")
    return "\n".join(lines)


_CELL = 'style="padding:1px 8px;text-align:{align}"'


def result_html(
    result: ValuationResult, k: int = K, png: bytes | None = None, table: bool = True
) -> str:
    """Static HTML: the picture (if any) and a table of the k lowest and highest values.

    Every piece of text from the result (names, labels, settings) is escaped with
    ``html.escape``; there is no script, so the output is safe in an untrusted notebook.
    """
    esc = html.escape
    what, how = _headline(result)
    parts = ['<div class="dvl-valuation">']
    nothing_yet = _no_value_yet(result)
    if nothing_yet is not None:
        return (f'<div class="dvl-valuation"><p>{esc(what)}{": " + esc(how) if how else ""}'
                f"</p><p>{esc(nothing_yet)}</p></div>")
    parts += [f"<p>{esc(note)}</p>" for note in _notes(result)]
    if png is not None:
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(f'<img alt="{esc(what)}" style="max-width:100%" '
                     f'src="data:image/png;base64,{b64}"/>')
    if table:
        rows, gap = _extreme_rows(result, k)
        values, stderr = np.asarray(result.values), np.asarray(result.stderr)
        names, indices = np.asarray(result.names), np.asarray(result.indices)
        counts = np.asarray(result.counts)
        y = _labels(result.display_data, indices[rows])
        ranks = np.empty(len(values), dtype=np.int64)
        ranks[np.argsort(values, kind="stable")] = np.arange(1, len(values) + 1)
        head = ["rank", "name", "index"] + (["label"] if y is not None else []) + [
            "value", "stderr", "updates"]
        left, right = _CELL.format(align="left"), _CELL.format(align="right")
        parts.append('<table style="border-collapse:collapse;font-size:90%">')
        parts.append(f"<caption style=\"text-align:left\">{esc(what)}"
                     f"{': ' + esc(how) if how else ''}</caption>")
        parts.append("<thead><tr>" + "".join(
            f"<th {left if h in ('name', 'label') else right}>{esc(h)}</th>" for h in head
        ) + "</tr></thead><tbody>")
        for i, p in enumerate(rows):
            if gap and i == k:
                parts.append(f'<tr><td colspan="{len(head)}" {left}>'
                             f"... {gap:,} more ...</td></tr>")
            cells = [(str(ranks[p]), right), (str(names[p]), left), (str(indices[p]), right)]
            if y is not None:
                cells.append((str(_label(y[i])), left))
            cells += [(_fmt(values[p]), right), (_fmt(stderr[p], ".2g"), right),
                      (str(counts[p]), right)]
            parts.append("<tr>" + "".join(f"<td {a}>{esc(c)}</td>" for c, a in cells) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("</div>")
    return "".join(parts)
