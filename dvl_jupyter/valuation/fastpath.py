"""Fast path: train many subset models of one skorch net at once, as if fitted one by one.

TMC-Shapley fits the same small network thousands of times on different subsets. Fitted one
at a time, most of each fit is per-minibatch framework overhead, not arithmetic. Here K models
are trained in one call, and each is the model that::

    torch.manual_seed(seed); sklearn.base.clone(net).fit(x[subset], y[subset])

would produce, up to float rounding: the same initial weights (the module is built by the
net's own ``initialize_module`` under the same seed), the same minibatches in the same order
(skorch's ``DataLoader``: no shuffling unless ``iterator_train__shuffle=True``, in which case
its RNG draws are replayed; ``ceil(|S| / batch_size)`` steps per epoch, the last one smaller,
the loss a mean over each minibatch), the same criterion, and the same optimizer arithmetic
(Adam, AdamW or SGD with its ``optimizer__*`` parameters and ``lr``), for ``max_epochs``
epochs. Each model takes exactly its own steps; a model with fewer steps in an epoch is never
"stepped" with a zero gradient (which would still move Adam's weights through its momentum).

"Up to float rounding" has one caveat: the C kernel sums in another order than oneDNN, so a
near-tie (two values within ~1e-6 in a max-pool window) can go the other way; from then on
that model's weights differ from skorch's by O(lr), as they would between two BLAS builds.
Parameters otherwise agree to ~1e-7 (see tests/valuation/test_fastpath.py).

Two backends do the training (``backend_for`` says which one a net gets, and why):

* ``"kernel"`` (``fastpath_kernel``): generated C with 16 samples in the SIMD lanes, the
  whole fit of a model in one call, models spread over threads. CPU, float32, nets made of
  Conv2d / Linear / ReLU / LeakyReLU / Tanh / Sigmoid / MaxPool2d / AvgPool2d / Dropout /
  Flatten / Softmax / LogSoftmax, and a C compiler (each model draws its dropout masks from
  its own RNG stream, seeded by its seed). Measured here: 16-28x more evaluations per
  CPU-second than one-by-one skorch fits (``benchmarks/bench_fastpath.py``).
* ``"vmap"`` (``fastpath_vmap``): ``torch.func.functional_call`` + ``vmap`` over K stacked
  models in lockstep, for any module that works under torch.func (dropout included, with
  independent masks per model) and any device, CUDA included. 1-2x per CPU-second here.

Nets neither can train get a reason from :func:`unsupported_reason` (BatchNorm, unknown
optimizers, callbacks that change training such as LRScheduler, a validation split...); the
caller then fits them one by one.

Public API (what ``ModelUtility.evaluate_many`` and the TMC driver use)::

    reason = unsupported_reason(net)            # None, or a short reason naming the culprit
    states = fit_many(net, x, y, subsets, seeds)  # one module state_dict per subset
    probs = predict_proba_many(net, states, x_test)        # (K, N, C), skorch's predict_proba
    scores = fit_score_many(net, x, y, subsets, seeds, scorer)  # fit + score, fastest route
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "unsupported_reason",
    "backend_for",
    "fit_many",
    "predict_proba_many",
    "fit_score_many",
    "FitResult",
]

#: Callbacks that only observe training (scoring, logging, timing). Anything else may change
#: it (LRScheduler, EarlyStopping, GradientNormClipping, Freezer, Initializer...).
_PASSIVE_CALLBACKS = frozenset({
    "EpochTimer", "PrintLog", "PassthroughScoring", "EpochScoring", "BatchScoring",
    "ProgressBar", "TensorBoard", "MlflowLogger", "NeptuneLogger", "SacredLogger", "WandbLogger",
})
#: NeuralNet methods that define training; a subclass overriding one trains differently.
_TRAINING_METHODS = (
    "fit", "partial_fit", "fit_loop", "run_single_epoch", "train_step", "train_step_single",
    "get_train_step_accumulator", "get_loss", "infer", "get_iterator", "get_dataset",
    "get_split_datasets", "initialize", "initialize_criterion", "initialize_optimizer",
    "get_all_learnable_params", "_zero_grad_optimizer", "_step_optimizer", "notify",
    "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_batch_begin",
    "on_batch_end", "on_grad_computed",
)
#: Methods behind predict_proba: if overridden, scores come from the net itself, not from
#: precomputed batched outputs.
_PREDICT_METHODS = ("predict_proba", "predict", "forward", "forward_iter", "evaluation_step",
                    "_get_predict_nonlinearity")
_DATALOADER_KEYS = frozenset({"shuffle", "batch_size", "drop_last", "num_workers",
                              "pin_memory", "timeout", "persistent_workers", "prefetch_factor"})


class _Reason(Exception):
    """Internal: the net cannot take the fast path; the message says why."""


@dataclass
class _Spec:
    """Everything the fast path reads from a skorch net, extracted and checked once."""

    scratch: Any  # an initialised clone: builds fresh modules, predicts, scores
    device: torch.device
    epochs: int
    batch_size: int  # -1: the whole subset
    shuffle: bool
    drop_last: bool
    loss_kind: str  # "ce" | "nll_log" (skorch classifier: log(p + eps)) | "nll"
    crit: dict[str, Any]
    opt_kind: str  # "adam" | "sgd"
    opt_hyper: dict[str, Any]
    names: list[str]
    shapes: list[tuple[int, ...]]
    offsets: list[int]
    n_params: int
    dtype: torch.dtype
    buffer_names: list[str]
    state_keys: list[str]
    predict_shortcut: bool
    lock: threading.RLock = field(default_factory=threading.RLock)
    kernels: dict[tuple[int, ...], Any] = field(default_factory=dict)

    @property
    def layout(self) -> tuple[list[str], list[tuple[int, ...]], list[int]]:
        return self.names, self.shapes, self.offsets


_SPECS: dict[str, _Spec | str] = {}  # signature -> spec, least recently used first
_SPECS_MAX = 8
_SPECS_LOCK = threading.Lock()


def _unwrap(obj: Any) -> Any:
    """The module behind skorch's ``compile=True`` wrapper."""
    return getattr(obj, "_orig_mod", obj)


