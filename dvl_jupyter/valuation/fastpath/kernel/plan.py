"""Tracing: an ``nn.Module`` to the chain of layers the kernel implements.

``plan_module`` traces the module with ``torch.fx`` and accepts only a simple chain of the
supported layers (conv, linear, pooling, element-wise activations, ``nn.Dropout``, flatten,
softmax), with every shape known from the input shape. Anything else raises ``_Unsupported``
with a short reason naming the layer or call that stops it; that reason is what the user is
shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class Layer:
    """One step of the chain; shapes exclude the batch dimension."""

    kind: str
    name: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    w_off: int = -1
    b_off: int = -1

    @property
    def in_size(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def out_size(self) -> int:
        return int(np.prod(self.out_shape))


@dataclass
class Plan:
    """A traced module: its layer chain and the flat parameter layout the kernel uses.

    The flat layout is ``torch.cat([p.flatten() for p in module.parameters()])``, i.e. the
    parameters in ``named_parameters()`` order, so a state dict maps to it without reordering.
    """

    layers: list[Layer]
    in_shape: tuple[int, ...]
    param_names: list[str]
    param_shapes: list[tuple[int, ...]]
    param_offsets: list[int]
    n_params: int

    @property
    def out_size(self) -> int:
        return self.layers[-1].out_size if self.layers else int(np.prod(self.in_shape))

    def signature(self) -> str:
        """Identity of the generated code (layers, shapes, offsets)."""
        parts = [repr(self.in_shape)]
        for ly in self.layers:
            attrs = sorted(ly.attrs.items())
            parts.append(f"{ly.kind}{ly.in_shape}{ly.out_shape}{attrs}{ly.w_off},{ly.b_off}")
        return "|".join(parts)


class _Unsupported(Exception):
    """Raised while tracing: the message is the reason shown to the user."""


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv_layer(name: str, m: nn.Conv2d, shape: tuple[int, ...]) -> Layer:
    if len(shape) != 3 or shape[0] != m.in_channels:
        raise _Unsupported(f"Conv2d ({name}) gets input of shape {shape}, expected (C, H, W)")
    if m.groups != 1:
        raise _Unsupported(f"Conv2d ({name}) has groups={m.groups}")
    if m.padding_mode != "zeros":
        raise _Unsupported(f"Conv2d ({name}) has padding_mode={m.padding_mode!r}")
    kh, kw = _pair(m.kernel_size)
    sh, sw = _pair(m.stride)
    dh, dw = _pair(m.dilation)
    _, h, w = shape
    if isinstance(m.padding, str):
        if m.padding == "valid":
            pt = pb = pl = pr = 0
        else:  # "same" (torch allows it with stride 1 only): extra padding goes right/bottom
            th, tw = dh * (kh - 1), dw * (kw - 1)
            pt, pl = th // 2, tw // 2
            pb, pr = th - pt, tw - pl
    else:
        pt, pl = _pair(m.padding)
        pb, pr = pt, pl
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1:
        raise _Unsupported(f"Conv2d ({name}) output would be empty for input {shape}")
    attrs = dict(cin=m.in_channels, cout=m.out_channels, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw,
                 dh=dh, dw=dw, pt=pt, pl=pl, ho=ho, wo=wo)
    return Layer("conv", name, shape, (m.out_channels, ho, wo), attrs)


def _pool_layer(name: str, kind: str, m: nn.Module, shape: tuple[int, ...]) -> Layer:
    if len(shape) != 3:
        raise _Unsupported(f"{type(m).__name__} ({name}) gets input of shape {shape}")
    kh, kw = _pair(m.kernel_size)
    sh, sw = _pair(m.stride if m.stride is not None else m.kernel_size)
    if _pair(m.padding) != (0, 0) or getattr(m, "ceil_mode", False):
        raise _Unsupported(f"{type(m).__name__} ({name}) uses padding or ceil_mode")
    if kind == "maxpool" and (_pair(m.dilation) != (1, 1) or m.return_indices):
        raise _Unsupported(f"MaxPool2d ({name}) uses dilation or return_indices")
    if kind == "avgpool" and m.divisor_override is not None:
        raise _Unsupported(f"AvgPool2d ({name}) uses divisor_override")
    c, h, w = shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise _Unsupported(f"{type(m).__name__} ({name}) output would be empty")
    attrs = dict(c=c, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, ho=ho, wo=wo)
    return Layer(kind, name, shape, (c, ho, wo), attrs)


def _softmax_layer(name: str, kind: str, dim: Any, shape: tuple[int, ...]) -> Layer:
    if len(shape) != 1 or dim not in (1, -1):
        raise _Unsupported(f"{kind} ({name}) over dim={dim} of a {len(shape) + 1}-d tensor")
    return Layer(kind, name, shape, shape)


def _module_layer(name: str, m: nn.Module, shape: tuple[int, ...]) -> Layer | None:
    """The layer for one leaf module (None: identity)."""
    t = type(m)
    if t is nn.Conv2d:
        return _conv_layer(name, m, shape)
    if t is nn.Linear:
        if len(shape) != 1 or shape[0] != m.in_features:
            raise _Unsupported(f"Linear ({name}) gets input of shape {shape}")
        return Layer("linear", name, shape, (m.out_features,),
                     dict(fin=m.in_features, fout=m.out_features))
    if t is nn.ReLU:
        return Layer("relu", name, shape, shape)
    if t is nn.LeakyReLU:
        if m.negative_slope < 0:
            raise _Unsupported(f"LeakyReLU ({name}) has a negative slope")
        return Layer("leaky_relu", name, shape, shape, dict(slope=float(m.negative_slope)))
    if t is nn.Tanh:
        return Layer("tanh", name, shape, shape)
    if t is nn.Sigmoid:
        return Layer("sigmoid", name, shape, shape)
    if t is nn.MaxPool2d:
        return _pool_layer(name, "maxpool", m, shape)
    if t is nn.AvgPool2d:
        return _pool_layer(name, "avgpool", m, shape)
    if t is nn.Flatten:
        if m.start_dim != 1 or m.end_dim != -1:
            raise _Unsupported(f"Flatten ({name}) with start_dim={m.start_dim}")
        return Layer("flatten", name, shape, (int(np.prod(shape)),))
    if t is nn.Softmax:
        return _softmax_layer(name, "softmax", m.dim, shape)
    if t is nn.LogSoftmax:
        return _softmax_layer(name, "log_softmax", m.dim, shape)
    if t is nn.Identity or (t in (nn.Dropout, nn.Dropout2d) and m.p == 0):
        return None
    if t is nn.Dropout:  # element-wise inverted dropout in training, identity in eval
        return Layer("dropout", name, shape, shape, dict(p=float(m.p)))
    raise _Unsupported(f"module layer {t.__name__} ({name}) is not implemented by the CPU kernel")


def _function_layer(node: Any, shape: tuple[int, ...], size_nodes: set[Any]) -> Layer | None:
    """The layer for a call_function / call_method node of the traced graph."""
    import torch.nn.functional as F

    name = str(node.target if node.op == "call_method" else getattr(node.target, "__name__",
                                                                    node.target))
    args, kwargs = list(node.args[1:]), dict(node.kwargs)
    kwargs.pop("inplace", None)
    if node.op == "call_function":
        fn = node.target
        if fn in (F.relu, torch.relu) and not args and not kwargs:
            return Layer("relu", name, shape, shape)
        if fn in (torch.tanh, F.tanh) and not args and not kwargs:
            return Layer("tanh", name, shape, shape)
        if fn in (torch.sigmoid, F.sigmoid) and not args and not kwargs:
            return Layer("sigmoid", name, shape, shape)
        if fn is torch.flatten:
            start = args[0] if args else kwargs.get("start_dim", 0)
            end = args[1] if len(args) > 1 else kwargs.get("end_dim", -1)
            if start == 1 and end == -1:
                return Layer("flatten", name, shape, (int(np.prod(shape)),))
        if fn in (F.softmax, torch.softmax, F.log_softmax, torch.log_softmax):
            dim = args[0] if args else kwargs.get("dim")
            kind = "softmax" if fn in (F.softmax, torch.softmax) else "log_softmax"
            kwargs.pop("_stacklevel", None)  # F.softmax's warning bookkeeping
            if len(args) <= 1 and set(kwargs) <= {"dim", "dtype"} and kwargs.get("dtype") is None:
                return _softmax_layer(name, kind, dim, shape)
    elif node.op == "call_method":
        meth = node.target
        if meth in ("relu", "tanh", "sigmoid") and not args and not kwargs:
            return Layer(meth, name, shape, shape)
        if meth == "flatten" and (args in ([1], [1, -1]) or kwargs == {"start_dim": 1}):
            return Layer("flatten", name, shape, (int(np.prod(shape)),))
        if meth in ("view", "reshape") and len(args) == 2 and not kwargs:
            first, second = args
            flat = int(np.prod(shape))
            batch_first = first in size_nodes or first == -1
            if batch_first and (second == -1 or second == flat) and not (first == second == -1):
                return Layer("flatten", name, shape, (flat,))
    raise _Unsupported(f"forward calls {name} in a way the CPU kernel does not implement")


def plan_module(module: nn.Module, in_shape: Sequence[int]) -> Plan:
    """Trace ``module`` with ``torch.fx`` into a chain of kernel layers.

    Raises ``_Unsupported`` with a short reason naming the layer or call that stops it;
    :func:`~.kernel.get_kernel` catches it and returns the reason.
    """
    import torch.fx

    named = list(module.named_parameters())
    for pname, p in named:
        if not p.requires_grad:
            raise _Unsupported(f"parameter {pname} is frozen (requires_grad=False)")
        if p.dtype != torch.float32:
            raise _Unsupported(f"parameter {pname} is {p.dtype}, the kernel computes in float32")
    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception as exc:  # noqa: BLE001 - any tracing failure is a reason, not an error
        raise _Unsupported(f"torch.fx cannot trace the module ({type(exc).__name__})") from None
    offsets, shapes, off = [], [], 0
    for _, p in named:
        offsets.append(off)
        shapes.append(tuple(p.shape))
        off += p.numel()
    index = {n: i for i, (n, _) in enumerate(named)}
    used: set[str] = set()

    layers: list[Layer] = []
    shape = tuple(int(s) for s in in_shape)
    cur = None
    size_nodes: set[Any] = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if cur is not None:
                raise _Unsupported("forward takes more than one input")
            cur = node
            continue
        if node.op == "output":
            if node.args[0] is not cur:
                raise _Unsupported("forward returns something other than its last layer")
            break
        if node.op == "call_method" and node.target == "size":
            if node.args[0] is not cur or list(node.args[1:]) != [0]:
                raise _Unsupported("forward uses x.size() other than x.size(0)")
            size_nodes.add(node)
            continue
        if not node.args or node.args[0] is not cur:
            raise _Unsupported(f"forward is not a simple chain of layers (at {node.name})")
        if node.op == "call_module":
            sub = gm.get_submodule(node.target)
            if len(node.args) != 1 or node.kwargs:
                raise _Unsupported(f"module {node.target} is called with extra arguments")
            layer = _module_layer(str(node.target), sub, shape)
            if layer is not None:
                for suffix, attr in (("weight", "w_off"), ("bias", "b_off")):
                    pname = f"{node.target}.{suffix}"
                    if pname in index and getattr(sub, suffix, None) is not None:
                        if pname in used:
                            raise _Unsupported(f"module {node.target} is used twice")
                        used.add(pname)
                        setattr(layer, attr, offsets[index[pname]])
        elif node.op in ("call_function", "call_method"):
            layer = _function_layer(node, shape, size_nodes)
        else:  # get_attr: a parameter or buffer used directly in forward
            raise _Unsupported(f"forward reads attribute {node.target} directly")
        if layer is not None:
            layers.append(layer)
            shape = layer.out_shape
        cur = node
    unused = [n for n in index if n not in used]
    if unused:
        raise _Unsupported(f"parameter {unused[0]} is not used by a supported layer")
    if len(shape) != 1:
        raise _Unsupported(f"the module's output has shape {shape}, expected (n_classes,)")
    return Plan(layers, tuple(int(s) for s in in_shape), [n for n, _ in named], shapes,
                offsets, off)
