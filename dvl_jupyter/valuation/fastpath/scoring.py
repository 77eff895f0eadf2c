"""Scoring K trained models: batched forward passes behind any scorer.

A scorer calls ``net.predict_proba(x_test)`` (directly or through ``predict``/``score``); for
K models that is one batched forward pass, served to each model in turn, so scoring costs
about as much as one model's prediction. The package's own accuracy scorer is computed
straight from that pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..utils import to_numpy, torch_threads
from .spec import NetSpec, net_spec, unwrap
from .train import FitResult, kernel_for, train_models

__all__ = ["fit_predict_many", "fit_score_many", "predict_proba_many"]


def _stack_states(spec: NetSpec, states: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor:
    return torch.stack([
        torch.cat([st[n].detach().reshape(-1).to(spec.dtype).cpu() for n in spec.names])
        for st in states
    ])


def predict(spec: NetSpec, flat: torch.Tensor, buffers: list[dict[str, torch.Tensor]] | None,
             x: Any, trainer: str, n_threads: int) -> np.ndarray:
    kernel = kernel_for(spec, x) if trainer in ("auto", "kernel") else "vmap requested"
    if not isinstance(kernel, str):
        xs = to_numpy(x).reshape(len(x), -1)
        out = torch.from_numpy(kernel.predict(xs, flat.cpu().numpy(), n_threads=n_threads))
    else:
        from .vmap import predict_vmap

        bufs = {}
        if spec.buffer_names:
            if buffers is None:
                raise ValueError("states without buffers")
            bufs = {n: torch.stack([b[n] for b in buffers]).to(spec.device)
                    for n in spec.buffer_names}
        out = predict_vmap(unwrap(spec.scratch.module_), flat.to(spec.device), bufs,
                           spec.layout, torch.as_tensor(x).to(spec.device))
    nonlin = spec.scratch._get_predict_nonlinearity()
    with torch.no_grad(), torch_threads(None if isinstance(kernel, str) else 1):
        probs = torch.stack([nonlin(o) for o in out])
    return probs.detach().cpu().numpy()


def predict_proba_many(net: Any, states: Sequence[dict[str, torch.Tensor]], x: Any, *,
                       trainer: str = "auto", n_threads: int | None = None) -> np.ndarray:
    """``net.predict_proba(x)`` for each state at once: an array (K, N, ...), as skorch returns
    it (the module's output passed through the net's predict nonlinearity)."""
    spec = net_spec(net)
    if isinstance(spec, str):
        raise ValueError(f"the fast path cannot use this net: {spec}")
    threads = torch.get_num_threads() if n_threads is None else max(1, int(n_threads))
    flat = _stack_states(spec, states)
    buffers = [{n: st[n] for n in spec.buffer_names} for st in states]
    return predict(spec, flat, buffers, x, trainer, threads)


def fit_predict_many(net: Any, x: Any, y: Any, subsets: Sequence[np.ndarray],
                     seeds: Sequence[int], targets: Sequence[Any], *, trainer: str = "auto",
                     n_threads: int | None = None) -> list[np.ndarray]:
    """Fit one model per subset (as :func:`fit_many`; rows may repeat, as in a bootstrap bag)
    and return, for each array of ``targets``, the K models' ``predict_proba`` at once: a list
    of arrays (K, N_target, ...), as skorch returns them."""
    threads = torch.get_num_threads() if n_threads is None else max(1, int(n_threads))
    result = train_models(net, x, y, subsets, seeds, trainer=trainer, n_threads=threads)
    return [predict(result.spec, result.flat, result.buffers, t, result.trainer, threads)
            for t in targets]


class _BatchedPredictions:
    """Serves ``predict_proba`` for K models from one batched forward pass per input array.

    A scorer calls ``net.predict_proba(x_test)`` (directly or through ``predict``/``score``)
    with the same test array for every model. The first call computes the outputs of all K
    models at once; the others are served from it. Any other input goes through the net
    itself, whose module holds the model's weights, so answers are always the model's.
    """

    def __init__(self, spec: NetSpec, result: FitResult, net: Any, trainer: str,
                 n_threads: int) -> None:
        self.spec, self.result, self.net = spec, result, net
        self.trainer, self.n_threads = trainer, n_threads
        self.x: Any = None
        self.probs: np.ndarray | None = None
        self.misses = 0

    def __call__(self, k: int, x: Any) -> np.ndarray:
        if self.probs is not None and x is self.x:
            return self.probs[k]
        if self.x is None and isinstance(x, (np.ndarray, torch.Tensor)):
            self.x = x
            self.probs = predict(self.spec, self.result.flat, self.result.buffers, x,
                                  self.trainer, self.n_threads)
            return self.probs[k]
        self.misses += 1
        return type(self.net).predict_proba(self.net, x)


def _serving(cache: _BatchedPredictions, k: int) -> Any:
    """``predict_proba`` of model ``k``, as a real function of that name: sklearn's scorers
    find the response method by its ``__name__`` (a ``functools.partial`` has none, and
    sklearn then looks for ``.func.__name__``, which fails for every probability scorer)."""

    def predict_proba(X: Any) -> np.ndarray:  # noqa: N803 - sklearn's and skorch's name
        return cache(k, X)

    return predict_proba


def _accuracy_scorer(net: Any, spec: NetSpec, scorer: Any) -> tuple[Any, np.ndarray] | None:
    """``(x_test, y_test)`` when ``scorer`` is this package's accuracy scorer on a classifier.

    Then ``scorer(net)`` is ``mean(net.predict(x_test) == y_test)`` (skorch predicts the argmax
    of ``predict_proba``), clipped to the scorer's range, and it can be computed for all K
    models from one batched forward pass. sklearn's scorer machinery costs ~3 ms per call
    here, about a fifth of a whole fast-path evaluation.
    """
    from skorch import NeuralNetClassifier

    from ..scorers import SupervisedScorer

    if not (isinstance(scorer, SupervisedScorer) and isinstance(net, NeuralNetClassifier)):
        return None
    if scorer.scoring != "accuracy" or not spec.predict_shortcut:
        return None
    if type(scorer).__call__ is not SupervisedScorer.__call__:
        return None
    x_test, y_test = scorer._test_xy()
    y_test = to_numpy(y_test)
    if y_test.ndim != 1 or not isinstance(x_test, (np.ndarray, torch.Tensor)):
        return None
    return x_test, y_test


def fit_score_many(net: Any, x: Any, y: Any, subsets: Sequence[np.ndarray],
                   seeds: Sequence[int], scorer: Any, *, trainer: str = "auto",
                   n_threads: int | None = None,
                   orders: Sequence[np.ndarray] | None = None,
                   errors: list[tuple[int, Exception]] | None = None) -> np.ndarray:
    """Fit one model per subset (as :func:`fit_many`) and score each with ``scorer(net)``.

    Each model is loaded into one initialised copy of the net (with what ``fit`` records
    besides the weights, such as ``classes_``), so any scorer works; the net's
    ``predict_proba`` is answered from one batched forward pass over all K models, so scoring
    costs about as much as one model's prediction. The package's own accuracy scorer is
    computed directly from that pass (same numbers, without sklearn's per-call overhead).
    Returns the scores as the scorer returns them (float64). With ``errors`` (a list), a
    scorer that raises for model ``k`` does not stop the others: ``(k, exception)`` is
    appended and its score is NaN (one model with a single class must not send the whole
    block back to one-by-one fits); without it, the exception propagates.
    """
    threads = torch.get_num_threads() if n_threads is None else max(1, int(n_threads))
    result = train_models(net, x, y, subsets, seeds, trainer=trainer, n_threads=threads,
                          orders=orders)
    spec = result.spec
    direct = _accuracy_scorer(net, spec, scorer)
    if direct is not None:
        x_test, y_test = direct
        probs = predict(spec, result.flat, result.buffers, x_test, result.trainer, threads)
        acc = (probs.argmax(axis=-1) == y_test[None, :]).mean(axis=1).astype(np.float64)
        return np.where(np.isfinite(acc), np.clip(acc, *scorer.range), scorer.default)
    scoring_net = spec.scratch
    states = result.states()
    cache = _BatchedPredictions(spec, result, scoring_net, result.trainer, threads)
    scores = np.empty(len(states), dtype=np.float64)
    with spec.lock:
        try:
            for k, state in enumerate(states):
                subset = np.asarray(subsets[k], dtype=np.int64)
                # what fit() records besides the weights (NeuralNetClassifier: classes_)
                scoring_net.check_data(x[subset], y[subset])
                scoring_net.module_.load_state_dict(state)
                if spec.predict_shortcut:
                    scoring_net.predict_proba = _serving(cache, k)
                if errors is None:
                    scores[k] = float(scorer(scoring_net))
                    continue
                try:
                    scores[k] = float(scorer(scoring_net))
                except Exception as exc:  # noqa: BLE001 - the caller counts it, per model
                    errors.append((k, exc))
                    scores[k] = np.nan
        finally:
            scoring_net.__dict__.pop("predict_proba", None)
    return scores