def _net_base(net: Any) -> type:
    from skorch import NeuralNet, NeuralNetClassifier, NeuralNetRegressor

    for cls in type(net).__mro__:
        if cls in (NeuralNetClassifier, NeuralNetRegressor, NeuralNet):
            return cls
    raise _Reason(f"{type(net).__name__} is not a skorch NeuralNet")


def _overridden(net: Any, names: Sequence[str]) -> str | None:
    base = _net_base(net)
    for name in names:
        if getattr(type(net), name, None) is not getattr(base, name, None):
            return name
    return None


def _check_module(module: nn.Module) -> None:
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.instancenorm import _InstanceNorm
    from torch.nn.modules.lazy import LazyModuleMixin

    for name, m in module.named_modules():
        label = f"{type(m).__name__} ({name or 'the module'})"
        if isinstance(m, _BatchNorm):
            if m.track_running_stats:
                raise _Reason(f"module layer {label} keeps running statistics, which "
                              "torch.func cannot stack")
            raise _Reason(f"module layer {label} normalises over the minibatch, so models "
                          "trained side by side would see each other's padding")
        if isinstance(m, _InstanceNorm) and m.track_running_stats:
            raise _Reason(f"module layer {label} keeps running statistics, which torch.func "
                          "cannot stack")
        if isinstance(m, LazyModuleMixin):
            raise _Reason(f"module layer {label} is lazy (its shape is set by the first input)")
    params = list(module.named_parameters())
    if not params:
        raise _Reason("the module has no parameters to train")
    for name, p in params:
        if not p.requires_grad:
            raise _Reason(f"parameter {name} is frozen (requires_grad=False)")
    if len({p.dtype for _, p in params}) > 1:
        raise _Reason("the module's parameters have different dtypes")
    named = dict(params)
    for key, t in module.state_dict(keep_vars=True).items():
        if isinstance(t, nn.Parameter) and key not in named:
            raise _Reason(f"parameter {key} is shared (tied) with another layer")


