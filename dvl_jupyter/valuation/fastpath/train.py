"""Training K subset models at once: choosing the trainer and running it.

Two trainers (:func:`trainer_for` says which one a net gets, and why):

* ``"kernel"`` (:mod:`.kernel`): generated C with 16 samples in the SIMD lanes, the whole fit
  of a model in one call, models spread over threads. CPU, float32, nets made of the layers
  the kernel's planner knows, and a C compiler.
* ``"vmap"`` (:mod:`.vmap`): ``torch.func.functional_call`` + ``vmap`` over K stacked models
  in lockstep, for any module that works under torch.func and any device, CUDA included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..utils import to_numpy, torch_threads
from .replay import initial_models
from .spec import NetSpec, net_spec, unwrap

__all__ = ["FitResult", "fit_many", "kernel_for", "train_models", "trainer_for",
           "unsupported_reason"]


def unsupported_reason(net: Any, x: Any = None, y: Any = None) -> str | None:
    """None when the fast path can train ``net``; else a short reason naming what stops it.

    Without data the check is structural (net class, layers, criterion, optimizer, callbacks,
    data loading). With a few training rows ``x`` (and ``y``), it also runs one probe step of
    the trainer the net would get, so a module that fails under torch.func is caught here
    rather than in the middle of a run.
    """
    spec = net_spec(net)
    if isinstance(spec, str):
        return spec
    if x is None:
        return None
    xs = x[:4]
    ys = y[:4] if y is not None else np.zeros(len(xs), dtype=np.int64)
    try:
        train_models(net, xs, ys, [np.arange(min(2, len(xs))), np.arange(min(3, len(xs)))], [0, 1],
             epochs=1)
    except Exception as exc:  # noqa: BLE001 - the probe's purpose is to turn errors into reasons
        trainer, _ = trainer_for(net, xs)
        return f"a probe training step on the {trainer} trainer failed ({type(exc).__name__}: " \
               f"{str(exc)[:200]})"
    return None


def kernel_for(spec: NetSpec, x: Any) -> Any:
    """The CPU kernel for inputs like ``x``, or a string saying why there is none."""
    from . import kernel as fastpath_kernel

    if spec.device.type != "cpu":
        return f"the net's device is {spec.device}; the C kernel runs on the CPU"
    dtype = x.dtype if isinstance(x, (np.ndarray, torch.Tensor)) else None
    if dtype not in (np.float32, torch.float32):
        return f"inputs are {dtype}, the C kernel computes in float32"
    in_shape = tuple(int(s) for s in x.shape[1:])
    with spec.lock:
        kernel = spec.kernels.get(in_shape)
        if kernel is None:
            module = unwrap(spec.scratch.module_)
            kernel = fastpath_kernel.get_kernel(module, in_shape)
            spec.kernels[in_shape] = kernel
    return kernel


def trainer_for(net: Any, x: Any) -> tuple[str, str | None]:
    """Which trainer trains ``net`` on inputs like ``x``: ``("kernel", None)``, or
    ``("vmap", why the kernel is not used)``. Raises ``ValueError`` for unsupported nets."""
    spec = net_spec(net)
    if isinstance(spec, str):
        raise ValueError(f"the fast path cannot train this net: {spec}")
    kernel = kernel_for(spec, x)
    return ("vmap", kernel) if isinstance(kernel, str) else ("kernel", None)



@dataclass
class FitResult:
    """K trained models: parameters as rows of ``flat`` (K x P) plus per-model buffers."""

    flat: torch.Tensor
    buffers: list[dict[str, torch.Tensor]]
    losses: np.ndarray  # (K, epochs): skorch's train_loss history per model
    trainer: str
    spec: NetSpec = field(repr=False)

    def states(self) -> list[dict[str, torch.Tensor]]:
        """One ``state_dict`` per model (parameter tensors are views into ``flat``)."""
        spec, out = self.spec, []
        for k in range(self.flat.shape[0]):
            row = self.flat[k]
            params = {
                n: row[o:o + int(np.prod(s))].view(s)
                for n, s, o in zip(spec.names, spec.shapes, spec.offsets, strict=True)
            }
            state = {}
            for key in spec.state_keys:
                state[key] = params[key] if key in params else self.buffers[k][key]
            out.append(state)
        return out



def _check_inputs(x: Any, y: Any, subsets: Sequence[Any], seeds: Sequence[int]
                  ) -> list[np.ndarray]:
    if len(subsets) != len(seeds):
        raise ValueError(f"got {len(subsets)} subsets but {len(seeds)} seeds")
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x has {n} rows but y has {len(y)}")
    y_host = to_numpy(y)
    if y_host.ndim != 1 or not np.issubdtype(y_host.dtype, np.integer):
        raise ValueError(f"the fast path needs 1-d integer class labels; y is {y_host.dtype} "
                         f"of shape {y_host.shape}")
    out = []
    for i, s in enumerate(subsets):
        a = np.asarray(s, dtype=np.int64).reshape(-1)
        if len(a) == 0:
            raise ValueError(f"subset {i} is empty; the fast path trains on at least one point")
        if a.min() < 0 or a.max() >= n:
            raise ValueError(f"subset {i} has indices outside 0..{n - 1}")
        out.append(a)
    return out


def train_models(net: Any, x: Any, y: Any, subsets: Sequence[Any], seeds: Sequence[int], *,
                 trainer: str = "auto", n_threads: int | None = None,
                 epochs: int | None = None,
                 orders: Sequence[np.ndarray] | None = None) -> FitResult:
    """Train one model per subset on the chosen trainer; see :func:`fit_many`. ``orders``:
    explicit rows per model (coupled training), instead of the ones skorch would draw."""
    spec = net_spec(net)
    if isinstance(spec, str):
        raise ValueError(f"the fast path cannot train this net: {spec}")
    if trainer not in ("auto", "kernel", "vmap"):
        raise ValueError(f"trainer must be 'auto', 'kernel' or 'vmap'; got {trainer!r}")
    subs = _check_inputs(x, y, subsets, seeds)
    epochs = spec.epochs if epochs is None else epochs
    threads = torch.get_num_threads() if n_threads is None else max(1, int(n_threads))
    kernel = kernel_for(spec, x) if trainer in ("auto", "kernel") else "vmap requested"
    if trainer == "kernel" and isinstance(kernel, str):
        raise ValueError(f"the C kernel cannot train this net: {kernel}")
    # With the C kernel, parallelism comes from its own threads; torch's OpenMP threads would
    # only spin-wait after each tiny op (module construction) and take CPU from them.
    with torch_threads(None if isinstance(kernel, str) else 1):
        flat, buffers, orders = initial_models(spec, subs, seeds, epochs, orders)
    n_sub = [len(s) for s in subs]
    bs = [n if spec.batch_size == -1 else spec.batch_size for n in n_sub]
    y_host = to_numpy(y)
    if not isinstance(kernel, str):
        losses = _train_kernel(kernel, spec, x, y_host, orders, n_sub, bs, flat, epochs, threads,
                               seeds)
        chosen = "kernel"
    else:
        flat = flat.to(spec.device)
        bufs = {n: torch.stack([b[n] for b in buffers]).to(spec.device)
                for n in spec.buffer_names}
        x_t = torch.as_tensor(x).to(spec.device)
        y_t = torch.as_tensor(y).to(spec.device)
        from .vmap import train_vmap

        module = unwrap(spec.scratch.module_)
        # Random layers (dropout) draw from torch's RNG: seed it from the models' seeds, in a
        # fork, so the same block trains the same models and the caller's RNG is untouched.
        block_seed = int.from_bytes(hashlib.blake2b(
            np.asarray(seeds, dtype=np.int64).tobytes(), digest_size=8).digest(), "little")
        cpu_only = spec.device.type == "cpu"
        with torch.random.fork_rng(devices=[] if cpu_only else None):
            torch.manual_seed(block_seed % 2**63)
            losses = train_vmap(
                module, flat, bufs, spec.layout, x_t, y_t, y_host, orders, n_sub, bs,
                epochs=epochs, drop_last=spec.drop_last, per_epoch=spec.shuffle,
                loss_kind=spec.loss_kind, crit=spec.crit, opt_kind=spec.opt_kind,
                opt_hyper=spec.opt_hyper,
            )
        chosen = "vmap"
        buffers = [{n: t.to(spec.device) for n, t in b.items()} for b in buffers]
    return FitResult(flat, buffers, losses, chosen, spec)


def _train_kernel(kernel: Any, spec: NetSpec, x: Any, y_host: np.ndarray,
                  orders: list[np.ndarray], n_sub: list[int], bs: list[int],
                  flat: torch.Tensor, epochs: int, threads: int,
                  seeds: Sequence[int]) -> np.ndarray:
    from . import kernel as fk

    n_out = kernel.plan.out_size
    bad = (y_host != spec.crit["ignore_index"]) & ((y_host < 0) | (y_host >= n_out))
    if bad.any():
        raise ValueError(f"label {int(y_host[bad][0])} is out of range for {n_out} outputs")
    h = spec.opt_hyper
    hyper = dict(
        opt=fk.OPT_ADAM if spec.opt_kind == "adam" else fk.OPT_SGD,
        lr=h["lr"], beta1=h.get("beta1", 0.0), beta2=h.get("beta2", 0.0), eps=h.get("eps", 0.0),
        weight_decay=h["weight_decay"], amsgrad=h.get("amsgrad", False),
        maximize=h["maximize"], decoupled=h.get("decoupled", False),
        momentum=h.get("momentum", 0.0), dampening=h.get("dampening", 0.0),
        nesterov=h.get("nesterov", False),
        loss={"ce": fk.LOSS_CE, "nll_log": fk.LOSS_NLL_LOG, "nll": fk.LOSS_NLL}[spec.loss_kind],
        label_smoothing=spec.crit["label_smoothing"], ignore_index=spec.crit["ignore_index"],
        reduction_sum=spec.crit["reduction"] == "sum",
    )
    hvec = np.array([float(hyper[f]) for f in fk.HYPER_FIELDS], dtype=np.float64)
    xs = to_numpy(x).reshape(len(y_host), -1)
    params = flat.numpy()  # shares memory: the kernel trains flat in place
    return kernel.train(xs, y_host.astype(np.int64, copy=False), orders, n_sub, params, hvec,
                        epochs=epochs, batch_sizes=bs, drop_last=spec.drop_last,
                        per_epoch=spec.shuffle, n_threads=threads, seeds=seeds)


def fit_many(net: Any, x: Any, y: Any, subsets: Sequence[np.ndarray], seeds: Sequence[int],
             *, trainer: str = "auto", n_threads: int | None = None
             ) -> list[dict[str, torch.Tensor]]:
    """Train one model per subset; return one module ``state_dict`` per subset.

    Model k is the model ``torch.manual_seed(seeds[k]); clone(net).fit(x[subsets[k]],
    y[subsets[k]])`` produces, up to float rounding (dropout masks, on either trainer, are
    drawn independently rather than from skorch's RNG stream). ``x``/``y`` are the whole
    training data (numpy or torch); subsets are positions into them, any sizes >= 1, in the
    order skorch would see the rows. ``n_threads`` (default: torch's thread count) threads
    share the models on the C kernel. The global torch RNG is left untouched.
    """
    return train_models(net, x, y, subsets, seeds, trainer=trainer, n_threads=n_threads).states()


