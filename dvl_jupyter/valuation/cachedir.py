"""A cache directory as one object: its values, its run records, its report, its clearing.

A directory (``.dvl_cache/`` beside the notebook by default) holds two things: the utility
values (:class:`~dvl_jupyter.valuation.cache.UtilityCache`, SQLite through diskcache) and the
records of the runs that computed them (:class:`~dvl_jupyter.valuation.runs.RunStore`,
``runs/*.json`` and ``*.npz``). :class:`CacheDirectory` is what the rest of the package passes
around: a run opens it once (values for the driver, runs for the record), ``%shapley_cache``
asks it for its :meth:`~CacheDirectory.report` or to :meth:`~CacheDirectory.clear` itself, and
reading a report never creates a directory that was not there.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import DEFAULT_CACHE_DIR, UtilityCache
from .exceptions import DvlTypeError, describe_value
from .runs import RunStore
from .utils import format_bytes, plural

__all__ = ["DEFAULT_CACHE_DIR", "CacheDirectory", "CacheReport"]


class CacheDirectory:
    """The cache directory of runs: values and run records under one path.

    Parameters
    ----------
    path
        The directory (``~`` is expanded). Nothing is created until something is written.
    values
        An already open :class:`UtilityCache` to use for the values (e.g. one made with a
        ``size_limit``); by default one is opened on first use.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
                 values: UtilityCache | None = None) -> None:
        self.path = Path(os.path.expanduser(os.fspath(path))).absolute()
        self._values = values
        self._runs: RunStore | None = None

    @classmethod
    def open(cls, spec: Any) -> CacheDirectory | None:
        """The directory a setting names: None (no cache), a path, a ``UtilityCache`` or a
        ``CacheDirectory``; anything else is a TypeError saying what to pass."""
        if spec is None or isinstance(spec, CacheDirectory):
            return spec
        if isinstance(spec, UtilityCache):
            return cls(spec.directory, values=spec)
        if isinstance(spec, (str, os.PathLike)) and not isinstance(spec, bytes):
            return cls(spec)
        raise DvlTypeError(
            f"cache must be None (no cache), a directory (str or Path) or a CacheDirectory; "
            f"got {describe_value(spec)}. Use e.g. cache='{DEFAULT_CACHE_DIR}'."
        )

    @property
    def values(self) -> UtilityCache:
        """The utility values (opened, and the directory created, on first use)."""
        if self._values is None:
            self._values = UtilityCache(self.path)
        return self._values

    @property
    def runs(self) -> RunStore:
        """The run records (``runs/``)."""
        if self._runs is None:
            self._runs = RunStore(self.path)
        return self._runs

    def report(self) -> CacheReport:
        """What is there: size, number of values, past runs, and what is damaged; creates
        nothing and warns nothing (no run goes on: the report says it)."""
        if not self.path.is_dir():
            return CacheReport(str(self.path), False)
        with UtilityCache(self.path, quiet=True) as values:
            entries, size = len(values), values.volume()
            problem = values.disabled_reason
            damaged = values.damaged
        size += sum(p.stat().st_size for p in (self.path / "runs").glob("*") if p.is_file())
        return CacheReport(str(self.path), True, None if problem else entries, size,
                           self.runs.list_runs(), problem=problem, damaged=damaged,
                           damaged_runs=self.runs.damaged())

    def clear(self) -> tuple[int | None, int]:
        """Remove every cached value and run record; returns how many of each went (values:
        None when the cache file was damaged and could not be counted)."""
        if not self.path.is_dir():
            return 0, 0
        # quiet: a damaged file is what clearing repairs, not something to warn about
        values = (self._values or UtilityCache(self.path, quiet=True)).clear()
        return values, self.runs.clear()

    def close(self) -> None:
        if self._values is not None:
            self._values.close()

    def __getstate__(self) -> dict[str, Any]:
        # Travels with utilities to joblib's workers, which never touch it: the path is enough.
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return f"CacheDirectory({str(self.path)!r})"


@dataclass
class CacheReport:
    """What ``%shapley_cache`` shows: the directory, its size and the runs recorded there."""

    directory: str
    exists: bool
    entries: int | None = 0  # None: unknown (the cache cannot be read)
    size: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None  # why the values cannot be read, if they cannot
    damaged: bool = False  # the cache file is damaged (clear repairs it)
    damaged_runs: list[str] = field(default_factory=list)  # run records that cannot be read

    HEAD = ("run id", "started (UTC)", "finished (UTC)", "ended", "method", "model", "points",
            "stopping", "seed", "evaluations", "cache hits")

    def rows(self) -> list[list[str]]:
        """One row per run: id, start, end, how it ended, model, points, stopping, seed..."""
        out = []
        for run in self.runs:
            s = _mapping(run.get("settings"))
            ended = _mapping(run.get("stats")).get("ended")
            if run.get("status") == "interrupted":  # its process is gone (runs.py)
                ended = "interrupted"
            out.append([str(v) for v in (
                run.get("run_id"), _when(run.get("started")), _when(run.get("finished")),
                ended or run.get("status"), s.get("method", "tmc"), s.get("model"),
                run.get("n_points", s.get("n_train")),
                s.get("stopping"), run.get("seed"), run.get("evaluations"),
                run.get("cache_hits"))])
        return out

    def summary(self) -> str:
        if not self.exists:
            return f"No cache yet at {self.directory}."
        head = f"Cache at {self.directory}: {format_bytes(self.size)}, "
        if self.entries is None:
            head += ("the values file is damaged (clear it with %shapley_cache clear), "
                     if self.damaged else f"the values cannot be read ({self.problem}), ")
        else:
            head += f"{plural(self.entries, 'cached value')}, "
        text = head + f"{plural(len(self.runs), 'run')}."
        if self.damaged_runs:
            text += (f" {plural(len(self.damaged_runs), 'run record')} cannot be read "
                     f"({', '.join(self.damaged_runs[:3])}"
                     f"{', ...' if len(self.damaged_runs) > 3 else ''}).")
        return text

    def __repr__(self) -> str:
        lines = [self.summary()]
        if self.runs:
            rows = [list(self.HEAD), *self.rows()]
            widths = [max(len(r[i]) for r in rows) for i in range(len(self.HEAD))]
            lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                      for r in rows]
            lines.append("Reload one with %shapley_cache load RUN_ID -o NAME.")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        parts = [f"<p>{esc(self.summary())}</p>"]
        if self.runs:
            head = "".join(f"<th>{esc(h)}</th>" for h in self.HEAD)
            parts.append(f'<table style="font-size:90%"><thead><tr>{head}</tr></thead><tbody>')
            for row in self.rows():
                parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
            parts.append("</tbody></table><p>Reload one with "
                         "<code>%shapley_cache load RUN_ID -o NAME</code>.</p>")
        return "".join(parts)


def _mapping(value: Any) -> dict[str, Any]:
    """A manifest's sub-record as a dict ({} for anything else: a planted file)."""
    return dict(value) if isinstance(value, dict) else {}


def _when(iso: Any) -> str:
    """``2026-01-02T03:04:05+00:00`` as ``2026-01-02 03:04:05``; ``-`` when unknown."""
    return str(iso).replace("T", " ").split("+")[0] if iso else "-"