def _optimizer_spec(scratch: Any) -> tuple[str, dict[str, Any]]:
    named = list(scratch.get_all_learnable_params())
    if "param_groups" in scratch.get_params_for("optimizer"):
        raise _Reason("optimizer__param_groups gives layers different settings")
    args, kwargs = scratch.get_params_for_optimizer("optimizer", named)
    opt = scratch.optimizer(*args, **kwargs)
    cls = type(opt)
    if len(opt.param_groups) != 1:
        raise _Reason(f"optimizer {cls.__name__} has {len(opt.param_groups)} parameter groups")
    g = opt.param_groups[0]
    common = dict(lr=float(g["lr"]), weight_decay=float(g.get("weight_decay", 0.0)),
                  maximize=bool(g.get("maximize", False)))
    if cls in (torch.optim.Adam, torch.optim.AdamW):
        b1, b2 = (float(b) for b in g["betas"])
        decoupled = cls is torch.optim.AdamW or bool(g.get("decoupled_weight_decay", False))
        return "adam", dict(common, beta1=b1, beta2=b2, eps=float(g["eps"]),
                            amsgrad=bool(g.get("amsgrad", False)), decoupled=decoupled)
    if cls is torch.optim.SGD:
        return "sgd", dict(common, momentum=float(g.get("momentum", 0.0)),
                           dampening=float(g.get("dampening", 0.0)),
                           nesterov=bool(g.get("nesterov", False)))
    raise _Reason(f"optimizer {cls.__name__} is not supported (Adam, AdamW and SGD are)")


def _criterion_spec(scratch: Any) -> tuple[str, dict[str, Any]]:
    from skorch import NeuralNetClassifier

    crit = _unwrap(scratch.criterion_)
    cls = type(crit)
    if cls not in (nn.CrossEntropyLoss, nn.NLLLoss):
        raise _Reason(f"criterion {cls.__name__} is not supported (CrossEntropyLoss and "
                      "NLLLoss are)")
    if crit.weight is not None:
        raise _Reason(f"criterion {cls.__name__} has class weights")
    if crit.reduction not in ("mean", "sum"):
        raise _Reason(f"criterion {cls.__name__} has reduction={crit.reduction!r}")
    spec = dict(ignore_index=int(crit.ignore_index), reduction=crit.reduction,
                label_smoothing=float(getattr(crit, "label_smoothing", 0.0)))
    if cls is nn.CrossEntropyLoss:
        return "ce", spec
    # skorch's NeuralNetClassifier.get_loss takes log(p + eps) before an NLLLoss
    return ("nll_log" if isinstance(scratch, NeuralNetClassifier) else "nll"), spec


