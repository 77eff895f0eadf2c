"""The ctypes wrapper around a compiled kernel, and the checked, cached way to get one.

``get_kernel`` is the entry point of the fast path: plan the module, generate and build its
kernel, and check the kernel's forward pass and gradient against the module itself before
trusting it.
Models are independent, so ``Kernel`` spreads them over threads (ctypes releases the GIL).
"""

from __future__ import annotations

import copy
import ctypes
import hashlib
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

# one lock for the compiled-library cache (build) and the kernel cache here, as before the
# split into modules
from .build import _LOCK, _compile
from .codegen import generate_source
from .plan import Plan, _Unsupported, plan_module
from .templates import HYPER_FIELDS, LOSS_CE, OPT_SGD

#: What each dropout mask is in the self-check's variant of a kernel with dropout.
DROP_CHECK_SCALE = 1.5


def _ptr(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


class Kernel:
    """A compiled kernel for one plan: ``train`` and ``predict`` over many models."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.lib = _compile(generate_source(plan))
        #: whether training draws dropout masks (then each model needs an RNG seed)
        self.has_dropout = any(ly.kind == "dropout" for ly in plan.layers)

    def train(
        self,
        x: np.ndarray,
        y: np.ndarray,
        orders: Sequence[np.ndarray],
        n_sub: Sequence[int],
        params: np.ndarray,
        hyper: np.ndarray,
        *,
        epochs: int,
        batch_sizes: Sequence[int],
        drop_last: bool,
        per_epoch: bool,
        n_threads: int = 1,
        seeds: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Train ``len(orders)`` models in place in ``params`` (K x P float32).

        ``orders[k]`` holds the rows of ``x`` model k visits, in order: its subset (same order
        every epoch) or, with ``per_epoch``, ``epochs`` concatenated epoch orders; its
        minibatches are consecutive runs of ``batch_sizes[k]`` rows of that order. Models are
        handed to ``n_threads`` threads one at a time, largest first, so the threads finish
        together. Returns the per-epoch training loss (K x epochs).

        With dropout, model k draws its masks from its own RNG stream seeded by ``seeds[k]``
        (any int, taken modulo 2**64); without ``seeds``, by a hash of its initial parameters.
        """
        k = len(orders)
        losses = np.zeros((k, epochs), dtype=np.float32)
        xs = np.ascontiguousarray(x, dtype=np.float32)
        ys = np.ascontiguousarray(y, dtype=np.int64)
        hy = np.ascontiguousarray(hyper, dtype=np.float64)
        ords = [np.ascontiguousarray(o, dtype=np.int64) for o in orders]
        zero = np.zeros(1, dtype=np.int64)
        row_bytes = params.strides[0]
        base = params.ctypes.data
        if seeds is not None and len(seeds) != k:
            raise ValueError(f"got {len(seeds)} seeds for {k} models")
        if self.has_dropout and seeds is None:
            seeds = [int.from_bytes(hashlib.blake2b(np.ascontiguousarray(params[i]).tobytes(),
                                                    digest_size=8).digest(), "little")
                     for i in range(k)]
        if self.has_dropout:
            seed_arr = np.array([int(s) % 2**64 for s in seeds], dtype=np.uint64)

        def one(i: int) -> int:
            n = np.array([n_sub[i]], dtype=np.int64)
            args = (
                1, _ptr(xs), _ptr(ys), _ptr(ords[i]), _ptr(zero), _ptr(n), epochs,
                int(batch_sizes[i]),
                int(drop_last), int(per_epoch), ctypes.c_void_p(base + i * row_bytes),
                _ptr(hy), _ptr(losses[i]),
            )
            if self.has_dropout:
                return self.lib.train_seeded(*args, _ptr(seed_arr[i:i + 1]))
            return self.lib.train(*args)

        order_idx = sorted(range(k), key=lambda i: -int(n_sub[i]))
        if n_threads <= 1 or k <= 1:
            codes = [one(i) for i in order_idx]
        else:
            with ThreadPoolExecutor(max_workers=min(n_threads, k)) as pool:
                codes = list(pool.map(one, order_idx))
        if any(codes):
            raise MemoryError("the fast-path kernel could not allocate its work buffers")
        return losses

    def sgd_step(self, x: np.ndarray, y: np.ndarray, params: np.ndarray,
                 seeds: Sequence[int] | None = None) -> np.ndarray:
        """How far one plain SGD step (lr 1, cross-entropy, all of ``x`` as one minibatch)
        moves each row of ``params`` (K x P): minus each model's loss gradient. For checks
        against autograd; ``params`` is left as it is."""
        hyper = dict.fromkeys(HYPER_FIELDS, 0.0)
        hyper.update(opt=OPT_SGD, lr=1.0, loss=LOSS_CE, ignore_index=-100)
        n, k = len(x), len(params)
        stepped = np.array(params, dtype=np.float32)
        self.train(np.reshape(x, (n, -1)), y, [np.arange(n)] * k, [n] * k, stepped,
                   np.array([hyper[f] for f in HYPER_FIELDS], dtype=np.float64), epochs=1,
                   batch_sizes=[n] * k, drop_last=False, per_epoch=False, seeds=seeds)
        return params - stepped

    def predict(self, x: np.ndarray, params: np.ndarray, n_threads: int = 1) -> np.ndarray:
        """Outputs of K models (params K x P) on all rows of ``x``: K x N x n_out float32."""
        k, n = params.shape[0], x.shape[0]
        xs = np.ascontiguousarray(x, dtype=np.float32)
        ps = np.ascontiguousarray(params, dtype=np.float32)
        out = np.empty((k, n, self.plan.out_size), dtype=np.float32)

        def one(i: int) -> int:
            return self.lib.predict(1, _ptr(xs), n, _ptr(ps[i]), _ptr(out[i]))

        if n_threads <= 1 or k <= 1:
            codes = [one(i) for i in range(k)]
        else:
            with ThreadPoolExecutor(max_workers=min(n_threads, k)) as pool:
                codes = list(pool.map(one, range(k)))
        if any(codes):
            raise MemoryError("the fast-path kernel could not allocate its work buffers")
        return out


_KERNELS: dict[str, Kernel | str] = {}


def get_kernel(module: nn.Module, in_shape: Sequence[int]) -> Kernel | str:
    """A checked kernel for ``module`` on inputs of ``in_shape``, or the reason there is none.

    The check: the generated forward pass must reproduce ``module`` (freshly initialised
    weights, random inputs) to float32 tolerance, and one training step must move the
    weights by autograd's gradient. It guards against a trace that reads the module
    differently from how it runs, and against a backward pass that reads a buffer another
    layer has overwritten. Results are cached per module structure and shape.
    """
    try:
        plan = plan_module(module, in_shape)
    except _Unsupported as exc:
        return str(exc)
    key = plan.signature() + repr(type(module)) + repr([
        (n, type(m).__name__, getattr(m, "negative_slope", None))
        for n, m in module.named_modules()
    ])
    with _LOCK:
        cached = _KERNELS.get(key)
    if cached is not None:
        return cached
    try:
        kernel: Kernel | str = Kernel(plan)
    except OSError as exc:
        kernel = f"the CPU kernel cannot be built ({exc})"
    if isinstance(kernel, Kernel):
        reason = _self_check(kernel, module, in_shape)
        if reason is not None:
            kernel = reason
    with _LOCK:
        _KERNELS[key] = kernel
    return kernel


def _self_check(kernel: Kernel, module: nn.Module, in_shape: Sequence[int]) -> str | None:
    """Compare the kernel's forward pass and one training step with the module's on a few
    random inputs; None when they agree, else the reason."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((19, *in_shape), generator=gen) * 2 - 1
    was_training = module.training
    try:
        module.eval()
        # the module's own warnings (e.g. even kernels with padding="same") are not ours to
        # raise here: one-by-one fits show them anyway
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = module(x).reshape(19, -1).double().numpy()
    except Exception as exc:  # noqa: BLE001 - a module that fails here is simply not ours
        return f"the module failed on a probe input ({type(exc).__name__}: {exc})"
    finally:
        module.train(was_training)
    params = torch.cat([p.detach().reshape(-1) for p in module.parameters()]).numpy()
    out = kernel.predict(x.reshape(19, -1).numpy(), params[None, :].astype(np.float32))[0]
    if out.shape != ref.shape:
        return f"kernel self-check failed: output shape {out.shape} != module's {ref.shape}"
    err = float(np.max(np.abs(out - ref))) if ref.size else 0.0
    scale = float(np.max(np.abs(ref))) + 1e-6 if ref.size else 1.0
    if not np.isfinite(err) or err > 1e-4 * max(scale, 1.0):
        return f"kernel self-check failed: forward differs from the module by {err:.2e}"
    if kernel.has_dropout:
        # Its masks are the kernel's own, so autograd has nothing to compare with. The same
        # code with every mask DROP_CHECK_SCALE (same layers, same buffers; a scale other
        # than 1, so that a layer overwriting a buffer another one still needs shows) has:
        # the reference is the module with each Dropout multiplying by that scale.
        plan = copy.deepcopy(kernel.plan)
        for ly in plan.layers:
            if ly.kind == "dropout":
                ly.attrs["check_scale"] = DROP_CHECK_SCALE
        try:
            kernel = Kernel(plan)
        except OSError as exc:
            return f"the CPU kernel cannot be built ({exc})"
    return _gradient_check(kernel, module, x, params)


def _gradient_check(kernel: Kernel, module: nn.Module, x: torch.Tensor,
                    params: np.ndarray) -> str | None:
    """One SGD step (lr 1, cross-entropy, one minibatch) must move the parameters by minus
    autograd's gradient: the forward check alone cannot see a wrong backward pass (such as
    a buffer shared by two layers, one of which overwrites what the other's backward reads).
    """
    n = len(x)
    n_out = kernel.plan.out_size
    y = np.arange(n, dtype=np.int64) % n_out
    was_training = module.training
    hooks = [m.register_forward_hook(lambda _m, _i, out: out * DROP_CHECK_SCALE)
             for m in module.modules() if type(m) is nn.Dropout and m.p > 0]
    try:
        module.eval()  # dropout off; the kernel has no other layer that tells the modes apart
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = module(x).reshape(n, -1)
            loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(y))
            grads = torch.autograd.grad(loss, list(module.parameters()))
    except Exception as exc:  # noqa: BLE001 - a module that fails here is simply not ours
        return f"the module failed on a probe training step ({type(exc).__name__}: {exc})"
    finally:
        module.train(was_training)
        for hook in hooks:
            hook.remove()
    expected = torch.cat([g.reshape(-1) for g in grads]).double().numpy()
    moved = kernel.sgd_step(x.numpy(), y, params[None, :])[0].astype(np.float64)
    err = float(np.max(np.abs(moved - expected))) if expected.size else 0.0
    if not np.isfinite(err) or err > 1e-3 * max(float(np.max(np.abs(expected))), 1e-3):
        return f"kernel self-check failed: its gradient differs from autograd's by {err:.2e}"
    return None
