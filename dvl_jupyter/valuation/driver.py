"""The run every valuation method shares: evaluation, counting, progress, stopping, ending.

A method decides which subsets to evaluate and how their utilities become values; everything
else about one ``fit`` is here, in :class:`Run`, and knows nothing of the method:

- **evaluation**: :meth:`Run.evaluate` sends subsets through the cache and joblib's workers to
  the evaluator chosen for the run (:class:`~dvl_jupyter.valuation.parallel.SubsetEvaluator`),
  counts fits and failures, and follows a fast path that gave up (``batched="auto"``) by
  carrying on one fit at a time and saying so;
- **progress**: the callbacks (:class:`~dvl_jupyter.valuation.callbacks.ValuationCallback`)
  hear about stages, evaluations, updates and the end;
- **stopping**: :meth:`Run.check` asks the criterion and records its completion;
  :attr:`Run.stop_requested` is a ``stop()`` from another thread;
- **ending**: a run ends once, as a :class:`~dvl_jupyter.valuation.ending.RunEnd`; an
  interrupt or an error ends it too (``with run:``), keeping the partial result.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .callbacks import RunStats, ValuationCallback
from .diagnostics import Reliability, advice, reliability
from .ending import RunEnd
from .exceptions import DvlValueError, warn_user
from .parallel import SubsetEvaluator
from .result import Status, ValuationResult

if TYPE_CHECKING:
    from .cachedir import CacheDirectory
    from .dataset import Dataset
    from .evaluators import Evaluator
    from .failures import Failure
    from .stopping import StoppingCriterion

__all__ = ["FailedFitsWarning", "Run"]

log = logging.getLogger("dvl_jupyter")

#: How to make a counted failure stop the run and show its traceback (Python, the magic).
_ADVICE = ("catch_errors=False stops at the first failure with its traceback (%%shapley: "
           "--debug).")


class FailedFitsWarning(UserWarning):
    """Some evaluations failed (raised, or gave NaN) and scored the default
    (``catch_errors=True``): one warning per run, pointing at the user's line."""


