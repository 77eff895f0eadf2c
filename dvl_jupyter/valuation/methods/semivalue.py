r"""Semivalues by sampling: the loop MSR-Banzhaf and Beta-Shapley share, and their weights.

A semivalue gives point :math:`i` a weighted sum of its marginal contributions,

.. math:: v_i = \sum_{S \subseteq N \setminus \{i\}} w(n, |S|)\,[u(S \cup \{i\}) - u(S)],
          \qquad \sum_{k=0}^{n-1} \binom{n-1}{k} w(n, k) = 1,

with pyDVL's convention for the coefficient ``w(n, k)`` (:func:`shapley_coefficient`,
:func:`banzhaf_coefficient`, :func:`beta_coefficient`). Because the weights of all subsets sum
to one, :math:`v_i` is the mean marginal of :math:`i` when :math:`S` is drawn with probability
:math:`w(n, |S|)`: that is what the samplers of the methods draw (MSR-Banzhaf reuses each
draw for every point, see :mod:`.msr_banzhaf`; Beta-Shapley draws one point and one subset per
sample, see :mod:`.beta_shapley`).

The shared loop (:class:`SemivalueValuation`), the one idea worth knowing to read it: samples
are numbered, and sample ``t`` is drawn from its own generator
``SeedSequence(seed, spawn_key=(t,))``, so it does not depend on which round drew it or who
evaluated it. A round draws ``block_size`` samples, evaluates all their subsets at once through
the run (the cache first, then joblib's workers; the fast path trains a whole block of
models together), merges them in sample order, records the split-half reliability and checks
the criterion once. ``block_size`` never follows the number of jobs, so a seeded run gives the
same result with one job or many; a stop request, a time limit or an interrupt keeps every
round merged so far (the evaluations of the round in flight are in the cache).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..callbacks import ValuationCallback
from ..driver import Run
from ..ending import RunEnd
from ..params import SEED, STOPPING, Interval
from ..result import Status, ValuationResult
from ..samplers import resolve_entropy
from ..stopping import StoppingCriterion, time_is_up
from .base import UtilityValuation

__all__ = [
    "SemivalueEstimator",
    "SemivalueValuation",
    "assign",
    "banzhaf_coefficient",
    "beta_coefficient",
    "sample_rng",
    "shapley_coefficient",
]

#: Evaluations a round asks for at least (more when the fast path trains bigger blocks).
MIN_ROUND_EVALUATIONS = 32


def shapley_coefficient(n: int, k: int) -> float:
    """Shapley's weight of a subset of size ``k`` of the ``n - 1`` others: 1 / (n C(n-1, k))."""
    return 1.0 / (n * math.comb(n - 1, k))


def banzhaf_coefficient(n: int, k: int) -> float:
    """Banzhaf's weight of any subset of the ``n - 1`` others: 1 / 2^(n-1)."""
    return 0.5 ** (n - 1)


def beta_coefficient(alpha: float, beta: float, n: int, k: int) -> float:
    r"""Beta(alpha, beta)-Shapley's weight of a subset of size ``k`` of the ``n - 1`` others,
    as pyDVL defines it: :math:`B(k + \beta, n - 1 - k + \alpha) / B(\alpha, \beta)`.

    It is the chance of one particular such subset when each of the others is in it with a
    probability :math:`t \sim \mathrm{Beta}(\beta, \alpha)`: Beta(16, 1) puts its weight on
    small subsets, Beta(1, 1) is Shapley.
    """
    def log_beta(a: float, b: float) -> float:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    return math.exp(log_beta(k + beta, n - 1 - k + alpha) - log_beta(alpha, beta))


def sample_rng(entropy: int, t: int) -> np.random.Generator:
    """The generator of sample ``t`` of a run seeded with ``entropy``."""
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(t,)))


class SemivalueEstimator(abc.ABC):
    """One run's sampler and running statistics: what a semivalue method adds to the loop."""

    #: Subsets each sample evaluates.
    evaluations_per_sample: ClassVar[int] = 1

    @abc.abstractmethod
    def draw(self, t: int) -> tuple[np.ndarray, ...]:
        """The subsets (positions) sample ``t`` evaluates."""

    @abc.abstractmethod
    def merge(self, start: int, drawn: list[tuple[np.ndarray, ...]],
              values: np.ndarray) -> None:
        """Add samples ``start, start + 1, ...``: their subsets ``drawn`` and the values of
        those subsets, one row per sample (``evaluations_per_sample`` columns)."""

    @abc.abstractmethod
    def publish(self) -> None:
        """Bring the run's result up to date with the statistics."""

    @abc.abstractmethod
    def halves(self) -> tuple[np.ndarray, np.ndarray]:
        """The values of the two halves of the samples (for the split-half reliability)."""

    def samples_left(self, criterion: StoppingCriterion, samples: int) -> int | None:
        """At most how many more samples make ``criterion`` stop for sure (None: unknown)."""
        return None


