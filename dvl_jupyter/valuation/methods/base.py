"""The method seam: what every valuation method shares, and the little each one adds.

A valuation method decides which subsets to evaluate and how their utilities become values.
Everything else about a ``fit`` is shared: checking the parameters against the method's
``_parameter_constraints``, the run itself (:class:`~dvl_jupyter.valuation.driver.Run`:
evaluation through the cache and workers, progress callbacks, stopping, how it ended), the
result and its display. A new method is one module with a subclass of
:class:`ValuationMethod` (or :class:`UtilityValuation` when it evaluates a utility on
subsets) that implements :meth:`ValuationMethod._fit`::

    class LOOValuation(UtilityValuation):
        algorithm = "Leave-one-out"

        def _fit(self, run):
            self._bind(run)                      # evaluator and cache, chosen once
            _, total = run.evaluate_ends()
            without = run.evaluate([np.delete(all, i) for i in range(n)])
            run.result.update(np.arange(n), total - without)
            run.finish(RunEnd.DONE)
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..cachedir import CacheDirectory
from ..callbacks import RunStats, TqdmProgress, ValuationCallback
from ..dataset import Dataset, as_dataset
from ..diagnostics import training_noise
from ..driver import Run
from ..ending import RunEnd
from ..evaluators import Evaluator
from ..exceptions import DvlError, DvlValueError
from ..params import BATCHED, FLAG, validate_params
from ..path_choice import choose_evaluator, reseeded
from ..result import ValuationResult
from ..utility import ModelUtility, Utility, as_utility

__all__ = ["ValuationMethod", "UtilityValuation"]

#: Seeds of the training-noise probe (two fits each).
NOISE_SEEDS = 4


class ValuationMethod(abc.ABC):
    """Base of every valuation method: ``fit(train)``, ``result``, ``stop()``.

    Parameters
    ----------
    progress
        Show a tqdm bar (``tqdm.auto``) that moves with every utility evaluation.
    callbacks
        :class:`~dvl_jupyter.valuation.callbacks.ValuationCallback` objects (progress views).
    """

    #: The method's name, as results and displays show it.
    algorithm: ClassVar[str] = ""
    #: What each constructor argument may be (see :mod:`~dvl_jupyter.valuation.params`);
    #: subclasses extend it. Checked when ``fit`` starts: constructors only store.
    _parameter_constraints: ClassVar[dict[str, Any]] = {"progress": FLAG}

    def __init__(self, *, progress: bool = False,
                 callbacks: Sequence[ValuationCallback] = ()) -> None:
        self.progress = progress
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

    def fit(self, data: Dataset | tuple[Any, Any]) -> ValuationMethod:
        """Compute the values of the points of ``data``; returns self (see ``.result``)."""
        train = as_dataset(data, "data")
        if len(train) == 0:
            raise DvlValueError(
                "The training set is empty: there is nothing to value. Pass a Dataset with at "
                "least one point."
            )
        self.validate()
        self._stop_event.clear()
        callbacks = list(self.callbacks) + ([TqdmProgress()] if self.progress else [])
        run = Run(self, train, callbacks, self._stop_event)
        self._result, self.stats = run.result, run.stats
        with run:
            self._fit(run)
            run.finish(RunEnd.DONE)  # a method that ended otherwise has said so already
        return self

    def validate(self) -> None:
        """Check the parameters against ``_parameter_constraints`` (one message per rule)."""
        validate_params(vars(self), self._parameter_constraints)

    # -- what a method implements --------------------------------------------------------------
    @abc.abstractmethod
    def _fit(self, run: Run) -> None:
        """Evaluate what the method needs through ``run`` and fill ``run.result``; end with
        ``run.finish(...)`` unless the run simply completes (then ``fit`` says "done")."""


class UtilityValuation(ValuationMethod):
    """Base of the methods that evaluate a utility on subsets of the training set.

    Parameters
    ----------
    utility
        A :class:`~dvl_jupyter.valuation.utility.ModelUtility`, or any callable
        ``u(indices) -> float`` over positions of the training set.
    batched
        ``"auto"``: train many models at once when the model allows it (the fast path),
        otherwise fit one by one and say why; ``True``: require the fast path; ``False``: never.
    """

    _parameter_constraints: ClassVar[dict[str, Any]] = {
        **ValuationMethod._parameter_constraints,
        "batched": BATCHED,
    }

    def __init__(self, utility: Any, *, batched: bool | str = "auto", progress: bool = False,
                 callbacks: Sequence[ValuationCallback] = ()) -> None:
        super().__init__(progress=progress, callbacks=callbacks)
        self.utility = utility
        self.batched = batched

    def _bind(self, run: Run) -> Evaluator:
        """Bind the utility to the run's training data, choose the evaluator once (probing the
        fast path with real rows) and open the cache; returns the evaluator."""
        utility: Utility = as_utility(self.utility).with_dataset(run.train)
        run.stage("checking the fast path")
        evaluator = choose_evaluator(utility, self.batched)
        run.use(evaluator, CacheDirectory.open(utility.cache))
        return evaluator

    def _probe_noise(self, run: Run, evaluator: Evaluator, u_empty: float, total: float,
                     seed: int) -> None:
        """Measure, before the run, how much one marginal varies with the training seed,
        against a point's average effect; into ``meta["noise"]`` and the progress view.

        ``NOISE_SEEDS`` pairs ``(S, S + i)``, each pair trained with another ``random_state``
        of the model (independently or coupled, as the run will train), for one random ``S``
        of a quarter of the points: ``2 * NOISE_SEEDS`` fits, cached like any other.
        """
        utility = getattr(evaluator, "utility", None)
        n = len(run.train)
        if not isinstance(utility, ModelUtility) or n < 4:
            return  # a plain function has no training noise to measure
        run.stage("estimating training noise")
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31,)))
        order = rng.permutation(n)
        s, i = np.sort(order[: n // 4]), order[n // 4]
        with_i = np.sort(np.append(s, i))
        marginals, scores = [], []
        for k in range(NOISE_SEEDS):
            values = run.evaluate([s, with_i], reseeded(evaluator, utility.random_state + 1 + k))
            scores.append(values[0])
            marginals.append(values[1] - values[0])
        noise = training_noise(np.array(marginals), np.array(scores), total - u_empty, n)
        run.result.meta["noise"] = noise
        run.stage(f"training noise: {noise['text']}")
