r"""Beta-Shapley (Kwon & Zou 2022): the semivalue with Beta(alpha, beta) weights.

The value of point :math:`i` weighs its marginal contributions by the size of the subset,

.. math:: v_i = \sum_{S \subseteq N \setminus \{i\}} w_{\alpha,\beta}(n, |S|)\,
          [u(S \cup \{i\}) - u(S)], \qquad
          w_{\alpha,\beta}(n, k) = \frac{B(k + \beta,\, n - 1 - k + \alpha)}{B(\alpha, \beta)},

pyDVL's coefficient (:func:`~.semivalue.beta_coefficient`; Kwon & Zou's eq. (5) up to the
factor ``n`` that pyDVL's samplers absorb). Beta(1, 1) is the Shapley value; Beta(16, 1), the
paper's choice for noisy labels, weighs small subsets most, where one point moves the score
most.

The sampler is permutation-free, as pyDVL's semivalue samplers are: a sample is one point
``i`` and one subset ``S`` of the others, worth the marginal ``u(S + i) - u(S)`` (two
evaluations), importance-weighted by ``w(n, |S|) / q(S)``. Here ``q`` is the semivalue's own
distribution: a probability ``t ~ Beta(beta, alpha)`` is drawn and each other point joins
``S`` with probability ``t``, so that ``q(S) = w(n, |S|)`` exactly, every weight is 1 and a
value is a plain mean of marginals, with its standard error. The points take turns (sample
``t`` is about point ``t mod n``), so after ``m`` rounds every point has ``m`` samples:
``MinUpdates(m)`` is exactly ``m * n`` samples. The split-half reliability compares the
values of the even rounds with those of the odd ones.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..callbacks import ValuationCallback
from ..params import Interval
from ..result import ValuationResult
from ..stopping import StoppingCriterion
from .semivalue import SemivalueEstimator, SemivalueValuation, sample_rng

__all__ = ["ALPHA", "BETA", "BetaShapleyValuation", "DEFAULT_ALPHA", "DEFAULT_BETA"]

#: Kwon & Zou's recommendation for noisy labels (pyDVL has no default): Beta(16, 1).
DEFAULT_ALPHA = 16.0
DEFAULT_BETA = 1.0
#: What alpha and beta may be (the short name ``"beta(a,b)"`` checks the same rule).
ALPHA = [Interval(numbers.Real, 0, None, closed="neither")]
BETA = [Interval(numbers.Real, 0, None, closed="neither")]


class _BetaSampler(SemivalueEstimator):
    evaluations_per_sample = 2

    def __init__(self, result: ValuationResult, entropy: int, alpha: float,
                 beta: float) -> None:
        self.result = result
        self.entropy = entropy
        self.alpha, self.beta = alpha, beta
        self.n = len(result)
        self.parts = (ValuationResult.zeros(self.n), ValuationResult.zeros(self.n))

    def draw(self, t: int) -> tuple[np.ndarray, ...]:
        i = t % self.n
        rng = sample_rng(self.entropy, t)
        p = rng.beta(self.beta, self.alpha)
        chosen = rng.random(self.n - 1) < p
        others = np.flatnonzero(chosen).astype(np.int64)
        others[others >= i] += 1  # positions among the others -> positions in the set
        return others, np.sort(np.append(others, np.int64(i)))

    def merge(self, start: int, drawn: list[tuple[np.ndarray, ...]],
              values: np.ndarray) -> None:
        ts = start + np.arange(len(drawn))
        marginals = values[:, 1] - values[:, 0]  # importance weight 1 (module docstring)
        rounds = ts // self.n
        for r in np.unique(rounds):  # within a round every point comes once
            rows = rounds == r
            points = ts[rows] % self.n
            self.result.update(points, marginals[rows])
            self.parts[int(r) % 2].update(points, marginals[rows])

    def publish(self) -> None:
        """The result is updated sample by sample (a plain mean of marginals)."""

    def halves(self) -> tuple[np.ndarray, np.ndarray]:
        return self.parts[0].values, self.parts[1].values

    def samples_left(self, criterion: StoppingCriterion, samples: int) -> int | None:
        needed = criterion.updates_needed(self.result)
        if needed is None:
            return None
        # Point j has samples // n samples, one more when j < samples % n.
        return (samples // self.n + needed) * self.n - samples if needed else 0


class BetaShapleyValuation(SemivalueValuation):
    """Beta(alpha, beta)-Shapley values of every training point (pyDVL's
    ``BetaShapleyValuation``), by a permutation-free sampler (module docstring).

    Parameters
    ----------
    utility
        A :class:`~dvl_jupyter.valuation.utility.ModelUtility`, or any callable
        ``u(indices) -> float`` over positions of the training set.
    is_done
        A stopping criterion, e.g. ``MinUpdates(20)`` (20 marginals per point, ``40 n``
        evaluations), composable with ``|``, ``&``, ``~``; checked once per round.
    alpha, beta
        The parameters of the Beta weights, > 0. Default Beta(16, 1), Kwon & Zou's choice:
        small subsets weigh most. Beta(1, 1) is the Shapley value.
    seed
        Seed of the samples (and of nothing else: model fits are seeded by their subset).
        The same seed gives the same result whatever the number of jobs.
    progress
        Show a tqdm bar (``tqdm.auto``) that moves with every utility evaluation.
    batched
        ``"auto"``: train many models at once when the model allows it (the fast path),
        otherwise fit one by one and say why; ``True``: require the fast path; ``False``: never.
    block_size
        Samples per round (two evaluations each). Part of what a seed reproduces. Default:
        16, or the fast path's block.
    callbacks
        :class:`~dvl_jupyter.valuation.callbacks.ValuationCallback` objects (progress views).

    Notes
    -----
    ``result.meta`` has ``alpha``, ``beta``, ``samples``, ``seed``, ``block_size``,
    ``stopping``, ``reliability`` (even against odd rounds), ``total_utility``,
    ``empty_utility`` and, for a :class:`~dvl_jupyter.valuation.utility.ModelUtility`,
    ``noise``.

    Examples
    --------
    >>> valuation = BetaShapleyValuation(utility, MinUpdates(20), alpha=16, beta=1, seed=36)
    >>> with parallel_config(n_jobs=2):
    ...     result = valuation.fit(train).result
    """

    algorithm = "Beta-Shapley"
    _parameter_constraints: ClassVar[dict[str, Any]] = {
        **SemivalueValuation._parameter_constraints,
        "alpha": ALPHA,
        "beta": BETA,
    }

    def __init__(
        self,
        utility: Any,
        is_done: StoppingCriterion | None = None,
        alpha: float = DEFAULT_ALPHA,
        beta: float = DEFAULT_BETA,
        seed: int | None = None,
        progress: bool = False,
        batched: bool | str = "auto",
        block_size: int | None = None,
        callbacks: Sequence[ValuationCallback] = (),
    ) -> None:
        super().__init__(utility, is_done=is_done, seed=seed, progress=progress,
                         batched=batched, block_size=block_size, callbacks=callbacks)
        self.alpha = alpha
        self.beta = beta

    def _meta(self) -> dict[str, Any]:
        return {"alpha": float(self.alpha), "beta": float(self.beta)}

    def _estimator(self, result: ValuationResult, entropy: int) -> SemivalueEstimator:
        return _BetaSampler(result, entropy, float(self.alpha), float(self.beta))