def _build_spec(net: Any) -> _Spec:
    try:
        from skorch import NeuralNet
        from skorch.dataset import Dataset as SkorchDataset
    except ImportError:  # pragma: no cover - skorch is a dependency
        raise _Reason("skorch is not installed") from None
    from sklearn.base import clone
    from torch.utils.data import DataLoader

    if not isinstance(net, NeuralNet):
        raise _Reason(f"{type(net).__name__} is not a skorch NeuralNet")
    method = _overridden(net, _TRAINING_METHODS)
    if method is not None:
        raise _Reason(f"{type(net).__name__} overrides {method}(), which may change training")
    if net.train_split is not None:
        raise _Reason(f"train_split={type(net.train_split).__name__} holds out validation data "
                      "(set train_split=None)")
    if net.iterator_train is not DataLoader:
        raise _Reason(f"iterator_train={getattr(net.iterator_train, '__name__', '?')} is not "
                      "torch's DataLoader")
    if net.dataset is not SkorchDataset:
        raise _Reason("dataset is not skorch's Dataset")
    scratch = clone(net)
    scratch.set_params(verbose=False)
    try:
        with torch.random.fork_rng(devices=[]):  # building the module draws from the RNG
            scratch.initialize()
    except Exception as exc:  # noqa: BLE001 - a net that cannot initialise is not ours
        raise _Reason(f"the net cannot be initialised ({type(exc).__name__}: {exc})") from None
    if len(scratch._modules) != 1 or len(scratch._criteria) != 1 or len(
        scratch._optimizers
    ) != 1:
        raise _Reason("the net has more than one module, criterion or optimizer")
    if scratch.get_params_for("dataset"):
        raise _Reason("dataset__* parameters are set")
    for name, cb in scratch.callbacks_:
        cls = type(cb)
        if cls.__name__ not in _PASSIVE_CALLBACKS or not cls.__module__.startswith("skorch."):
            raise _Reason(f"callback {cls.__name__} ({name}) may change training")
    it = scratch.get_params_for("iterator_train")
    extra = sorted(set(it) - _DATALOADER_KEYS)
    if extra:
        raise _Reason(f"iterator_train__{extra[0]} changes how minibatches are drawn")
    batch_size = int(it.get("batch_size", scratch.batch_size))
    if batch_size == 0 or batch_size < -1:
        raise _Reason(f"batch_size={batch_size}")
    module = _unwrap(scratch.module_)
    _check_module(module)
    loss_kind, crit = _criterion_spec(scratch)
    opt_kind, opt_hyper = _optimizer_spec(scratch)
    named = list(module.named_parameters())
    shapes = [tuple(p.shape) for _, p in named]
    offsets = list(np.cumsum([0] + [int(np.prod(s)) for s in shapes])[:-1].astype(int))
    state_keys = list(module.state_dict().keys())
    buffer_names = [n for n, _ in module.named_buffers() if n in state_keys]
    return _Spec(
        scratch=scratch,
        device=torch.device(scratch.device),
        epochs=int(scratch.max_epochs),
        batch_size=batch_size,
        shuffle=bool(it.get("shuffle", False)),
        drop_last=bool(it.get("drop_last", False)),
        loss_kind=loss_kind,
        crit=crit,
        opt_kind=opt_kind,
        opt_hyper=opt_hyper,
        names=[n for n, _ in named],
        shapes=shapes,
        offsets=[int(o) for o in offsets],
        n_params=int(sum(int(np.prod(s)) for s in shapes)),
        dtype=named[0][1].dtype,
        buffer_names=buffer_names,
        state_keys=state_keys,
        predict_shortcut=_overridden(net, _PREDICT_METHODS) is None,
    )


def _signature(net: Any) -> str:
    """What determines training: the net's class and parameters. A module passed as an
    instance is identified by its weights too (its repr does not show them)."""
    import hashlib

    parts = [type(net).__module__, type(net).__qualname__]
    for key, value in sorted(net.get_params(deep=False).items()):
        parts.append(f"{key}={value!r}")
        if isinstance(value, nn.Module):
            h = hashlib.sha256()
            for name, t in value.state_dict().items():
                h.update(name.encode())
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
            parts.append(h.hexdigest())
    return "\n".join(parts)


def _spec(net: Any) -> _Spec | str:
    """The spec of ``net``, or a reason. Cached by signature rather than by object, because
    joblib workers receive a fresh copy of the net with every task."""
    from skorch import NeuralNet

    if not isinstance(net, NeuralNet):
        return f"{type(net).__name__} is not a skorch NeuralNet"
    try:
        signature = _signature(net)
    except Exception as exc:  # noqa: BLE001
        return f"{type(net).__name__} has no readable get_params ({type(exc).__name__})"
    with _SPECS_LOCK:
        cached = _SPECS.pop(signature, None)
        if cached is not None:
            _SPECS[signature] = cached  # most recently used last
            return cached
    try:
        spec: _Spec | str = _build_spec(net)
    except _Reason as exc:
        spec = str(exc)
    with _SPECS_LOCK:
        _SPECS[signature] = spec
        while len(_SPECS) > _SPECS_MAX:
            _SPECS.pop(next(iter(_SPECS)))
    return spec


