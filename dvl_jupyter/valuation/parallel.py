"""Evaluate many subsets: the cache first, then joblib workers for what is missing.

Everything runs from the driver: it looks subsets up in the cache, sends only the misses to the
workers of whatever ``joblib.parallel_config`` says (loky by default; dask or ray beyond one
machine), writes the new values back in one transaction, and counts. Workers never touch the
cache, so evaluations done on remote machines are stored too.

When the fast path reports that it could not train a chunk (``batch.fallback``, under
``batched="auto"``), the evaluator is replaced by one-by-one fits for the rest of the run,
the chunk is computed again, and ``on_fallback`` tells the run why.

An evaluator with a ``width`` (an int) returns a vector per subset instead of a number (a bag
model's predictions for every point, for Data-OOB): values are then rows of a 2-D array,
cached as vectors, and its own ``fallback_evaluator(reason)``, when it has one, replaces it.
Subsets are told apart as multisets (sorted, duplicates kept), as the cache keys them.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs

from .callbacks import RunStats
from .evaluators import EvaluationBatch, Evaluator
from .failures import Failure
from .path_choice import fallback_evaluator
from .utils import torch_threads

if TYPE_CHECKING:
    from .cache import UtilityCache

__all__ = ["SubsetEvaluator"]


def _evaluate_in_worker(evaluator: Evaluator, subsets: list[np.ndarray]) -> EvaluationBatch:
    """Runs in a worker process: one torch thread per process (measured faster here)."""
    with torch_threads(1):
        return evaluator.evaluate_many(subsets)


@contextlib.contextmanager
def _quiet_worker_restarts() -> Iterator[None]:
    """Silence loky's warning about a worker it replaced; nothing is lost when it does.

    loky measures a worker's memory after its first task and replaces the worker once it has
    grown by 300 MB, for example when a reused worker that ran sklearn-only tasks first
    imports torch. The worker's pending tasks go to its replacement, so results are
    unaffected, but joblib warns "A worker stopped while some jobs were given to the executor
    ... memory leak", which reads like a failure. The warning comes from loky's manager
    thread; the filter list is process-wide, so the filter set here for the run applies there.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given",
                                category=UserWarning)
        yield


