"""General backend of the fast path: K stacked models trained in lockstep with ``torch.func``.

It works for any module that runs under ``functional_call`` + ``vmap`` and on any device
(this is the path a CUDA net takes). It is much slower than the CPU kernel (``fastpath_kernel``)
on this CPU, 1-2x one-by-one fits per CPU-second instead of 16-28x, but it has no limit on
layer types, so the kernel can stay small and everything else still gets a speed-up.

Lockstep with different subset sizes: in every epoch model k takes ``s_k`` minibatch steps.
Slots are aligned to the *end* of the epoch (model k's step j goes to slot ``S - s_k + j``),
so the smaller last minibatches of all models meet in the last slot and padding is small. A
slot pads every active model's minibatch to the largest one with zero-weight samples (the loss
is a weighted sum, the weight 1/|batch| on real samples, so it stays a mean over the real
batch), and models without a step in a slot are left out of the optimizer update entirely:
``StackedOptimizer.step`` updates only the listed rows, so Adam's momentum cannot move them.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["StackedOptimizer", "train_vmap", "predict_vmap", "per_sample_loss"]

#: skorch's NeuralNetClassifier adds this to probabilities before log() for NLLLoss.
NLL_EPS = float(torch.finfo(torch.float32).eps)


class StackedOptimizer:
    """Adam, AdamW or SGD for K models stored as rows of one (K, P) tensor.

    Elementwise optimizers on stacked rows equal K independent optimizers provided each row
    has its own step count (Adam's bias correction; SGD's first momentum step) and rows that
    take no step are not touched at all. The arithmetic follows torch.optim's single-tensor
    implementations, so results agree with skorch's optimizer to float rounding.
    """

    def __init__(self, kind: str, hyper: dict[str, Any], flat: torch.Tensor) -> None:
        if kind not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer kind {kind!r}")
        self.kind, self.h = kind, hyper
        self.m = torch.zeros_like(flat)
        self.v = torch.zeros_like(flat) if kind == "adam" else None
        self.vmax = torch.zeros_like(flat) if kind == "adam" and hyper["amsgrad"] else None
        self.steps = np.zeros(flat.shape[0], dtype=np.int64)

    def step(self, flat: torch.Tensor, grad: torch.Tensor, rows: np.ndarray) -> None:
        """Update ``flat[rows]`` (in place) from ``grad[rows]``; other rows stay as they are."""
        if len(rows) == 0:
            return
        h = self.h
        full = len(rows) == flat.shape[0]
        sel = None if full else torch.as_tensor(rows, device=flat.device)

        def take(t: torch.Tensor) -> torch.Tensor:
            return t if full else t.index_select(0, sel)

        def put(dst: torch.Tensor, src: torch.Tensor) -> None:
            if not full:
                dst.index_copy_(0, sel, src)

        self.steps[rows] += 1
        steps = self.steps[rows].astype(np.float64)
        p, g = take(flat), take(grad)
        if h["maximize"]:
            g = -g
        wd = h["weight_decay"]
        if self.kind == "adam":
            lr, b1, b2 = h["lr"], h["beta1"], h["beta2"]
            if wd != 0:
                if h["decoupled"]:
                    p.mul_(1 - lr * wd)
                else:
                    g = g.add(p, alpha=wd)
            m, v = take(self.m), take(self.v)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            dev, dt = flat.device, flat.dtype
            step_size = torch.as_tensor(lr / (1 - b1**steps), dtype=dt, device=dev)[:, None]
            bc2_sqrt = torch.as_tensor(np.sqrt(1 - b2**steps), dtype=dt, device=dev)[:, None]
            vv = v
            if self.vmax is not None:
                vmax = take(self.vmax)
                torch.maximum(vmax, v, out=vmax)
                put(self.vmax, vmax)
                vv = vmax
            denom = (vv.sqrt() / bc2_sqrt).add_(h["eps"])
            p.sub_(step_size * (m / denom))
            put(self.m, m)
            put(self.v, v)
        else:
            lr, mom, damp = h["lr"], h["momentum"], h["dampening"]
            if wd != 0:
                g = g.add(p, alpha=wd)
            if mom != 0:
                buf = take(self.m)
                first = torch.as_tensor(steps == 1, device=flat.device)[:, None]
                buf = torch.where(first, g, buf.mul(mom).add_(g, alpha=1 - damp))
                if full:
                    self.m.copy_(buf)
                else:
                    self.m.index_copy_(0, sel, buf)
                g = g.add(buf, alpha=mom) if h["nesterov"] else buf
            p.add_(g, alpha=-lr)
        put(flat, p)


def per_sample_loss(kind: str, crit: dict[str, Any]) -> Callable[..., torch.Tensor]:
    """Per-sample loss as skorch computes it before the mean (``reduction='none'``)."""
    import torch.nn.functional as F

    ignore, smoothing = crit["ignore_index"], crit["label_smoothing"]
    if kind == "ce":
        return lambda out, y: F.cross_entropy(out, y, reduction="none", ignore_index=ignore,
                                              label_smoothing=smoothing)
    if kind == "nll_log":
        return lambda out, y: F.nll_loss(torch.log(out + NLL_EPS), y, reduction="none",
                                         ignore_index=ignore)
    if kind == "nll":
        return lambda out, y: F.nll_loss(out, y, reduction="none", ignore_index=ignore)
    raise ValueError(f"unknown loss kind {kind!r}")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """vmap warns when it falls back to a per-model loop for an op; that is slow, not wrong."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*performance drop.*")
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        yield


