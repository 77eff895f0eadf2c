"""How far to trust a ranking: split-half reliability, distinguishable values, training noise.

Monte Carlo values are averages of noisy samples. A model that trains with randomness adds a
second noise to every sample: refitting a subset with another seed moves its score, often far
more than one training point does. Three figures say how much of a ranking is signal:

- **Split-half reliability.** The samples of a run are split in two halves (even and odd
  permutations, or antithetic pairs, or samples); the Spearman correlation between the two
  halves' values, corrected with the Spearman-Brown formula for the halving, estimates the
  correlation between this run's ranking and that of an independent run of the same size.
  Near 1: the ranking would come out the same; near 0: it is mostly noise.
- **Distinguishable values.** How many points have a normal interval that excludes zero after
  the Benjamini-Hochberg correction for testing every point (false discovery rate 5%): points
  whose sign the run has really established.
- **Training noise** (before a run, from a handful of fits): the spread of one marginal
  contribution ``u(S + i) - u(S)`` over training seeds, against a point's average effect
  ``(u(N) - u(empty)) / n``.

When the reliability is low, :func:`advice` says so in words, with the number of samples the
Spearman-Brown prophecy asks for, and the methods that are robust to training noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Reliability",
    "advice",
    "benjamini_hochberg",
    "reliability",
    "samples_for",
    "spearman",
    "spearman_brown",
    "training_noise",
]

#: Below this reliability a ranking is called mostly noise, and the advice says what to do.
LOW_RELIABILITY = 0.5
#: The reliability the advice aims at when it says how many samples are needed.
TARGET_RELIABILITY = 0.8


def _ranks(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks, ties sharing their average rank (scipy.stats.rankdata's "average")."""
    order = np.argsort(a, kind="stable")
    sorted_a = a[order]
    first = np.concatenate([[True], sorted_a[1:] != sorted_a[:-1]])
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], a.size)
    ranks = np.empty(a.size, dtype=np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]
    return ranks


