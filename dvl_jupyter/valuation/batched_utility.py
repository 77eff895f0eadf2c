"""Glue between ModelUtility and the fast path (many subset models trained at once).

Kept apart from ``utility.py`` so the one-by-one path reads on its own, and from
``fastpath.py`` so the trainer knows nothing about scorers or caching.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .utility import EvaluationBatch, subset_seed

__all__ = ["fast_path_reason", "fast_path_block_size", "evaluate_batched"]

#: Models trained together in one block (per worker).
DEFAULT_BLOCK = 32


def _is_skorch_net(model: Any) -> bool:
    try:
        from skorch import NeuralNet
    except ImportError:  # pragma: no cover - skorch is a dependency
        return False
    return isinstance(model, NeuralNet)


def fast_path_reason(utility: Any) -> str | None:
    """None when the fast path can train the utility's model, else why not (one line)."""
    model = utility.model
    if not _is_skorch_net(model):
        return f"{type(model).__name__} is not a skorch net (the fast path trains torch modules)"
    if not utility.clone_before_fit:
        return "clone_before_fit=False asks to refit one shared model"
    try:
        from . import fastpath
    except ImportError as exc:
        return f"the fast path is not available ({exc})"
    return fastpath.unsupported_reason(model)


def fast_path_block_size(utility: Any) -> int:
    return DEFAULT_BLOCK


def evaluate_batched(utility: Any, subsets: Sequence[np.ndarray]) -> EvaluationBatch:
    """Train one model per non-empty subset at once, then score each with the utility's scorer."""
    from . import fastpath

    # sorted, as in one-by-one fits: the rows a model sees depend on the set alone
    subsets = [np.sort(np.asarray(s, dtype=np.int64)) for s in subsets]
    values = np.full(len(subsets), float(utility.scorer.default))
    todo = [i for i, s in enumerate(subsets) if len(s) > 0]
    if not todo:
        return EvaluationBatch(values)
    x, y = utility.training_data.data()
    seeds = [subset_seed(subsets[i], utility.random_state) for i in todo]
    n_failed, first_error = 0, None
    try:
        scores = fastpath.fit_score_many(
            utility.model, x, y, [subsets[i] for i in todo], seeds, utility.scorer
        )
    except Exception as exc:  # noqa: BLE001 - same contract as one-by-one fits
        if not utility.catch_errors:
            raise
        return EvaluationBatch(values, len(todo), len(todo), f"{type(exc).__name__}: {exc}")
    bounds = getattr(utility.scorer, "range", (-np.inf, np.inf))
    for i, score in zip(todo, scores, strict=True):
        if np.isfinite(score):
            values[i] = float(np.clip(score, *bounds))
    return EvaluationBatch(values, len(todo), n_failed, first_error)