class Run:
    """One ``fit`` of a valuation method: the shared machinery (see the module docstring).

    Use as a context manager around the method's work: leaving it by a keyboard interrupt
    ends the run as ``interrupted``, by an error as ``error``, both keeping what was merged.
    """

    def __init__(
        self,
        method: Any,
        train: Dataset,
        callbacks: Sequence[ValuationCallback],
        stop_event: threading.Event,
    ) -> None:
        self.method = method
        self.train = train
        self.callbacks = list(callbacks)
        self._stop_event = stop_event
        self.stats = RunStats()
        self.result = ValuationResult.zeros(train.indices, train.names,
                                            algorithm=method.algorithm)
        self._evaluator: SubsetEvaluator | None = None
        self._stack = contextlib.ExitStack()
        self.ended: RunEnd | None = None
        self._reliability: Reliability | None = None
        self._samples_word = "samples"

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> Run:
        for cb in self.callbacks:
            cb.on_start(self.method, self.stats)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self._stack.close()  # joblib's workers
        finally:
            if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
                self.finish(RunEnd.INTERRUPTED, Status.Failed)
            elif exc_type is not None:
                self.finish(RunEnd.ERROR, Status.Failed)

    def stage(self, text: str) -> None:
        """Say what the run is doing now (shown by the progress views)."""
        self.stats.stage = text
        for cb in self.callbacks:
            cb.on_stage(self.stats)

    def use(self, evaluator: Evaluator, cache: CacheDirectory | None) -> None:
        """Evaluate through ``evaluator`` (chosen once for the run), with ``cache``'s values;
        starts joblib's workers, which stay up until the run ends."""
        self.set_path(evaluator.path)
        self._evaluator = SubsetEvaluator(
            evaluator, self.stats, cache=None if cache is None else cache.values,
            on_progress=self._progress, on_fallback=self._fallback,
        )
        self.stage("starting workers")
        self._stack.enter_context(self._evaluator)

    def set_path(self, path: str) -> None:
        """Say how the values are computed (the progress view and ``meta["path"]`` show it)."""
        self.stats.path = path
        self.result.meta["path"] = path

    def _fallback(self, path: str) -> None:
        log.info("%s; the run goes on one fit at a time", path)
        self.set_path(path)
        self.stage(self.stats.stage)

    def _progress(self) -> None:
        for cb in self.callbacks:
            cb.on_evaluations(self.stats)

    def progressed(self, completion: float, evaluations: int | None = None) -> None:
        """For methods that evaluate no utility (closed forms): how far they are, and how
        many of their own steps (test points...) are done; the views refresh."""
        self.stats.completion = float(completion)
        if evaluations is not None:
            self.stats.evaluations = int(evaluations)
        self._progress()

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, subsets: Sequence[np.ndarray],
                 evaluator: Evaluator | None = None) -> np.ndarray:
        """Utility values of ``subsets`` (positions of the training set), in order; with
        ``evaluator``, computed by it instead of the run's own, through the same cache."""
        if self._evaluator is None:
            raise RuntimeError("Run.use(evaluator, cache) must come before Run.evaluate")
        return self._evaluator(subsets, evaluator)

    @property
    def first_failure(self) -> Failure | None:
        """The first failed evaluation (step, the user's function, its traceback), or None."""
        return None if self._evaluator is None else self._evaluator.first_failure

    @property
    def first_error(self) -> str | None:
        """The first failed evaluation's error, as one line (None when none failed)."""
        f = self.first_failure
        return None if f is None else f"{f.culprit}: {f.error}"

    def evaluate_ends(self) -> tuple[float, float]:
        """``u(empty)`` and ``u(full set)``, evaluated first.

        A model that cannot be fitted on all the data fails here, at once, with an error that
        says which step failed (fitting on the whole training set, or scoring it on the test
        set) and whose code (a :class:`~dvl_jupyter.valuation.exceptions.UserCodeError`),
        instead of after many fits; methods that truncate need the total anyway.
        """
        self.stage("evaluating the full training set")
        n = len(self.train)
        u_empty, total = self.evaluate([np.empty(0, dtype=np.int64),
                                        np.arange(n, dtype=np.int64)])
        failure = self.first_failure
        if self.stats.failed_fits and failure is not None:
            failure.raise_error(n)
        if self.stats.one_class:
            raise DvlValueError(
                f"The training set has a single class ({n} points): the classifier cannot be "
                "fitted on it, so every value would be the default. Value a training set "
                "with at least two classes."
            )
        self.result.meta.update(total_utility=float(total), empty_utility=float(u_empty))
        return float(u_empty), float(total)

    # -- how far to trust it --------------------------------------------------------------------
    def record_halves(self, half_a: np.ndarray, half_b: np.ndarray, samples: int,
                      what: str = "permutations", test_zero: bool = True) -> Reliability:
        """The values of the two halves of the samples so far: computes the reliability
        figures (:mod:`~dvl_jupyter.valuation.diagnostics`) into ``stats`` and ``meta``.
        Methods call it before checking the criterion, which may read them; ``test_zero``
        False for values whose sign means nothing (out-of-bag accuracies)."""
        r = self.result
        rel = reliability(half_a, half_b, r.values, r.stderr, r.counts, samples, test_zero)
        self.stats.reliability = rel.reliability
        self.stats.distinguishable = rel.distinguishable or 0
        r.meta.update(reliability=rel.as_dict()["reliability"],
                      distinguishable=rel.distinguishable, reliability_samples=samples)
        self._reliability, self._samples_word = rel, what
        return rel

    # -- progress and stopping -----------------------------------------------------------------
    def updated(self) -> None:
        """Tell the views that values were merged into :attr:`result`."""
        for cb in self.callbacks:
            cb.on_update(self.result, self.stats)

    def check(self, criterion: StoppingCriterion) -> Status:
        """Check ``criterion`` once on the result; records its completion and status."""
        status = criterion(self.result)
        self.stats.completion = float(criterion.completion())
        if status != Status.Pending:
            self.result.status = status
        return status

    @property
    def stop_requested(self) -> bool:
        """Whether ``stop()`` was called (from any thread) since the run started."""
        return self._stop_event.is_set()

    # -- the end -------------------------------------------------------------------------------
    def finish(self, end: RunEnd, status: Status | None = None) -> None:
        """End the run (once): record how, tell the views, report failed fits."""
        if self.ended is not None:
            return
        self.ended = end
        result, stats = self.result, self.stats
        if status is not None and end is not RunEnd.DONE:
            result.status = status
        result.meta.update(stats.as_dict())
        result.meta["ended"] = end.value
        notes = _notes(stats)
        if notes:
            result.meta["notes"] = notes
        if self._reliability is not None:
            result.meta["advice"] = advice(self._reliability, self._samples_word,
                                           getattr(self.method, "algorithm", ""))
        # Views first: a warning turned into an error must not keep them from finishing.
        for cb in self.callbacks:
            try:
                cb.on_finish(result, stats)
            except Exception as exc:  # noqa: BLE001 - a broken view must not lose the result
                warnings.warn(f"progress callback {cb!r} failed: {exc}", stacklevel=2)
        if stats.failed_fits and end is not RunEnd.ERROR:
            failure = self.first_failure
            nan = f" ({stats.non_finite} gave no finite number)" if stats.non_finite else ""
            first = f"; the first: {failure.sentence(len(self.train))}" if failure else ""
            # catch_errors belongs to ModelUtility; a plain function has nothing to switch
            how = "" if failure is None or failure.step == "utility" else f" {_ADVICE}"
            warn_user(
                f"{stats.failed_fits} of {stats.evaluations} evaluations failed and scored "
                f"the default{nan}{first}".rstrip(".") + "." + how,
                FailedFitsWarning,
            )


def _notes(stats: RunStats) -> list[str]:
    """What the result says once about how its values were made (shown with it)."""
    from .utils import plural

    notes = []
    if stats.one_class:
        notes.append(f"{plural(stats.one_class, 'subset')} with a single class could not be "
                     "fitted and scored the default, as in pyDVL.")
    if stats.failed_fits:
        nan = f", {stats.non_finite} of them NaN or infinite" if stats.non_finite else ""
        notes.append(f"{plural(stats.failed_fits, 'evaluation')} failed and scored the "
                     f"default{nan}.")
    return notes