def spearman(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Spearman's rank correlation; NaN when either ranking is constant or has NaN.

    Written out with numpy rather than scipy.stats.spearmanr: spearmanr warns on constant input
    (the normal state of a result at its first checks), and importing scipy.stats would add
    seconds to ``import dvl_jupyter``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size < 2 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return math.nan
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = math.sqrt(float(ra @ ra) * float(rb @ rb))
    if denom == 0.0:
        return math.nan
    return float(ra @ rb) / denom


def spearman_brown(r: float, factor: float = 2.0) -> float:
    """The reliability of a measure ``factor`` times as long as one with reliability ``r``.

    ``factor * r / (1 + (factor - 1) * r)``; for the split-half correction, ``factor = 2``.
    A negative ``r`` (halves that disagree more than chance) is kept negative, in [-1, 1].
    """
    if not math.isfinite(r):
        return math.nan
    denom = 1.0 + (factor - 1.0) * r
    if denom <= 0.0:
        return -1.0
    return float(np.clip(factor * r / denom, -1.0, 1.0))


def samples_for(current: float, samples: int, target: float = TARGET_RELIABILITY) -> int | None:
    """How many samples (permutations...) the Spearman-Brown prophecy asks for to reach
    ``target`` from a reliability ``current`` measured on ``samples``; None if it cannot
    tell (a reliability of zero or less, or no samples)."""
    if not math.isfinite(current) or current <= 0.0 or samples <= 0:
        return None
    if current >= target:
        return samples
    factor = target * (1.0 - current) / (current * (1.0 - target))
    return int(math.ceil(samples * factor - 1e-9))


def benjamini_hochberg(p: NDArray[np.float64], alpha: float = 0.05) -> NDArray[np.bool_]:
    """Which of the p-values are discoveries at false discovery rate ``alpha`` (step-up)."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p, kind="stable")
    below = p[order] <= alpha * np.arange(1, m + 1) / m
    keep = np.zeros(m, dtype=bool)
    if below.any():
        keep[order[: int(np.flatnonzero(below).max()) + 1]] = True
    return keep


def distinguishable(values: NDArray[np.float64], stderr: NDArray[np.float64],
                    counts: NDArray[np.int64], alpha: float = 0.05) -> int:
    """How many values differ from zero: two-sided normal tests, corrected with BH at
    ``alpha``. A point with fewer than two samples has no standard error and is not counted."""
    values, stderr = np.asarray(values, float), np.asarray(stderr, float)
    ok = np.asarray(counts) >= 2
    z = np.where(stderr > 0, np.abs(values) / np.where(stderr > 0, stderr, 1.0),
                 np.where(values != 0, np.inf, 0.0))
    p = np.array([math.erfc(v / math.sqrt(2.0)) for v in z], dtype=np.float64)
    p[~ok | ~np.isfinite(values)] = 1.0
    return int(benjamini_hochberg(p, alpha).sum())


@dataclass(frozen=True)
class Reliability:
    """How far a ranking can be trusted (see the module docstring)."""

    #: Split-half reliability, Spearman-Brown corrected, in [-1, 1] (NaN: not yet known).
    reliability: float
    #: Points whose value differs from zero after the BH correction (None: not a question
    #: for this method, e.g. out-of-bag accuracies, which are never negative).
    distinguishable: int | None
    #: Points valued.
    n_points: int
    #: Samples (permutations...) behind the figure; each half holds about half of them.
    samples: int

    def as_dict(self) -> dict[str, Any]:
        r = self.reliability
        return {"reliability": None if not math.isfinite(r) else round(r, 4),
                "distinguishable": self.distinguishable, "n_points": self.n_points,
                "samples": self.samples}


def reliability(half_a: NDArray[np.float64], half_b: NDArray[np.float64], values: Any,
                stderr: Any, counts: Any, samples: int,
                test_zero: bool = True) -> Reliability:
    """The reliability figures of a run from its two halves' values and its whole result;
    ``test_zero=False`` for values whose sign means nothing (accuracies)."""
    r = spearman_brown(spearman(half_a, half_b))
    dist = distinguishable(values, stderr, counts) if test_zero else None
    return Reliability(r, dist, len(np.asarray(values)), int(samples))


def advice(rel: Reliability, what: str = "permutations", method: str = "") -> str | None:
    """What a user should hear about a ranking, in words; None when it reads as reliable.

    Whenever the reliability is below :data:`LOW_RELIABILITY` (or unknown after a run), the
    ranking is called mostly noise, with the remedies: more samples (as many as the
    Spearman-Brown prophecy asks for a reliability of :data:`TARGET_RELIABILITY`), or a method
    that does not rest on single marginal contributions.
    """
    r = rel.reliability
    if math.isfinite(r) and r >= LOW_RELIABILITY:
        return None
    shown = "unknown" if not math.isfinite(r) else f"{r:.2f}"
    head = (f"The ranking is mostly noise: its split-half reliability is {shown} (two runs "
            "like this one would rank the points differently)")
    if rel.distinguishable is not None:
        head += (f", and {rel.distinguishable:,} of {rel.n_points:,} values are "
                 "distinguishable from zero")
    need = samples_for(r, rel.samples)
    more = (f"about {need:,} {what} would reach {TARGET_RELIABILITY:.1f} (now {rel.samples:,})"
            if need is not None else f"many more {what} (now {rel.samples:,})")
    others = [m for m in ("Data-OOB", "KNN-Shapley") if m != method]
    return (f"{head}. To rank the points: {more}; or a method robust to training noise, "
            f"such as {' or '.join(others)}, which ask{'s' if len(others) == 1 else ''} "
            "whether a point's label agrees with models or neighbours that did not see it.")


def training_noise(marginals: NDArray[np.float64], scores: NDArray[np.float64], span: float,
                   n: int) -> dict[str, Any]:
    """The training-noise probe's figures: how much one marginal (and one score) varies over
    training seeds, against a point's average effect ``|u(N) - u(empty)| / n``."""
    marginal_sd = float(np.std(marginals, ddof=1)) if len(marginals) > 1 else math.nan
    score_sd = float(np.std(scores, ddof=1)) if len(scores) > 1 else math.nan
    effect = abs(float(span)) / max(n, 1)
    ratio = marginal_sd / effect if effect > 0 else math.inf
    scale = max(1.0, float(np.max(np.abs(marginals)))) if len(marginals) else 1.0
    if not math.isfinite(marginal_sd) or marginal_sd <= 1e-12 * scale:  # rounding, not noise
        text = f"none: {len(marginals)} seeds gave the same marginal (deterministic training)"
    elif effect == 0.0:
        text = (f"one marginal varies by {marginal_sd:.2g} (sd over {len(marginals)} seeds), "
                "while the whole set scores as the empty one: the noise is all there is")
    else:
        text = (f"one marginal varies by {marginal_sd:.2g} (sd over {len(marginals)} seeds), "
                f"{ratio:,.0f}x a point's average effect ({effect:.2g})")
    return {"marginal_sd": marginal_sd, "score_sd": score_sd, "effect": effect,
            "ratio": ratio if math.isfinite(ratio) else None, "seeds": len(marginals),
            "text": text}