class SemivalueValuation(UtilityValuation):
    """Base of the sampled semivalues: the shared loop (module docstring).

    Parameters
    ----------
    utility
        A :class:`~dvl_jupyter.valuation.utility.ModelUtility`, or any callable
        ``u(indices) -> float`` over positions of the training set.
    is_done
        A stopping criterion, e.g. ``MinUpdates(100)``, composable with ``|``, ``&``, ``~``;
        checked once per round.
    seed
        Seed of the samples (and of nothing else: model fits are seeded by their subset).
        The same seed gives the same result whatever the number of jobs.
    progress
        Show a tqdm bar (``tqdm.auto``) that moves with every utility evaluation.
    batched
        ``"auto"``: train many models at once when the model allows it (the fast path),
        otherwise fit one by one and say why; ``True``: require the fast path; ``False``: never.
    block_size
        Samples per round. Part of what a seed reproduces (the criterion is checked between
        rounds), so it does not follow the number of jobs. Default: enough samples for 32
        evaluations, or twice the fast path's block.
    callbacks
        :class:`~dvl_jupyter.valuation.callbacks.ValuationCallback` objects (progress views).
    """

    _parameter_constraints: ClassVar[dict[str, Any]] = {
        **UtilityValuation._parameter_constraints,
        "is_done": STOPPING,
        "seed": SEED,
        "block_size": [None, Interval(int, 1, None)],
    }

    def __init__(
        self,
        utility: Any,
        is_done: StoppingCriterion | None = None,
        seed: int | None = None,
        progress: bool = False,
        batched: bool | str = "auto",
        block_size: int | None = None,
        callbacks: Sequence[ValuationCallback] = (),
    ) -> None:
        super().__init__(utility, batched=batched, progress=progress, callbacks=callbacks)
        self.is_done = is_done
        self.seed = seed
        self.block_size = block_size

    @abc.abstractmethod
    def _estimator(self, result: ValuationResult, entropy: int) -> SemivalueEstimator:
        """The sampler and statistics of one run, filling ``result``."""

    def _meta(self) -> dict[str, Any]:
        """The method's own parameters, for ``result.meta``."""
        return {}

    def _fit(self, run: Run) -> None:
        is_done = self.is_done.reset()
        evaluator = self._bind(run)
        entropy = resolve_entropy(self.seed)
        estimator = self._estimator(run.result, entropy)
        per_sample = estimator.evaluations_per_sample
        block = self.block_size or max(
            1, max(MIN_ROUND_EVALUATIONS, 2 * evaluator.batch_size) // per_sample)
        run.result.meta.update(seed=entropy, stopping=str(is_done), block_size=block,
                               samples=0, **self._meta())
        u_empty, total = run.evaluate_ends()
        self._probe_noise(run, evaluator, u_empty, total, entropy)
        run.stage("running")
        run.finish(self._sample(run, estimator, is_done, block))

    def _sample(self, run: Run, estimator: SemivalueEstimator, is_done: StoppingCriterion,
                block: int) -> RunEnd:
        """Rounds of ``block`` samples until the criterion, the clock or a stop ends the run."""
        result = run.result
        done = 0
        while True:
            count = block
            left = estimator.samples_left(is_done, done)
            if left is not None:
                count = min(count, left)
            if count <= 0:  # the criterion needs no more samples, yet it never fired
                return RunEnd.DONE
            drawn = [estimator.draw(t) for t in range(done, done + count)]
            values = run.evaluate([s for subsets in drawn for s in subsets])
            estimator.merge(done, drawn, np.reshape(values, (count, -1)))
            done += count
            estimator.publish()
            result.meta["samples"] = done
            run.record_halves(*estimator.halves(), done, what="samples")
            fired = run.check(is_done) != Status.Pending
            run.updated()
            if time_is_up(is_done):
                return RunEnd.TIME_LIMIT
            if fired:
                return RunEnd.DONE
            if run.stop_requested:
                return RunEnd.STOPPED


def assign(result: ValuationResult, values: np.ndarray, variances: np.ndarray,
           counts: np.ndarray) -> None:
    """Write statistics computed elsewhere into ``result`` in place (the arrays the progress
    views and the method's ``result`` share).

    :meth:`ValuationResult.update` adds samples to a running mean; a value that is a
    combination of several means (MSR-Banzhaf's difference of two) has no such samples, so
    its statistics are written here, in the one place that does so.
    """
    result._values[:] = values  # noqa: SLF001 - see the docstring
    result._variances[:] = variances  # noqa: SLF001
    result._counts[:] = counts  # noqa: SLF001
