"""Choosing how a run trains its models: the fast path or one fit at a time, once per run.

:func:`choose_evaluator` looks at the bound utility (and a few real training rows, for the
fast path's probe) and returns the evaluator the driver will use; :func:`fallback_evaluator`
is what the driver switches to when the fast path fails mid-run under ``batched="auto"``.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np

from .dataset import Dataset
from .evaluators import Evaluator, FunctionEvaluator, OneByOneEvaluator
from .exceptions import DvlValueError, FastPathUnsupported
from .utility import ModelUtility, Utility
from .utils import is_skorch_net

__all__ = ["choose_evaluator", "fallback_evaluator", "fast_path_reason", "reseeded"]

log = logging.getLogger("dvl_jupyter")


def fast_path_reason(utility: ModelUtility, probe: Dataset | None = None) -> str | None:
    """None when the fast path can train the utility's model, else why not (one line).

    With ``probe`` (the training data), a few real rows go through one training step of the
    trainer the net would get, so a module that fails under torch.func (data-dependent Python
    control flow, say) is caught here rather than in the middle of a run.
    """
    model = utility.model
    if not is_skorch_net(model):
        return f"{type(model).__name__} is not a skorch net (the fast path trains torch modules)"
    if not utility.clone_before_fit:
        return "clone_before_fit=False asks to refit one shared model"
    try:
        from . import fastpath
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        return f"the fast path is not available ({exc})"
    if probe is None:
        return fastpath.unsupported_reason(model)
    x, y = probe.data(np.arange(min(4, len(probe))))
    return fastpath.unsupported_reason(model, x, y)


def choose_evaluator(utility: Utility, batched: bool | str = "auto") -> Evaluator:
    """The evaluator for a run over a bound utility (``utility.with_dataset(train)``).

    ``batched="auto"``: the fast path when the model can take it (checked with real rows),
    else one-by-one fits, saying why in ``evaluator.path``; ``True``: the fast path or an
    error naming what stops it; ``False``: one-by-one fits.
    """
    if not isinstance(utility, ModelUtility):
        if batched is True:
            raise DvlValueError(
                "batched=True needs a ModelUtility over a skorch net; this utility is a "
                "plain function. Use batched='auto' or False."
            )
        return FunctionEvaluator(utility)
    if batched is False:
        return OneByOneEvaluator(utility, "one-by-one fits (batched=False)")
    reason = fast_path_reason(utility, utility.training_data)
    if reason is None:
        from .fastpath import FastPathEvaluator

        return FastPathEvaluator(utility, required=batched is True)
    if batched is True:
        raise FastPathUnsupported(
            f"batched=True, but the fast path cannot train this model: {reason}. "
            "Use batched='auto' to fall back to one-by-one fits."
        )
    log.info("fitting one by one: %s", reason)
    return OneByOneEvaluator(utility, f"one-by-one fits: {reason}")


def reseeded(evaluator: Any, random_state: int) -> Any:
    """The same evaluator over the same model trained from another ``random_state``."""
    other = copy.copy(evaluator)
    other.utility = evaluator.utility.reseeded(random_state)
    return other


def fallback_evaluator(evaluator: Any, reason: str) -> OneByOneEvaluator:
    """The one-by-one evaluator that replaces a fast path that failed mid-run."""
    return OneByOneEvaluator(evaluator.utility,
                             f"one-by-one fits: the fast path failed ({reason})")
