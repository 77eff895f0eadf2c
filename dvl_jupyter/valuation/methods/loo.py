r"""Leave-one-out values: what the full training set loses without each point.

.. math:: v_i = u(N) - u(N \setminus \{i\})

The simplest marginal-contribution method and a baseline for the others: ``n + 2`` utility
evaluations (the empty set, which costs no fit, the full set, and the ``n`` sets that leave one
point out), each through the run's evaluator, so they are cached, spread over joblib's workers
and trained many at once on the fast path when the model allows it. There is one sample per
point: the values carry no standard error of their own (counts 1, variances 0), and for a
model whose training is random each value is one draw of that training noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from joblib import Parallel, effective_n_jobs

from ..callbacks import ValuationCallback
from ..driver import Run
from ..ending import RunEnd
from ..result import Status
from .base import UtilityValuation

__all__ = ["LOOValuation", "round_size"]

#: About how many rounds a run's evaluations are split into, so progress and values move.
ROUNDS = 20


def round_size(total: int, batch_size: int) -> int:
    """How many subsets to send per round: whole blocks for every worker (the fast path trains
    ``batch_size`` models per task), and at most about ``ROUNDS`` rounds."""
    block = max(1, int(batch_size)) * max(1, effective_n_jobs(Parallel().n_jobs))
    return block * max(1, math.ceil(total / (ROUNDS * block)))


class LOOValuation(UtilityValuation):
    """Leave-one-out values of every training point (pyDVL's ``LOOValuation``).

    Parameters
    ----------
    utility
        A :class:`~dvl_jupyter.valuation.utility.ModelUtility`, or any callable
        ``u(indices) -> float`` over positions of the training set.
    progress
        Show a tqdm bar (``tqdm.auto``) that moves with every utility evaluation.
    batched
        ``"auto"``: train many models at once when the model allows it (the fast path),
        otherwise fit one by one and say why; ``True``: require the fast path; ``False``: never.
    callbacks
        :class:`~dvl_jupyter.valuation.callbacks.ValuationCallback` objects (progress views).

    Notes
    -----
    ``result.counts`` are 1 and ``result.variances`` 0 (one exact difference per point);
    ``result.meta`` has ``total_utility`` and ``empty_utility``. A run stopped early keeps the
    values of the points done so far (the others have count 0).

    Examples
    --------
    >>> result = LOOValuation(ModelUtility(model, scorer)).fit(train).result
    """

    algorithm = "Leave-One-Out"

    def __init__(self, utility: Any, progress: bool = False, batched: bool | str = "auto",
                 callbacks: Sequence[ValuationCallback] = ()) -> None:
        super().__init__(utility, batched=batched, progress=progress, callbacks=callbacks)

    def _fit(self, run: Run) -> None:
        evaluator = self._bind(run)
        n = len(run.train)
        everyone = np.arange(n, dtype=np.int64)
        _, total = run.evaluate_ends()
        run.stage("running")
        step = round_size(n, evaluator.batch_size)
        for start in range(0, n, step):
            points = everyone[start:start + step]
            without = run.evaluate([np.delete(everyone, i) for i in points])
            run.result.update(points, total - without)
            run.stats.completion = (start + len(points)) / n
            run.updated()
            if run.stop_requested and start + step < n:
                run.finish(RunEnd.STOPPED)
                return
        run.result.status = Status.Converged
        run.result.meta["exact"] = True  # no sampling: nothing to be reliable about