# --------------------------------------------------------------------------------------------
# Reasons and backend choice
# --------------------------------------------------------------------------------------------
def unsupported_reason(net: Any, x: Any = None, y: Any = None) -> str | None:
    """None when the fast path can train ``net``; else a short reason naming what stops it.

    Without data the check is structural (net class, layers, criterion, optimizer, callbacks,
    data loading). With a few training rows ``x`` (and ``y``), it also runs one probe step of
    the backend the net would get, so a module that fails under torch.func is caught here
    rather than in the middle of a run.
    """
    spec = _spec(net)
    if isinstance(spec, str):
        return spec
    if x is None:
        return None
    xs = x[:4]
    ys = y[:4] if y is not None else np.zeros(len(xs), dtype=np.int64)
    try:
        _fit(net, xs, ys, [np.arange(min(2, len(xs))), np.arange(min(3, len(xs)))], [0, 1],
             epochs=1)
    except Exception as exc:  # noqa: BLE001 - the probe's purpose is to turn errors into reasons
        backend, _ = backend_for(net, xs)
        return f"a probe training step on the {backend} backend failed ({type(exc).__name__}: " \
               f"{str(exc)[:200]})"
    return None


def _as_host(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _kernel_for(spec: _Spec, x: Any) -> Any:
    """The CPU kernel for inputs like ``x``, or a string saying why there is none."""
    from . import fastpath_kernel

    if spec.device.type != "cpu":
        return f"the net's device is {spec.device}; the C kernel runs on the CPU"
    dtype = x.dtype if isinstance(x, (np.ndarray, torch.Tensor)) else None
    if dtype not in (np.float32, torch.float32):
        return f"inputs are {dtype}, the C kernel computes in float32"
    in_shape = tuple(int(s) for s in x.shape[1:])
    with spec.lock:
        kernel = spec.kernels.get(in_shape)
        if kernel is None:
            module = _unwrap(spec.scratch.module_)
            kernel = fastpath_kernel.get_kernel(module, in_shape)
            spec.kernels[in_shape] = kernel
    return kernel


def backend_for(net: Any, x: Any) -> tuple[str, str | None]:
    """Which backend trains ``net`` on inputs like ``x``: ``("kernel", None)``, or
    ``("vmap", why the kernel is not used)``. Raises ``ValueError`` for unsupported nets."""
    spec = _spec(net)
    if isinstance(spec, str):
        raise ValueError(f"the fast path cannot train this net: {spec}")
    kernel = _kernel_for(spec, x)
    return ("vmap", kernel) if isinstance(kernel, str) else ("kernel", None)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
@dataclass
class FitResult:
    """K trained models: parameters as rows of ``flat`` (K x P) plus per-model buffers."""

    flat: torch.Tensor
    buffers: list[dict[str, torch.Tensor]]
    losses: np.ndarray  # (K, epochs): skorch's train_loss history per model
    backend: str
    spec: _Spec = field(repr=False)

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


def _initial_models(spec: _Spec, subsets: Sequence[np.ndarray], seeds: Sequence[int],
                    epochs: int) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]],
                                          list[np.ndarray]]:
    """Initial weights and minibatch orders, replaying what skorch's fit draws from torch's RNG.

    skorch builds the module first (``initialize_module`` under the caller's seed), then each
    epoch its DataLoader draws a base seed and, when shuffling, a RandomSampler seed for a
    ``randperm``. We replay exactly those draws in a forked RNG, so the global RNG is left as
    it was.
    """
    flats, buffers, orders = [], [], []
    scratch = spec.scratch
    cpu_only = spec.device.type == "cpu"
    # On CPU only the default generator matters, and seeding it directly avoids
    # torch.manual_seed's lazy seeding of CUDA/XPU/MTIA (~1 ms of stack formatting per call).
    with spec.lock, torch.random.fork_rng(devices=[] if cpu_only else None):
        for subset, seed in zip(subsets, seeds, strict=True):
            if cpu_only:
                torch.default_generator.manual_seed(int(seed))
            else:
                torch.manual_seed(int(seed))
            scratch.initialize_module()
            if scratch.module_ is scratch.module:
                # ``module`` was given as an instance: skorch reuses it (every fit starts from
                # its weights); work on a copy so loading trained states never touches it
                scratch.module_ = copy.deepcopy(scratch.module)
            module = _unwrap(scratch.module_)
            flats.append(torch.cat([p.detach().reshape(-1).cpu() for p in module.parameters()]))
            named_buf = dict(module.named_buffers())
            buffers.append({n: named_buf[n].detach().clone() for n in spec.buffer_names})
            if spec.shuffle:
                n = len(subset)
                perms = []
                for _ in range(epochs):
                    torch.empty((), dtype=torch.int64).random_()  # the DataLoader's base seed
                    s = int(torch.empty((), dtype=torch.int64).random_().item())  # sampler's
                    perm = torch.randperm(n, generator=torch.Generator().manual_seed(s))
                    perms.append(subset[perm.numpy()])
                orders.append(np.concatenate(perms) if perms else subset[:0])
            else:
                orders.append(subset)
        # the last module built serves forward passes (functional_call swaps its weights)
        scratch.module_.to(spec.device)
    return torch.stack(flats), buffers, orders


