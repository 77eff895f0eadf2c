"""Truncated Monte Carlo Shapley (Ghorbani & Zou 2019).

The Shapley value of a point is its marginal contribution ``u(S + {i}) - u(S)`` averaged over
the orders in which the training set can be built. TMC samples permutations, walks each from
the empty set, and stops a walk early (truncation) once the prefix is worth as much as the full
set; the points not reached get a zero marginal.

How the walk is scheduled (the one idea worth knowing to read this module): the method keeps
``lockstep`` permutations in flight and advances them together, one point per round, so each
round is a batch of equal-sized subsets: the workers get evenly sized fits, and the fast path
can train the whole batch at once. A finished permutation is merged into the result strictly
in permutation order and its slot refilled with the next one. Since the schedule depends only
on the seed and ``lockstep``, never on worker timing, a seeded run gives the same result with
one job or many.

No permutation is started that the criterion cannot use: a count such as ``MinUpdates(100)``
walks exactly 100 (``updates_needed``), ``MaxChecks(n)`` exactly n (``checks_needed``: each
merged permutation is one check). When the criterion fires, or a time limit (``MaxTime``,
alone or in an ``|``, watched every round) is spent, or ``stop()`` is called, the run ends at
once: permutations still in flight, and finished ones waiting for an earlier one to merge,
are dropped, so the result is always a prefix of the permutation sequence (keeping only the
early finishers would favour permutations that truncate early). Their utilities are in the
cache, so a resumed run computes none of them again.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..callbacks import ValuationCallback
from ..driver import Run
from ..ending import RunEnd
from ..params import FLAG, SEED, STOPPING, TRUNCATION, Interval
from ..result import Status, ValuationResult
from ..samplers import PermutationSampler, resolve_entropy
from ..stopping import StoppingCriterion, time_is_up
from ..truncation import NoTruncation, TruncationPolicy
from .base import UtilityValuation

__all__ = ["TMCShapleyValuation"]


class _Walk:
    """One permutation being walked: where it is, the last utility, its marginals."""

    __slots__ = ("index", "perm", "step", "prev", "marginals", "done")

    def __init__(self, index: int, perm: np.ndarray, empty_value: float) -> None:
        self.index = index
        self.perm = perm
        self.step = 0
        self.prev = empty_value
        self.marginals = np.zeros(len(perm), dtype=np.float64)
        self.done = len(perm) == 0

    def next_subsets(self, k: int) -> list[np.ndarray]:
        """The next ``k`` prefixes this walk will ask for (fewer at the end of the walk)."""
        last = min(self.step + k, len(self.perm))
        return [self.perm[:s] for s in range(self.step + 1, last + 1)]

    def advance(self, value: float, truncation: TruncationPolicy, total: float) -> None:
        self.marginals[self.step] = value - self.prev
        self.prev = value
        self.step += 1
        n = len(self.perm)
        if self.step >= n or truncation.should_truncate(self.step, value, n, total):
            self.done = True  # the rest keep a zero marginal


class TMCShapleyValuation(UtilityValuation):
    """Truncated Monte Carlo Shapley values of every training point.

    Parameters
    ----------
    utility
        A :class:`~dvl_jupyter.valuation.utility.ModelUtility`, or any callable
        ``u(indices) -> float`` over positions of the training set.
    truncation
        ``NoTruncation()`` (default), ``FixedTruncation(fraction)`` or
        ``RelativeTruncation(rtol, burn_in_fraction)``.
    is_done
        A stopping criterion, e.g. ``MinUpdates(100)``, composable with ``|``, ``&``, ``~``.
    seed
        Seed of the permutations (and of nothing else: model fits are seeded by their subset).
        The same seed gives the same result whatever the number of jobs.
    progress
        Show a tqdm bar (``tqdm.auto``) that moves with every utility evaluation.
    antithetic
        Pair each permutation with its reverse (lower variance at the same cost).
    batched
        ``"auto"``: train many models at once when the model allows it (the fast path),
        otherwise fit one by one and say why; ``True``: require the fast path; ``False``: never.
    lockstep
        How many permutations are walked side by side. Part of what a seed reproduces, so it
        does not follow the number of jobs. Default: 8, or twice the fast path's block.
    callbacks
        :class:`~dvl_jupyter.valuation.callbacks.ValuationCallback` objects (progress views).

    Examples
    --------
    >>> valuation = TMCShapleyValuation(utility, truncation=RelativeTruncation(0.05, 0.3),
    ...                                 is_done=MinUpdates(100), seed=36)
    >>> with parallel_config(n_jobs=2):
    ...     result = valuation.fit(train).result
    """

    algorithm = "TMC-Shapley"
    #: Let walks ask for several prefixes at once when fewer than ``lockstep`` are left (the
    #: tail of a run). The values are the same either way; benchmarks switch it off to
    #: measure what it saves.
    keep_rounds_full: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, Any]] = {
        **UtilityValuation._parameter_constraints,
        "truncation": TRUNCATION,
        "is_done": STOPPING,
        "seed": SEED,
        "antithetic": FLAG,
        "lockstep": [None, Interval(int, 1, None)],
    }

    def __init__(
        self,
        utility: Any,
        truncation: TruncationPolicy | None = None,
        is_done: StoppingCriterion | None = None,
        seed: int | None = None,
        progress: bool = False,
        antithetic: bool = False,
        batched: bool | str = "auto",
        lockstep: int | None = None,
        callbacks: Sequence[ValuationCallback] = (),
    ) -> None:
        super().__init__(utility, batched=batched, progress=progress, callbacks=callbacks)
        self.truncation = truncation
        self.is_done = is_done
        self.seed = seed
        self.antithetic = antithetic
        self.lockstep = lockstep

    def _fit(self, run: Run) -> None:
        truncation = self.truncation or NoTruncation()
        is_done = self.is_done.reset()
        evaluator = self._bind(run)
        lockstep = self.lockstep or max(8, 2 * evaluator.batch_size)
        entropy = resolve_entropy(self.seed)
        run.result.meta.update(
            seed=entropy,
            truncation=repr(truncation),
            stopping=str(is_done),
            lockstep=lockstep,
            antithetic=self.antithetic,
        )
        sampler = PermutationSampler(len(run.train), entropy, self.antithetic)
        u_empty, total = run.evaluate_ends()
        self._probe_noise(run, evaluator, u_empty, total, entropy)
        run.stage("running")
        run.finish(self._walk(run, sampler, truncation, is_done, lockstep, u_empty, total))

    def _walk(self, run: Run, sampler: PermutationSampler, truncation: TruncationPolicy,
              is_done: StoppingCriterion, lockstep: int, u_empty: float,
              total: float) -> RunEnd:
        """Walk permutations until the criterion, the clock or a stop request ends the run."""
        result, stats = run.result, run.stats
        # Two halves of the permutations (antithetic pairs stay together), for the split-half
        # reliability of the ranking.
        halves = (ValuationResult.zeros(len(result)), ValuationResult.zeros(len(result)))
        active: list[_Walk] = []
        finished: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # index -> (perm, marginals)
        next_index = merged = 0
        while True:
            # Start no permutation the criterion cannot use: MinUpdates(100) needs exactly
            # 100 and MaxChecks(1) exactly one; with 64 walking side by side, finishing the
            # ones in flight used to almost double the fits of a run.
            needed = _merges_needed(is_done, result)
            while len(active) < lockstep and (needed is None or next_index - merged < needed):
                active.append(_Walk(next_index, sampler.permutation(next_index), u_empty))
                next_index += 1
            if not active:  # the criterion needs no more permutation, yet it never fired
                return RunEnd.DONE
            # Keep rounds full: when fewer walks than ``lockstep`` are left (the tail of a
            # run), each asks for several of its next prefixes at once, so the workers and the
            # fast path still get full blocks. A prefix asked for beyond the step where its
            # walk truncates is computed for nothing (but cached); the values, a function of
            # the subsets, are the same as one step at a time.
            ahead = max(1, lockstep // len(active)) if self.keep_rounds_full else 1
            asked = [w.next_subsets(ahead) for w in active]
            values = iter(run.evaluate([s for subsets in asked for s in subsets]))
            for walk, subsets in zip(active, asked, strict=True):
                for value in itertools.islice(values, len(subsets)):
                    if not walk.done:
                        walk.advance(float(value), truncation, total)
                if walk.done:
                    finished[walk.index] = (walk.perm, walk.marginals)
            active = [w for w in active if not w.done]

            fired = merged_any = False
            while merged in finished and not fired:
                perm, marginals = finished.pop(merged)
                result.update(perm, marginals)
                group = merged // 2 if self.antithetic else merged
                halves[group % 2].update(perm, marginals)
                merged += 1
                stats.permutations = merged
                merged_any = True
                run.record_halves(halves[0].values, halves[1].values, merged)
                fired = run.check(is_done) != Status.Pending
            if merged_any:
                run.updated()
            if time_is_up(is_done):
                if not fired:
                    # The budget ran out since the last check (only merges check): check once
                    # more so that the result's status says the criterion stopped it.
                    run.check(is_done)
                end = RunEnd.TIME_LIMIT
            elif fired:
                end = RunEnd.DONE
            elif run.stop_requested:
                end = RunEnd.STOPPED
            else:
                continue
            dropped = len(active) + len(finished)
            if dropped:
                result.meta["dropped_permutations"] = dropped
            return end


def _merges_needed(is_done: StoppingCriterion, result: Any) -> int | None:
    """At most how many more merged permutations make ``is_done`` stop for sure: each merge
    updates every point once and checks the criterion once. None when unknown."""
    known = [n for n in (is_done.updates_needed(result), is_done.checks_needed())
             if n is not None]
    return min(known) if known else None
