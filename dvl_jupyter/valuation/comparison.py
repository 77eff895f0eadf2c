"""Several methods' values of the same points, side by side: do they agree, and what they find.

``compare(results, mask=None)`` takes a ``{name: ValuationResult}`` mapping (or a list, named
by each result's ``algorithm``) over the same training points and returns a
:class:`MethodComparison`: the Spearman correlation between every pair of methods (rank
agreement), and, given a mask of known bad points (``flip_labels``), each method's detection
scores (AUROC, average precision, precision at k), its reliability and its cost. It displays
itself as two small tables in a notebook, as text elsewhere.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .dataset import Dataset
from .diagnostics import spearman
from .evaluation import DetectionScores, detection_scores
from .exceptions import DvlTypeError, DvlValueError, describe_value
from .result import ValuationResult
from .utils import format_duration

__all__ = ["MethodComparison", "compare"]


@dataclass
class MethodComparison:
    """Rank agreement between methods and, with a mask, what each one finds."""

    names: list[str]
    #: Spearman correlation of the values, method by method (NaN when undefined).
    agreement: np.ndarray
    #: Detection scores of each method against the mask (None without a mask).
    detection: dict[str, DetectionScores] | None = None
    #: Per method: reliability, evaluations, seconds (from the results' metadata).
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dataframe(self) -> Any:
        """The agreement matrix and the per-method figures as two pandas DataFrames."""
        import pandas as pd

        agreement = pd.DataFrame(self.agreement, index=self.names, columns=self.names)
        rows = {name: {**self.facts.get(name, {}),
                       **({} if self.detection is None else
                          {"auroc": self.detection[name].auroc,
                           "average_precision": self.detection[name].average_precision,
                           "precision_at_k": self.detection[name].precision_at_k})}
                for name in self.names}
        return agreement, pd.DataFrame.from_dict(rows, orient="index")

    def _rows(self) -> list[list[str]]:
        head = ["method", "reliability", "evaluations", "time"]
        if self.detection is not None:
            k = next(iter(self.detection.values())).k
            head += ["AUROC", "avg. precision", f"precision@{k}"]
        rows = [head]
        for name in self.names:
            f = self.facts.get(name, {})
            rel = f.get("reliability")
            row = [name, "exact" if f.get("exact") else ("-" if rel is None else f"{rel:.2f}"),
                   "-" if f.get("evaluations") is None else f"{f['evaluations']:,}",
                   format_duration(f.get("elapsed_s"))]
            if self.detection is not None:
                d = self.detection[name]
                row += [f"{d.auroc:.3f}", f"{d.average_precision:.3f}",
                        f"{d.precision_at_k:.3f}"]
            rows.append(row)
        return rows

    def __repr__(self) -> str:
        lines = ["Methods compared on the same points:"]
        rows = self._rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                  for r in rows]
        lines.append("Rank agreement (Spearman):")
        w = max(len(n) for n in self.names)
        for i, name in enumerate(self.names):
            cells = " ".join(_corr(v).rjust(6) for v in self.agreement[i])
            lines.append(f"  {name.ljust(w)} {cells}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        cell = 'style="padding:1px 8px;text-align:{}"'
        rows = self._rows()
        parts = ['<div class="dvl-comparison"><table style="border-collapse:collapse;'
                 'font-size:90%"><caption style="text-align:left">Methods compared on the '
                 "same points</caption><thead><tr>"]
        parts += [f"<th {cell.format('left' if i == 0 else 'right')}>{esc(h)}</th>"
                  for i, h in enumerate(rows[0])]
        parts.append("</tr></thead><tbody>")
        for r in rows[1:]:
            parts.append("<tr>" + "".join(
                f"<td {cell.format('left' if i == 0 else 'right')}>{esc(c)}</td>"
                for i, c in enumerate(r)) + "</tr>")
        parts.append('</tbody></table><table style="border-collapse:collapse;font-size:90%;'
                     'margin-top:6px"><caption style="text-align:left">Rank agreement '
                     "(Spearman)</caption><thead><tr><th></th>")
        parts += [f"<th {cell.format('right')}>{esc(n)}</th>" for n in self.names]
        parts.append("</tr></thead><tbody>")
        for i, name in enumerate(self.names):
            parts.append(f"<tr><th {cell.format('left')}>{esc(name)}</th>" + "".join(
                f"<td {cell.format('right')}>{esc(_corr(v))}</td>" for v in self.agreement[i])
                + "</tr>")
        parts.append("</tbody></table></div>")
        return "".join(parts)


def _corr(v: float) -> str:
    return "-" if not math.isfinite(v) else f"{v:+.2f}"


def _named(results: Mapping[str, ValuationResult] | Sequence[ValuationResult]
           ) -> dict[str, ValuationResult]:
    if isinstance(results, Mapping):
        named = dict(results)
    elif isinstance(results, Sequence) and not isinstance(results, (str, bytes)):
        named = {}
        for r in results:
            name, k = getattr(r, "algorithm", "") or "result", 2
            while name in named:
                name, k = f"{r.algorithm} ({k})", k + 1
            named[name] = r
    else:
        raise DvlTypeError(f"results must be a dict of ValuationResults or a list of them; "
                           f"got {describe_value(results)}.")
    if len(named) < 2:
        raise DvlValueError(f"results must hold at least two results to compare; got "
                            f"{len(named)}.")
    for name, r in named.items():
        if not isinstance(r, ValuationResult):
            raise DvlTypeError(f"results[{name!r}] must be a ValuationResult; got "
                               f"{describe_value(r)}.")
    return named


def compare(results: Mapping[str, ValuationResult] | Sequence[ValuationResult],
            mask: Any = None, dataset: Dataset | None = None,
            k: int | None = None) -> MethodComparison:
    """Compare several methods' values of the same points.

    Parameters
    ----------
    results
        ``{name: result}``, or a list of results (named by their ``algorithm``); every result
        must value the same points (data indices), in any order.
    mask, dataset, k
        Optional: a bool mask of the known bad points, as for
        :func:`~dvl_jupyter.valuation.evaluation.detection_scores` (keyed by position in
        ``dataset``, or by data index without it), and the k of precision at k.
    """
    named = _named(results)
    names = list(named)
    first = named[names[0]]
    order = np.argsort(first.indices)
    base = first.indices[order]
    aligned = {}
    for name in names:
        r = named[name]
        o = np.argsort(r.indices)
        if not np.array_equal(r.indices[o], base):
            raise DvlValueError(
                f"results[{name!r}] values other points than results[{names[0]!r}]: compare "
                "results of the same training set.")
        aligned[name] = np.asarray(r.values, dtype=np.float64)[o]
    m = len(names)
    agreement = np.eye(m)
    for i in range(m):
        for j in range(i + 1, m):
            agreement[i, j] = agreement[j, i] = spearman(aligned[names[i]], aligned[names[j]])
    detection = None
    if mask is not None:
        detection = {name: detection_scores(named[name], mask, dataset=dataset, k=k)
                     for name in names}
    facts = {}
    for name in names:
        meta = named[name].meta
        facts[name] = {"reliability": meta.get("reliability"), "exact": bool(meta.get("exact")),
                       "evaluations": meta.get("evaluations"),
                       "elapsed_s": meta.get("elapsed_s")}
    return MethodComparison(names, agreement, detection, facts)