def _check_inputs(x: Any, y: Any, subsets: Sequence[Any], seeds: Sequence[int]
                  ) -> list[np.ndarray]:
    if len(subsets) != len(seeds):
        raise ValueError(f"got {len(subsets)} subsets but {len(seeds)} seeds")
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x has {n} rows but y has {len(y)}")
    y_host = _as_host(y)
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


@contextlib.contextmanager
def _one_torch_thread(active: bool = True) -> Iterator[None]:
    """Run torch's small ops (module construction, softmax of K outputs) on one thread.

    With the C kernel, parallelism comes from our own threads; torch's OpenMP threads would
    only spin-wait after each tiny op and take CPU from them (measured: ~20% fewer
    evaluations per CPU-second with 2 torch threads).
    """
    before = torch.get_num_threads()
    if not active or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit(net: Any, x: Any, y: Any, subsets: Sequence[Any], seeds: Sequence[int], *,
         backend: str = "auto", n_threads: int | None = None, epochs: int | None = None
         ) -> FitResult:
    spec = _spec(net)
    if isinstance(spec, str):
        raise ValueError(f"the fast path cannot train this net: {spec}")
    if backend not in ("auto", "kernel", "vmap"):
        raise ValueError(f"backend must be 'auto', 'kernel' or 'vmap'; got {backend!r}")
    subs = _check_inputs(x, y, subsets, seeds)
    epochs = spec.epochs if epochs is None else epochs
    threads = torch.get_num_threads() if n_threads is None else max(1, int(n_threads))
    kernel = _kernel_for(spec, x) if backend in ("auto", "kernel") else "vmap requested"
    if backend == "kernel" and isinstance(kernel, str):
        raise ValueError(f"the C kernel cannot train this net: {kernel}")
    with _one_torch_thread(not isinstance(kernel, str)):
        flat, buffers, orders = _initial_models(spec, subs, seeds, epochs)
    n_sub = [len(s) for s in subs]
    bs = [n if spec.batch_size == -1 else spec.batch_size for n in n_sub]
    y_host = _as_host(y)
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
        from .fastpath_vmap import train_vmap

        module = _unwrap(spec.scratch.module_)
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


def _train_kernel(kernel: Any, spec: _Spec, x: Any, y_host: np.ndarray,
                  orders: list[np.ndarray], n_sub: list[int], bs: list[int],
                  flat: torch.Tensor, epochs: int, threads: int,
                  seeds: Sequence[int]) -> np.ndarray:
    from . import fastpath_kernel as fk

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
    xs = _as_host(x).reshape(len(y_host), -1)
    params = flat.numpy()  # shares memory: the kernel trains flat in place
    return kernel.train(xs, y_host.astype(np.int64, copy=False), orders, n_sub, params, hvec,
                        epochs=epochs, batch_sizes=bs, drop_last=spec.drop_last,
                        per_epoch=spec.shuffle, n_threads=threads, seeds=seeds)


