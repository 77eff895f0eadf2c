r"""MSR-Banzhaf (Wang & Jia 2023): Banzhaf values with maximum sample reuse.

The Banzhaf value of a point is its marginal contribution averaged over *all* subsets of the
others, each with weight :math:`1 / 2^{n-1}`. Equivalently, with :math:`S` a uniformly random
subset of the whole training set (each point in it with probability 1/2, independently),

.. math:: v_i = \mathbb{E}[u(S) \mid i \in S] - \mathbb{E}[u(S) \mid i \notin S],

so one evaluation ``u(S)`` says something about *every* point: it joins the mean "with" of
the points in ``S`` and the mean "without" of the others. That is the maximum sample reuse:
one fit per sample, and every sample updates every point; a block of random subsets is
exactly what the fast path trains well.

What a result holds (pyDVL's conventions): ``values`` the difference of the two running
means; ``counts`` the smaller of the two counts (so ``MinUpdates(m)`` asks for ``m`` samples
on each side of every point); ``variances`` chosen so that ``stderr`` is the standard error of
a difference of two independent means, :math:`\sqrt{s^2_\text{in}/n_\text{in} +
s^2_\text{out}/n_\text{out}}`. A point with no sample on one side has value 0 and count 0.
The split-half reliability compares the even samples' values with the odd ones'.
"""

from __future__ import annotations

import numpy as np

from ..result import ValuationResult, _welford_merge
from ..stopping import StoppingCriterion
from .semivalue import SemivalueEstimator, SemivalueValuation, assign, sample_rng

__all__ = ["MSRBanzhafValuation"]


class _Mean:
    """Running means, sample variances and counts of ``u(S)``, one per point."""

    def __init__(self, n: int) -> None:
        self.mean = np.zeros(n)
        self.var = np.zeros(n)
        self.count = np.zeros(n, dtype=np.int64)

    def add(self, mask: np.ndarray, values: np.ndarray) -> None:
        """Add ``values[b]`` to the points where ``mask[b]`` is True, for every row ``b``
        (a block's statistics, pooled into the running ones with Chan's formula)."""
        count = mask.sum(axis=0)
        safe = np.maximum(count, 1)
        mean = (values @ mask) / safe
        m2 = (np.square(values[:, None] - mean[None, :]) * mask).sum(axis=0)
        var = np.where(count >= 2, m2 / np.maximum(count - 1, 1), 0.0)
        self.mean, self.var, self.count = _welford_merge(
            self.mean, self.var, self.count, mean, var, count.astype(np.int64))

    @property
    def se2(self) -> np.ndarray:
        return self.var / np.maximum(self.count, 1)


class _Sides:
    """The running means of ``u(S)`` over the samples with and without each point."""

    def __init__(self, n: int) -> None:
        self.inside, self.outside = _Mean(n), _Mean(n)

    def add(self, mask: np.ndarray, values: np.ndarray) -> None:
        self.inside.add(mask, values)
        self.outside.add(~mask, values)

    def difference(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(values, variances, counts)`` of the difference of the two means, as a
        ``ValuationResult`` holds them (module docstring)."""
        a, b = self.inside, self.outside
        counts = np.minimum(a.count, b.count)
        values = np.where(counts > 0, a.mean - b.mean, 0.0)
        return values, np.where(counts > 0, (a.se2 + b.se2) * counts, 0.0), counts


class _MSR(SemivalueEstimator):
    evaluations_per_sample = 1

    def __init__(self, result: ValuationResult, entropy: int) -> None:
        self.result = result
        self.entropy = entropy
        self.n = len(result)
        self.all = _Sides(self.n)
        self.parts = (_Sides(self.n), _Sides(self.n))

    def draw(self, t: int) -> tuple[np.ndarray, ...]:
        inside = sample_rng(self.entropy, t).random(self.n) < 0.5
        return (np.flatnonzero(inside).astype(np.int64),)

    def merge(self, start: int, drawn: list[tuple[np.ndarray, ...]],
              values: np.ndarray) -> None:
        mask = np.zeros((len(drawn), self.n), dtype=bool)
        for row, (members,) in enumerate(drawn):
            mask[row, members] = True
        u = values[:, 0].astype(np.float64)
        self.all.add(mask, u)
        even = (start + np.arange(len(drawn))) % 2 == 0
        for part, rows in zip(self.parts, (even, ~even), strict=True):
            if rows.any():
                part.add(mask[rows], u[rows])

    def publish(self) -> None:
        assign(self.result, *self.all.difference())

    def halves(self) -> tuple[np.ndarray, np.ndarray]:
        return self.parts[0].difference()[0], self.parts[1].difference()[0]

    def samples_left(self, criterion: StoppingCriterion, samples: int) -> int | None:
        # Which side a sample lands on is random: no count of samples is sure to be enough.
        return 0 if criterion.updates_needed(self.result) == 0 else None


class MSRBanzhafValuation(SemivalueValuation):
    """MSR-Banzhaf values of every training point (pyDVL's ``MSRBanzhafValuation``).

    Parameters
    ----------
    utility
        A :class:`~dvl_jupyter.valuation.utility.ModelUtility`, or any callable
        ``u(indices) -> float`` over positions of the training set.
    is_done
        A stopping criterion, e.g. ``MinUpdates(100)`` (every point has 100 samples with it
        and 100 without), ``AbsoluteStandardError(0.01)`` or ``RankReliability(0.8)``,
        composable with ``|``, ``&``, ``~``; checked once per round of ``block_size`` samples.
    seed
        Seed of the subsets (and of nothing else: model fits are seeded by their subset).
        The same seed gives the same result whatever the number of jobs.
    progress
        Show a tqdm bar (``tqdm.auto``) that moves with every utility evaluation.
    batched
        ``"auto"``: train many models at once when the model allows it (the fast path),
        otherwise fit one by one and say why; ``True``: require the fast path; ``False``: never.
    block_size
        Subsets per round (one fit each), evaluated together. Part of what a seed reproduces.
        Default: 32, or twice the fast path's block.
    callbacks
        :class:`~dvl_jupyter.valuation.callbacks.ValuationCallback` objects (progress views).

    Notes
    -----
    ``result.meta`` has ``samples`` (subsets drawn), ``seed``, ``block_size``, ``stopping``,
    ``reliability`` (even against odd samples), ``total_utility``, ``empty_utility`` and, for a
    :class:`~dvl_jupyter.valuation.utility.ModelUtility`, ``noise``.

    Examples
    --------
    >>> valuation = MSRBanzhafValuation(utility, is_done=MinUpdates(500), seed=36)
    >>> with parallel_config(n_jobs=2):
    ...     result = valuation.fit(train).result
    """

    algorithm = "MSR-Banzhaf"

    def _estimator(self, result: ValuationResult, entropy: int) -> SemivalueEstimator:
        return _MSR(result, entropy)
