"""Hooks that let progress views follow a running valuation.

Like skorch's callbacks: a base class of no-op ``on_*`` methods, called by the driver in the
driver's process. The tqdm bar, the notebook's progress widget and the panel all subclass it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunStats", "ValuationCallback", "TqdmProgress"]

#: An ETA is shown once this share of the run is done...
ETA_MIN_COMPLETION = 0.05
#: ... and the run has lasted this many seconds.
ETA_MIN_SECONDS = 5.0


@dataclass
class RunStats:
    """Counters of one run, updated by the driver as evaluations come back."""

    evaluations: int = 0  # utility values computed (fits), not counting cache hits
    cache_hits: int = 0
    fits: int = 0  # models fitted (evaluations of non-empty subsets)
    failed_fits: int = 0  # evaluations that failed (raised, or NaN) and scored the default
    non_finite: int = 0  # of those, how many gave NaN or an infinity
    one_class: int = 0  # single-class subsets a classifier could not fit: the default
    permutations: int = 0  # permutations merged into the result
    completion: float = 0.0  # the stopping criterion's own completion in [0, 1]
    started: float = field(default_factory=time.monotonic)
    reliability: float = float("nan")  # split-half rank reliability so far (diagnostics)
    distinguishable: int = 0  # points whose value differs from zero (BH-corrected)
    path: str = ""  # how models are trained, and why (the evaluator's note)
    stage: str = ""  # what the run is doing now: "checking the fast path", "running"...

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Utility evaluations (computed or cached) per second."""
        return (self.evaluations + self.cache_hits) / max(self.elapsed, 1e-9)

    def remaining(self) -> float | None:
        """Seconds left, extrapolated from the completion so far; None until that means
        something (at least :data:`ETA_MIN_COMPLETION` done, over :data:`ETA_MIN_SECONDS`):
        the first permutations of a run say little about the rest, and a wild guess ("14m
        10s" for a run of 35 s) is worse than none."""
        if self.completion < ETA_MIN_COMPLETION or self.elapsed < ETA_MIN_SECONDS:
            return None
        if self.completion >= 1.0:
            return 0.0
        return self.elapsed * (1.0 - self.completion) / self.completion

    def summary(self, algorithm: str = "") -> str:
        """One sentence of what the run did, the same in every view and in the result."""
        from .utils import format_duration, plural

        parts = [plural(self.permutations, "permutation")] if self.permutations else []
        parts.append(plural(self.evaluations, "evaluation"))
        if self.cache_hits:
            parts.append(plural(self.cache_hits, "cache hit"))
        text = ", ".join(parts) + f" in {format_duration(self.elapsed)}"
        if self.failed_fits:
            text += f"; {plural(self.failed_fits, 'fit')} failed and scored the default"
        if self.one_class:
            text += (f"; {plural(self.one_class, 'one-class subset')} scored the default")
        return f"{algorithm}: {text}" if algorithm else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "evaluations": self.evaluations,
            "cache_hits": self.cache_hits,
            "fits": self.fits,
            "failed_fits": self.failed_fits,
            "non_finite": self.non_finite,
            "one_class_subsets": self.one_class,
            "permutations": self.permutations,
            "completion": self.completion,
            "elapsed_s": round(self.elapsed, 3),
            "reliability": self.reliability if self.reliability == self.reliability else None,
            "distinguishable": self.distinguishable,
            "path": self.path,
        }


class ValuationCallback:
    """No-op hooks; override what you need. All run in the driver's thread."""

    def on_start(self, valuation: Any, stats: RunStats) -> None:
        """Before anything else: the run exists, nothing has been evaluated."""

    def on_stage(self, stats: RunStats) -> None:
        """The run moved to another stage (``stats.stage``): starting workers, checking the
        fast path, evaluating the full set, running; also when ``stats.path`` changed."""

    def on_evaluations(self, stats: RunStats) -> None:
        """After each group of utility evaluations came back (often several per second)."""

    def on_update(self, result: Any, stats: RunStats) -> None:
        """After permutations were merged into the result and the criterion was checked."""

    def on_finish(self, result: Any, stats: RunStats) -> None:
        """Once, when the run ends for any reason (done, stopped, interrupted, failed)."""


class TqdmProgress(ValuationCallback):
    """A tqdm.auto bar: counts evaluations and extrapolates the total from the completion.

    The total of a TMC run is not known in advance; the stopping criterion reports how far it
    is, so the bar's total is re-estimated as ``evaluations / completion`` and the bar moves
    with every evaluation, not only at the end of a permutation.
    """

    def __init__(self, desc: str | None = None, **tqdm_kwargs: Any) -> None:
        self.desc = desc
        self.tqdm_kwargs = tqdm_kwargs
        self._bar: Any = None

    def on_start(self, valuation: Any, stats: RunStats) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=None, desc=self._desc(valuation), unit="eval", **self.tqdm_kwargs)

    def _desc(self, valuation: Any) -> str:
        """The caption: as given, or the name of the method that runs."""
        return self.desc or getattr(valuation, "algorithm", "") or "valuation"

    def _refresh(self, stats: RunStats) -> None:
        if self._bar is None:
            return
        done = stats.evaluations + stats.cache_hits
        if stats.remaining() is not None:  # a total only once it means something
            self._bar.total = max(done, int(round(done / stats.completion)))
        self._bar.n = done
        postfix = {"done": f"{stats.completion:.0%}", "hits": stats.cache_hits}
        if stats.stage and stats.stage != "running":
            postfix["stage"] = stats.stage
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.refresh()

    def on_stage(self, stats: RunStats) -> None:
        self._refresh(stats)

    def on_evaluations(self, stats: RunStats) -> None:
        self._refresh(stats)

    def on_update(self, result: Any, stats: RunStats) -> None:
        self._refresh(stats)

    def on_finish(self, result: Any, stats: RunStats) -> None:
        if self._bar is not None:
            self._refresh(stats)
            self._bar.total = self._bar.n  # what was done is the whole of it
            self._bar.refresh()
            self._bar.close()
            self._bar = None
