"""Reading a skorch net: everything the fast path needs from it, extracted and checked once.

:func:`net_spec` turns a net into a :class:`NetSpec` (an initialised scratch clone, the
optimizer's and criterion's arithmetic, the parameter layout, how minibatches are drawn) or
into a one-line reason why the fast path cannot train it (BatchNorm, an unknown optimizer, a
callback that changes training, a validation split...). Specs are cached by the net's
signature, because joblib workers receive a fresh copy of the net with every task.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["NetSpec", "net_spec", "unwrap"]

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
class NetSpec:
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


_SPECS: dict[str, NetSpec | str] = {}  # signature -> spec, least recently used first
_SPECS_MAX = 8
_SPECS_LOCK = threading.Lock()


def unwrap(obj: Any) -> Any:
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

    crit = unwrap(scratch.criterion_)
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


def _build_spec(net: Any) -> NetSpec:
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
    module = unwrap(scratch.module_)
    _check_module(module)
    loss_kind, crit = _criterion_spec(scratch)
    opt_kind, opt_hyper = _optimizer_spec(scratch)
    named = list(module.named_parameters())
    shapes = [tuple(p.shape) for _, p in named]
    offsets = list(np.cumsum([0] + [int(np.prod(s)) for s in shapes])[:-1].astype(int))
    state_keys = list(module.state_dict().keys())
    buffer_names = [n for n, _ in module.named_buffers() if n in state_keys]
    return NetSpec(
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


def net_spec(net: Any) -> NetSpec | str:
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
        spec: NetSpec | str = _build_spec(net)
    except _Reason as exc:
        spec = str(exc)
    with _SPECS_LOCK:
        _SPECS[signature] = spec
        while len(_SPECS) > _SPECS_MAX:
            _SPECS.pop(next(iter(_SPECS)))
    return spec

