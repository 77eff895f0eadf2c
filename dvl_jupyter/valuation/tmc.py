"""Truncated Monte Carlo Shapley (Ghorbani & Zou 2019).

The Shapley value of a point is its marginal contribution ``u(S + {i}) - u(S)`` averaged over
the orders in which the training set can be built. TMC samples permutations, walks each from
the empty set, and stops a walk early (truncation) once the prefix is worth as much as the full
set; the points not reached get a zero marginal.

How the walk is scheduled (the one idea worth knowing to read this module): the driver keeps
``lockstep`` permutations in flight and advances them together, one point per round, so each
round is a batch of equal-sized subsets: the workers get evenly sized fits, and the fast path
can train the whole batch at once. A finished permutation is merged into the result strictly
in permutation order and its slot refilled with the next one. Since the schedule depends only
on the seed and ``lockstep``, never on worker timing, a seeded run gives the same result with
one job or many.

The driver starts no permutation the criterion cannot use (``updates_needed``: a count such
as ``MinUpdates(100)`` walks exactly 100). When the stopping criterion fires, the
permutations still in flight are finished (not refilled) and merged: work done is never
thrown away. A time limit (``MaxTime``, alone or in
an ``|``) is different: it is watched every round, not only when a permutation merges, and
ends the run at once, as a stop request or a keyboard interrupt does; otherwise a budget
could overrun by a whole permutation of fits. The result then keeps every permutation merged
so far and the cache keeps every evaluation, so resuming computes nothing twice.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .callbacks import RunStats, TqdmProgress, ValuationCallback
from .dataset import Dataset, as_dataset
from .exceptions import DvlError, DvlTypeError, DvlValueError, describe_value
from .result import Status, ValuationResult
from .samplers import PermutationSampler, resolve_entropy
from .stopping import StoppingCriterion, check_stopping_criterion, time_is_up
from .truncation import NoTruncation, TruncationPolicy
from .utility import as_utility

__all__ = ["TMCShapleyValuation", "FailedFitsWarning"]


class FailedFitsWarning(UserWarning):
    """Some fits failed and scored the default (``catch_errors=True``): one warning per run."""


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

    def next_subset(self) -> np.ndarray:
        return self.perm[: self.step + 1]

    def advance(self, value: float, truncation: TruncationPolicy, total: float) -> None:
        self.marginals[self.step] = value - self.prev
        self.prev = value
        self.step += 1
        n = len(self.perm)
        if self.step >= n or truncation.should_truncate(self.step, value, n, total):
            self.done = True  # the rest keep a zero marginal


class TMCShapleyValuation:
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
        self.utility = utility
        self.truncation = truncation
        self.is_done = is_done
        self.seed = seed
        self.progress = progress
        self.antithetic = antithetic
        self.batched = batched
        self.lockstep = lockstep
        self.callbacks = list(callbacks)
        self._result: ValuationResult | None = None
        self._stop_event = threading.Event()
        self.stats: RunStats | None = None

    # -- public --------------------------------------------------------------------------------
    @property
    def result(self) -> ValuationResult:
        """The values of the last ``fit`` (partial if it was stopped or interrupted)."""
        if self._result is None:
            raise DvlError("No result yet: call fit(train) first.")
        return self._result.copy()

    def stop(self) -> None:
        """Ask a running ``fit`` to end after the current round (thread-safe)."""
        self._stop_event.set()

    def fit(self, data: Dataset | tuple[Any, Any]) -> TMCShapleyValuation:
        """Compute the values of the points of ``data``; returns self (see ``.result``)."""
        train = as_dataset(data, "data")
        if len(train) == 0:
            raise DvlValueError(
                "The training set is empty: there is nothing to value. Pass a Dataset with at "
                "least one point."
            )
        truncation = self._check_truncation()
        is_done = self._check_stopping()
        utility = as_utility(self.utility).with_dataset(train)
        path_note = self._configure_fast_path(utility)
        lockstep = self._check_lockstep(utility)
        entropy = resolve_entropy(self.seed)
        self._stop_event.clear()
        callbacks = list(self.callbacks)
        if self.progress:
            callbacks.append(TqdmProgress())

        cache = getattr(utility, "cache", None)
        if cache is not None:
            from .cache import open_cache

            cache = open_cache(cache)
        stats = RunStats(path=path_note)
        self.stats = stats
        result = ValuationResult.zeros(train.indices, train.names, algorithm=self.algorithm)
        result.meta.update(
            seed=entropy,
            truncation=repr(truncation),
            stopping=str(is_done),
            lockstep=lockstep,
            antithetic=self.antithetic,
            path=path_note,
        )
        self._result = result
        for cb in callbacks:
            cb.on_start(self, stats)

        from .parallel import SubsetEvaluator

        def progress() -> None:
            for cb in callbacks:
                cb.on_evaluations(stats)

        evaluator = SubsetEvaluator(utility, stats, cache=cache, on_progress=progress)
        sampler = PermutationSampler(len(train), entropy, self.antithetic)
        try:
            with evaluator:
                self._run(evaluator, sampler, truncation, is_done, lockstep, result, stats,
                          callbacks)
        except KeyboardInterrupt:
            self._finish(result, stats, callbacks, evaluator, "interrupted", Status.Failed)
            raise
        except BaseException:
            self._finish(result, stats, callbacks, evaluator, "error", Status.Failed)
            raise
        return self

    # -- the loop ------------------------------------------------------------------------------
    def _run(
        self,
        evaluate: Any,
        sampler: PermutationSampler,
        truncation: TruncationPolicy,
        is_done: StoppingCriterion,
        lockstep: int,
        result: ValuationResult,
        stats: RunStats,
        callbacks: list[ValuationCallback],
    ) -> None:
        n = sampler.n
        empty = np.empty(0, dtype=np.int64)
        # The full set first: truncation needs its utility, and a model that cannot be fitted
        # on all the data fails here, at once, with its own error instead of after many fits.
        u_empty, total = evaluate([empty, np.arange(n, dtype=np.int64)])
        if stats.failed_fits:
            raise DvlValueError(
                f"Fitting the model on the whole training set failed: {evaluate.first_error}. "
                "Check that the model accepts this data (or pass catch_errors=False to "
                "ModelUtility for the full traceback)."
            )
        result.meta.update(total_utility=float(total), empty_utility=float(u_empty))

        active: list[_Walk] = []
        finished: dict[int, np.ndarray] = {}  # permutation index -> (perm, marginals)
        next_index = merged = 0
        fired = False
        reason = "done"
        while True:
            # Start no permutation the criterion cannot use: MinUpdates(100) needs exactly
            # 100, and with 64 walking side by side, draining the ones in flight when it fired
            # used to almost double the fits of a run.
            needed = None if fired else is_done.updates_needed(result)
            while not fired and len(active) < lockstep and (
                needed is None or next_index - merged < needed
            ):
                active.append(_Walk(next_index, sampler.permutation(next_index), u_empty))
                next_index += 1
            if not active:
                break
            values = evaluate([w.next_subset() for w in active])
            for walk, value in zip(active, values, strict=True):
                walk.advance(float(value), truncation, total)
                if walk.done:
                    finished[walk.index] = (walk.perm, walk.marginals)
            active = [w for w in active if not w.done]

            merged_any = False
            while merged in finished:
                perm, marginals = finished.pop(merged)
                result.update(perm, marginals)
                merged += 1
                stats.permutations = merged
                merged_any = True
                if not fired:
                    status = is_done(result)
                    stats.completion = float(is_done.completion())
                    if status != Status.Pending:
                        fired = True
                        result.status = status
            if merged_any:
                for cb in callbacks:
                    cb.on_update(result, stats)
            if time_is_up(is_done):
                if not fired:  # the budget ran out since the last check (only merges check)
                    result.status = is_done(result)
                    stats.completion = float(is_done.completion())
                # A time limit ends the run now rather than after the permutations in flight
                # (up to a whole permutation of fits each). Those are dropped, and so are
                # finished ones waiting for an earlier one to merge: keeping only a prefix of
                # the permutation sequence avoids favouring permutations that truncate early.
                # Their utilities are in the cache, so a resumed run computes none again.
                # Count criteria drain instead, which keeps a seeded run's result
                # independent of timing.
                result.meta["dropped_permutations"] = len(active) + len(finished)
                reason = "time limit"
                break
            if self._stop_event.is_set():
                reason = "stopped"
                break
        self._finish(result, stats, callbacks, evaluate, reason, result.status)

    # -- helpers -------------------------------------------------------------------------------
    def _finish(
        self,
        result: ValuationResult,
        stats: RunStats,
        callbacks: list[ValuationCallback],
        evaluator: Any,
        reason: str,
        status: Status,
    ) -> None:
        if result.meta.get("ended"):
            return
        if reason != "done":
            result.status = status
        result.meta.update(stats.as_dict())
        result.meta["ended"] = reason
        # Views first: a warning turned into an error must not keep them from finishing.
        for cb in callbacks:
            try:
                cb.on_finish(result, stats)
            except Exception as exc:  # noqa: BLE001 - a broken view must not lose the result
                warnings.warn(f"progress callback {cb!r} failed: {exc}", stacklevel=2)
        if stats.failed_fits and reason != "error":
            warnings.warn(
                f"{stats.failed_fits} of {stats.fits} fits failed and scored the "
                f"default; the first error was: {evaluator.first_error}. Pass "
                "catch_errors=False to ModelUtility to see the full traceback.",
                FailedFitsWarning,
                stacklevel=3,
            )

    def _check_truncation(self) -> TruncationPolicy:
        if self.truncation is None:
            return NoTruncation()
        if not isinstance(self.truncation, TruncationPolicy):
            raise DvlTypeError(
                "truncation must be NoTruncation(), FixedTruncation(fraction) or "
                "RelativeTruncation(rtol, burn_in_fraction); "
                f"got {describe_value(self.truncation)}."
            )
        return self.truncation

    def _check_stopping(self) -> StoppingCriterion:
        if self.is_done is None:
            raise DvlValueError(
                "is_done is required: say when to stop, e.g. is_done=MinUpdates(100) or "
                "MinUpdates(100) | MaxTime(600)."
            )
        check_stopping_criterion(self.is_done, "is_done")
        self.is_done.reset()
        return self.is_done

    def _check_lockstep(self, utility: Any) -> int:
        if self.lockstep is None:
            return max(8, 2 * int(getattr(utility, "preferred_batch", 1)))
        if isinstance(self.lockstep, bool) or not isinstance(self.lockstep, int) or (
            self.lockstep < 1
        ):
            raise DvlValueError(
                f"lockstep must be a positive integer (permutations walked side by side); "
                f"got {self.lockstep!r}."
            )
        return self.lockstep

    def _configure_fast_path(self, utility: Any) -> str:
        """Pick one-by-one fits or the fast path; returns a note saying which and why."""
        if self.batched not in ("auto", True, False):
            raise DvlValueError(
                f"batched must be 'auto', True or False; got {self.batched!r}."
            )
        configure = getattr(utility, "configure_fast_path", None)
        if configure is None:
            if self.batched is True:
                raise DvlValueError(
                    "batched=True needs a ModelUtility over a skorch net; this utility is a "
                    "plain function. Use batched='auto' or False."
                )
            return utility.describe_path() if hasattr(utility, "describe_path") else "function"
        return configure(self.batched)