def fit_many(net: Any, x: Any, y: Any, subsets: Sequence[np.ndarray], seeds: Sequence[int],
             *, backend: str = "auto", n_threads: int | None = None
             ) -> list[dict[str, torch.Tensor]]:
    """Train one model per subset; return one module ``state_dict`` per subset.

    Model k is the model ``torch.manual_seed(seeds[k]); clone(net).fit(x[subsets[k]],
    y[subsets[k]])`` produces, up to float rounding (dropout masks, on either backend, are
    drawn independently rather than from skorch's RNG stream). ``x``/``y`` are the whole
    training data (numpy or torch); subsets are positions into them, any sizes >= 1, in the
    order skorch would see the rows. ``n_threads`` (default: torch's thread count) threads
    share the models on the C kernel. The global torch RNG is left untouched.
    """
    return _fit(net, x, y, subsets, seeds, backend=backend, n_threads=n_threads).states()


# --------------------------------------------------------------------------------------------
# Prediction and scoring
# --------------------------------------------------------------------------------------------
def _stack_states(spec: _Spec, states: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor:
    return torch.stack([
        torch.cat([st[n].detach().reshape(-1).to(spec.dtype).cpu() for n in spec.names])
        for st in states
    ])


def _predict(spec: _Spec, flat: torch.Tensor, buffers: list[dict[str, torch.Tensor]] | None,
             x: Any, backend: str, n_threads: int) -> np.ndarray:
    kernel = _kernel_for(spec, x) if backend in ("auto", "kernel") else "vmap requested"
    if not isinstance(kernel, str):
        xs = _as_host(x).reshape(len(x), -1)
        out = torch.from_numpy(kernel.predict(xs, flat.cpu().numpy(), n_threads=n_threads))
    else:
        from .fastpath_vmap import predict_vmap

        bufs = {}
        if spec.buffer_names:
            if buffers is None:
                raise ValueError("states without buffers")
            bufs = {n: torch.stack([b[n] for b in buffers]).to(spec.device)
                    for n in spec.buffer_names}
        out = predict_vmap(_unwrap(spec.scratch.module_), flat.to(spec.device), bufs,
                           spec.layout, torch.as_tensor(x).to(spec.device))
    nonlin = spec.scratch._get_predict_nonlinearity()
    with torch.no_grad(), _one_torch_thread(not isinstance(kernel, str)):
        probs = torch.stack([nonlin(o) for o in out])
    return probs.detach().cpu().numpy()


def predict_proba_many(net: Any, states: Sequence[dict[str, torch.Tensor]], x: Any, *,
                       backend: str = "auto", n_threads: int | None = None) -> np.ndarray:
    """``net.predict_proba(x)`` for each state at once: an array (K, N, ...), as skorch returns
    it (the module's output passed through the net's predict nonlinearity)."""
    spec = _spec(net)
    if isinstance(spec, str):
        raise ValueError(f"the fast path cannot use this net: {spec}")
    threads = torch.get_num_threads() if n_threads is None else max(1, int(n_threads))
    flat = _stack_states(spec, states)
    buffers = [{n: st[n] for n in spec.buffer_names} for st in states]
    return _predict(spec, flat, buffers, x, backend, threads)


class _BatchedPredictions:
    """Serves ``predict_proba`` for K models from one batched forward pass per input array.

    A scorer calls ``net.predict_proba(x_test)`` (directly or through ``predict``/``score``)
    with the same test array for every model. The first call computes the outputs of all K
    models at once; the others are served from it. Any other input goes through the net
    itself, whose module holds the model's weights, so answers are always the model's.
    """

    def __init__(self, spec: _Spec, result: FitResult, net: Any, backend: str,
                 n_threads: int) -> None:
        self.spec, self.result, self.net = spec, result, net
        self.backend, self.n_threads = backend, n_threads
        self.x: Any = None
        self.probs: np.ndarray | None = None
        self.misses = 0

    def __call__(self, k: int, x: Any) -> np.ndarray:
        if self.probs is not None and x is self.x:
            return self.probs[k]
        if self.x is None and isinstance(x, (np.ndarray, torch.Tensor)):
            self.x = x
            self.probs = _predict(self.spec, self.result.flat, self.result.buffers, x,
                                  self.backend, self.n_threads)
            return self.probs[k]
        self.misses += 1
        return type(self.net).predict_proba(self.net, x)


def _accuracy_scorer(net: Any, spec: _Spec, scorer: Any) -> tuple[Any, np.ndarray] | None:
    """``(x_test, y_test)`` when ``scorer`` is this package's accuracy scorer on a classifier.

    Then ``scorer(net)`` is ``mean(net.predict(x_test) == y_test)`` (skorch predicts the argmax
    of ``predict_proba``), clipped to the scorer's range, and it can be computed for all K
    models from one batched forward pass. sklearn's scorer machinery costs ~3 ms per call
    here, about a fifth of a whole fast-path evaluation.
    """
    from skorch import NeuralNetClassifier

    from .scorers import SupervisedScorer

    if not (isinstance(scorer, SupervisedScorer) and isinstance(net, NeuralNetClassifier)):
        return None
    if scorer.scoring != "accuracy" or not spec.predict_shortcut:
        return None
    if type(scorer).__call__ is not SupervisedScorer.__call__:
        return None
    x_test, y_test = scorer._test_xy()
    y_test = _as_host(y_test)
    if y_test.ndim != 1 or not isinstance(x_test, (np.ndarray, torch.Tensor)):
        return None
    return x_test, y_test


def fit_score_many(net: Any, x: Any, y: Any, subsets: Sequence[np.ndarray],
                   seeds: Sequence[int], scorer: Any, *, backend: str = "auto",
                   n_threads: int | None = None) -> np.ndarray:
    """Fit one model per subset (as :func:`fit_many`) and score each with ``scorer(net)``.

    Each model is loaded into one initialised copy of the net (with what ``fit`` records
    besides the weights, such as ``classes_``), so any scorer works; the net's
    ``predict_proba`` is answered from one batched forward pass over all K models, so scoring
    costs about as much as one model's prediction. The package's own accuracy scorer is
    computed directly from that pass (same numbers, without sklearn's per-call overhead).
    Returns the scores as the scorer returns them (float64).
    """
    threads = torch.get_num_threads() if n_threads is None else max(1, int(n_threads))
    result = _fit(net, x, y, subsets, seeds, backend=backend, n_threads=threads)
    spec = result.spec
    direct = _accuracy_scorer(net, spec, scorer)
    if direct is not None:
        x_test, y_test = direct
        probs = _predict(spec, result.flat, result.buffers, x_test, result.backend, threads)
        acc = (probs.argmax(axis=-1) == y_test[None, :]).mean(axis=1).astype(np.float64)
        return np.where(np.isfinite(acc), np.clip(acc, *scorer.range), scorer.default)
    scoring_net = spec.scratch
    states = result.states()
    cache = _BatchedPredictions(spec, result, scoring_net, result.backend, threads)
    scores = np.empty(len(states), dtype=np.float64)
    with spec.lock:
        try:
            for k, state in enumerate(states):
                subset = np.asarray(subsets[k], dtype=np.int64)
                # what fit() records besides the weights (NeuralNetClassifier: classes_)
                scoring_net.check_data(x[subset], y[subset])
                scoring_net.module_.load_state_dict(state)
                if spec.predict_shortcut:
                    scoring_net.predict_proba = functools.partial(cache, k)
                scores[k] = float(scorer(scoring_net))
        finally:
            scoring_net.__dict__.pop("predict_proba", None)
    return scores