def _unstack(flat: torch.Tensor, names: Sequence[str], shapes: Sequence[tuple[int, ...]],
             offsets: Sequence[int]) -> dict[str, torch.Tensor]:
    """Per-parameter (K, ...) tensors from the flat rows, as contiguous copies: strided
    views of ``flat`` made the batched convolutions ~50% slower."""
    k = flat.shape[0]
    return {
        n: flat[:, o:o + int(np.prod(s))].reshape(k, *s).contiguous()
        for n, s, o in zip(names, shapes, offsets, strict=True)
    }


def train_vmap(
    module: nn.Module,
    flat: torch.Tensor,
    buffers: dict[str, torch.Tensor],
    layout: tuple[Sequence[str], Sequence[tuple[int, ...]], Sequence[int]],
    x: torch.Tensor,
    y: torch.Tensor,
    y_host: np.ndarray,
    orders: Sequence[np.ndarray],
    n_sub: Sequence[int],
    batch_sizes: Sequence[int],
    *,
    epochs: int,
    drop_last: bool,
    per_epoch: bool,
    loss_kind: str,
    crit: dict[str, Any],
    opt_kind: str,
    opt_hyper: dict[str, Any],
) -> np.ndarray:
    """Train the K models whose parameters are the rows of ``flat`` (updated in place).

    ``module`` supplies the forward pass (its own parameters are not used); ``buffers`` are
    stacked (K, ...) and read-only. Returns skorch's per-epoch train loss (K x epochs).
    """
    from torch.func import functional_call, grad_and_value, vmap

    names, shapes, offsets = layout
    k = flat.shape[0]
    device = flat.device
    loss_fn = per_sample_loss(loss_kind, crit)
    ignore = crit["ignore_index"]
    reduction_sum = crit["reduction"] == "sum"

    def batch_loss(params: dict, bufs: dict, xb: torch.Tensor, yb: torch.Tensor,
                   wb: torch.Tensor) -> torch.Tensor:
        out = functional_call(module, (params, bufs), (xb,))
        return (loss_fn(out, yb) * wb).sum()

    step_fn = vmap(grad_and_value(batch_loss), in_dims=(0, 0, 0, 0, 0), randomness="different")
    opt = StackedOptimizer(opt_kind, opt_hyper, flat)
    steps = np.array([
        (n // b if drop_last else -(-n // b)) for n, b in zip(n_sub, batch_sizes, strict=True)
    ], dtype=np.int64)
    n_slots = int(steps.max()) if k else 0
    # Summed on the device and copied to the host once at the end: a copy per step would make
    # a CUDA device wait for the host at every minibatch.
    loss_sum = torch.zeros((k, epochs), dtype=torch.float64, device=device)
    seen = np.zeros((k, epochs), dtype=np.int64)
    module.train()
    with _quiet():
        for e in range(epochs):
            for slot in range(n_slots):
                local = slot - (n_slots - steps)  # each model's step index in this slot
                rows = np.flatnonzero(local >= 0)
                batches, counts = [], np.zeros(k, dtype=np.int64)
                for i in rows:
                    n, b = int(n_sub[i]), int(batch_sizes[i])
                    start = int(local[i]) * b
                    order = orders[i][e * n:(e + 1) * n] if per_epoch else orders[i]
                    batches.append(order[start:min(start + b, n)])
                    counts[i] = len(batches[-1])
                width = int(counts.max())
                idx = np.zeros((k, width), dtype=np.int64)
                w = np.zeros((k, width), dtype=np.float32)
                for i, batch in zip(rows, batches, strict=True):
                    idx[i, :len(batch)] = batch
                    valid = y_host[batch] != ignore
                    n_valid = int(valid.sum())
                    scale = 1.0 if reduction_sum else (1.0 / n_valid if n_valid else 0.0)
                    w[i, :len(batch)] = valid * scale
                idx_t = torch.as_tensor(idx, device=device)
                params = _unstack(flat, names, shapes, offsets)
                grads, values = step_fn(params, buffers, x[idx_t], y[idx_t],
                                        torch.as_tensor(w, device=device))
                g = torch.cat([grads[n].reshape(k, -1) for n in names], dim=1)
                opt.step(flat, g, rows)
                # rows without a step in this slot add nothing (not even a NaN from padding)
                count_t = torch.as_tensor(counts, dtype=torch.float64, device=device)
                loss_sum[:, e] += torch.where(count_t > 0, values.detach().double() * count_t,
                                              0.0)
                seen[rows, e] += counts[rows]
    losses = loss_sum.cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        losses = np.where(seen > 0, losses / np.maximum(seen, 1), np.nan)
    return losses.astype(np.float32)


def predict_vmap(
    module: nn.Module,
    flat: torch.Tensor,
    buffers: dict[str, torch.Tensor],
    layout: tuple[Sequence[str], Sequence[tuple[int, ...]], Sequence[int]],
    x: torch.Tensor,
    chunk: int = 1024,
) -> torch.Tensor:
    """Module outputs of the K stacked models on all of ``x`` (eval mode): (K, N, ...)."""
    from torch.func import functional_call, vmap

    names, shapes, offsets = layout
    params = _unstack(flat, names, shapes, offsets)

    def fwd(p: dict, b: dict, xb: torch.Tensor) -> torch.Tensor:
        return functional_call(module, (p, b), (xb,))

    batched = vmap(fwd, in_dims=(0, 0, None))
    was_training = module.training
    module.eval()
    try:
        with _quiet(), torch.no_grad():
            outs = [batched(params, buffers, x[s:s + chunk]) for s in range(0, len(x), chunk)]
    finally:
        module.train(was_training)
    return torch.cat(outs, dim=1)