class SubsetEvaluator:
    """Cache-aware, parallel ``subsets -> values`` for one run.

    Use as a context manager so that joblib's workers stay alive between the many small
    rounds of a TMC run instead of being started for each.
    """

    def __init__(
        self,
        evaluator: Evaluator,
        stats: RunStats,
        cache: UtilityCache | None = None,
        on_progress: Callable[[], None] = lambda: None,
        on_fallback: Callable[[str], None] = lambda path: None,
    ) -> None:
        self.stats = stats
        self.on_progress = on_progress
        self.on_fallback = on_fallback
        self._cache = cache
        self._use(evaluator)
        self._parallel: Parallel | None = None
        self.n_jobs = 1
        self.first_failure: Failure | None = None

    def _use(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        fp = evaluator.fingerprint() if self._cache is not None else None
        # a utility without an identity (a plain function) is never cached
        self.cache = self._cache if fp is not None else None
        self._fp = fp
        width = getattr(evaluator, "width", None)
        self._width: int | None = None if width is None else int(width)
        self._shape: tuple[int, ...] = () if width is None else (int(width),)

    def __enter__(self) -> SubsetEvaluator:
        probe = Parallel()
        self.n_jobs = effective_n_jobs(probe.n_jobs)
        self._stack = contextlib.ExitStack()
        if self.n_jobs > 1:
            self._stack.enter_context(_quiet_worker_restarts())
            self._parallel = self._stack.enter_context(Parallel(return_as="generator"))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._parallel = None
        self._stack.__exit__(*exc)

    def _chunks(self, subsets: list[np.ndarray]) -> list[list[np.ndarray]]:
        """One subset per task for one-by-one fits (progress per fit); K for the fast path."""
        size = max(1, int(self.evaluator.batch_size))
        if size > 1 and subsets:
            # Equal chunks, a multiple of the workers in number: 100 subsets on 2 workers
            # with blocks of 32 are 4 chunks of 25, not 32, 32, 32 and 4 (one worker idle).
            workers = max(1, self.n_jobs)
            n_chunks = workers * -(-len(subsets) // (workers * size))
            size = -(-len(subsets) // n_chunks)
        return [subsets[i : i + size] for i in range(0, len(subsets), size)]

    def _record(self, chunk: list[np.ndarray], batch: EvaluationBatch) -> bool:
        """Store and count a chunk that came back; False when it must be computed again."""
        if batch.fallback is not None:
            if self.evaluator.batch_size > 1:  # the first failure of the run switches path
                own = getattr(self.evaluator, "fallback_evaluator", None)
                self._use(own(batch.fallback) if own is not None
                          else fallback_evaluator(self.evaluator, batch.fallback))
                self.on_fallback(self.evaluator.path)
            return False
        # Each chunk is stored as soon as it is back (one transaction), so an interrupt loses
        # at most the chunks still being computed.
        if self.cache is not None:
            self.cache.set_many(self._fp, chunk, batch.values, width=self._width)
        self.stats.evaluations += len(chunk)
        self.stats.fits += batch.n_fits
        self.stats.failed_fits += batch.n_failed
        self.stats.non_finite += batch.n_non_finite
        self.stats.one_class += batch.n_one_class
        if batch.first_failure is not None and self.first_failure is None:
            self.first_failure = batch.first_failure
        self.on_progress()
        return True

    def _compute(self, subsets: list[np.ndarray]) -> np.ndarray:
        chunks = self._chunks(subsets)
        evaluator = self.evaluator
        if self._parallel is None:
            batches = (evaluator.evaluate_many(chunk) for chunk in chunks)
        else:
            batches = self._parallel(
                delayed(_evaluate_in_worker)(evaluator, chunk) for chunk in chunks)
        out: list[np.ndarray] = []
        redo: list[int] = []
        for i, (chunk, batch) in enumerate(zip(chunks, batches, strict=True)):
            if self._record(chunk, batch):
                out.append(batch.values)
            else:
                out.append(np.full((len(chunk), *self._shape), np.nan))
                redo.append(i)
        if redo:  # the fast path gave up on these chunks: one fit at a time from now on
            again = self._compute([s for i in redo for s in chunks[i]])
            starts = np.cumsum([0] + [len(chunks[i]) for i in redo])
            for k, i in enumerate(redo):
                out[i] = again[starts[k]:starts[k + 1]]
        return np.concatenate(out) if out else np.empty((0, *self._shape))

    def __call__(self, subsets: Sequence[np.ndarray],
                 evaluator: Evaluator | None = None) -> np.ndarray:
        """One value per subset; equal subsets (as multisets) are computed once.

        ``evaluator`` computes these values instead of the run's own (e.g. the same model with
        other seeds, for the training-noise probe), through the same cache and workers.
        """
        if evaluator is not None:
            own = self.evaluator, self.cache, self._fp, self._width, self._shape
            self._use(evaluator)
            try:
                return self(subsets)
            finally:
                self.evaluator, self.cache, self._fp, self._width, self._shape = own
        unique: list[np.ndarray] = []
        position: dict[bytes, int] = {}
        where = []
        for subset in subsets:
            subset = np.asarray(subset, dtype=np.int64)
            key = np.sort(subset).tobytes()  # a multiset: duplicates are kept
            if key not in position:
                position[key] = len(unique)
                unique.append(subset)
            where.append(position[key])
        return self._values(unique)[np.asarray(where, dtype=np.int64)]

    def _values(self, subsets: list[np.ndarray]) -> np.ndarray:
        values = np.full((len(subsets), *self._shape), np.nan)
        missing = list(range(len(subsets)))
        if self.cache is not None:
            cached = self.cache.get_many(self._fp, subsets, width=self._width)
            missing = [i for i, v in enumerate(cached) if v is None]
            for i, v in enumerate(cached):
                if v is not None:
                    values[i] = v
            self.stats.cache_hits += len(subsets) - len(missing)
            if len(missing) < len(subsets):
                self.on_progress()
        if missing:
            values[missing] = self._compute([subsets[i] for i in missing])
        return values
