"""CPU backend of the fast path: the whole training loop of many small nets in generated C.

Why C: the reference network (``SimpleCNN``) has 8 and 4 convolution channels. Every
formulation in torch turns its layers into matrix products with one dimension of 4-8, which
MKL/oneDNN run at 4-15 GFLOP/s here, and each training step is ~40 operator calls whose
dispatch and memory traffic cost more than the arithmetic. Measured on this machine, the best
torch formulation (grouped convolutions over K stacked models, channels-last) needed ~19 us per
sample and step on one core; this kernel needs ~2.5-6 us.

How: a net is a chain of layers (conv, linear, pooling, element-wise activations, flatten,
softmax) whose shapes are known once the input shape is. We generate C for that chain with
every size a compile-time constant and put 16 *samples* of one model side by side in the 16
lanes of a SIMD vector (GCC vector extensions, so the same source compiles for AVX-512, AVX2
or NEON). Each layer is then plain scalar-looking code over vectors: a convolution is
``acc[o] += w[o,c,ky,kx] * x[c,y+ky,x+kx]`` with the weight broadcast and the 16 samples in
the lanes, with no im2col, no padding copies and no shuffles, and every activation of a
16-sample group stays in L1/L2. The kernel runs the whole fit of one model (every epoch,
minibatch, backward pass and optimizer step) in one call, so a model takes exactly its own
steps; models are independent and are spread over threads by Python (ctypes releases the GIL).

The backend is used only when all of this holds (otherwise ``plan_reason`` says why and the
caller uses the torch.func backend): CPU float32, a module that ``torch.fx`` traces to a chain
of the supported layers, a C compiler (``cc``/``gcc``/``clang``), and a self-check of the
generated forward pass against the module itself.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "Layer",
    "Plan",
    "plan_module",
    "Kernel",
    "get_kernel",
    "OPT_ADAM",
    "OPT_SGD",
    "LOSS_CE",
    "LOSS_NLL_LOG",
    "LOSS_NLL",
    "HYPER_FIELDS",
]

#: Samples per SIMD vector. 16 floats = one AVX-512 register (two AVX2 registers); measured
#: equal to 8 and twice as fast as 32 on this machine.
LANES = 16

OPT_ADAM, OPT_SGD = 0, 1
LOSS_CE, LOSS_NLL_LOG, LOSS_NLL = 0, 1, 2

#: Order of the float64 hyper-parameter vector passed to ``train`` (mirrored in the C source).
HYPER_FIELDS = (
    "opt", "lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize",
    "decoupled", "momentum", "dampening", "nesterov",
    "loss", "label_smoothing", "ignore_index", "reduction_sum",
)

_ELEMENTWISE = ("relu", "leaky_relu", "tanh", "sigmoid", "softmax", "log_softmax")
#: Layers whose backward pass reads their own output (so the next layer must not overwrite it).
_NEEDS_OUTPUT = (*_ELEMENTWISE, "maxpool")


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


# --------------------------------------------------------------------------------------------
# Tracing: module -> chain of layers
# --------------------------------------------------------------------------------------------
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

    Raises ``_Unsupported`` (caught by :func:`plan_reason`) with a short reason naming the
    layer or call that stops it.
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


# --------------------------------------------------------------------------------------------
# Code generation
# --------------------------------------------------------------------------------------------
def _tiles(n: int, t: int = 8) -> list[tuple[int, int]]:
    """(start, size) tiles of at most ``t``: accumulators kept in registers, not spilled."""
    return [(s, min(t, n - s)) for s in range(0, n, t)]


class _CodeGen:
    """Builds the C source for one plan. Sizes are literals so loops unroll and vectorise."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.lines: list[str] = []
        self.tables: list[str] = []
        # buffers: activation i (0 = input) lives in buffer bufs[i]; element-wise layers work
        # in place unless the layer before them reads its own output in backward.
        layers = plan.layers
        self.bufs = [0]
        sizes = {0: int(np.prod(plan.in_shape))}
        nb = 1
        for i, ly in enumerate(layers):
            prev_kind = layers[i - 1].kind if i > 0 else "input"
            inplace = ly.kind == "flatten" or (
                ly.kind in _ELEMENTWISE and prev_kind not in _NEEDS_OUTPUT
            )
            if inplace:
                self.bufs.append(self.bufs[-1])
            else:
                self.bufs.append(nb)
                nb += 1
            b = self.bufs[-1]
            sizes[b] = max(sizes.get(b, 0), ly.out_size)
        # scratch: for every convolution a zero-bordered copy of its input (so no tap needs a
        # bounds check) and, for stride 1, a zero-bordered copy of its output gradient. The
        # borders are zeroed once when the buffers are allocated and never written again.
        for i, ly in enumerate(layers):
            if ly.kind != "conv":
                continue
            a = ly.attrs
            a["hp"] = max(a["h"] + a["pt"], (a["ho"] - 1) * a["sh"] + (a["kh"] - 1) * a["dh"] + 1)
            a["wp"] = max(a["w"] + a["pl"], (a["wo"] - 1) * a["sw"] + (a["kw"] - 1) * a["dw"] + 1)
            sizes[nb] = a["cin"] * a["hp"] * a["wp"]
            a["ps"] = nb
            nb += 1
            if i > 0 and a["sh"] == 1 and a["sw"] == 1:
                a["gy0"] = max(0, (a["kh"] - 1) * a["dh"] - a["pt"])
                a["gx0"] = max(0, (a["kw"] - 1) * a["dw"] - a["pl"])
                a["gh"] = max(a["h"] + a["pt"] + a["gy0"], a["ho"] + a["gy0"])
                a["gw"] = max(a["w"] + a["pl"] + a["gx0"], a["wo"] + a["gx0"])
                sizes[nb] = a["cout"] * a["gh"] * a["gw"]
                a["pg"] = nb
                nb += 1
        self.nbuf = nb
        self.buf_sizes = [sizes[b] for b in range(nb)]
        self.gmax = max([int(np.prod(plan.in_shape))] + [ly.out_size for ly in layers])

    def e(self, s: str) -> None:
        self.lines.append(s)

    # -- forward ----------------------------------------------------------------------------
    def fwd(self, ly: Layer, src: str, dst: str) -> None:
        e, a = self.e, ly.attrs
        if ly.kind == "conv":
            ci, h, w, co = a["cin"], a["h"], a["w"], a["cout"]
            kh, kw, sh, sw, dh, dw = a["kh"], a["kw"], a["sh"], a["sw"], a["dh"], a["dw"]
            pt, pl, ho, wo, hp, wp = a["pt"], a["pl"], a["ho"], a["wo"], a["hp"], a["wp"]
            wsz = ci * kh * kw
            ps = f"A[{a['ps']}]"
            e(f"for (int c=0; c<{ci}; c++) for (int y=0; y<{h}; y++) for (int x=0; x<{w}; x++)")
            e(f"  {ps}[(c*{hp}+y+{pt})*{wp}+x+{pl}] = {src}[(c*{h}+y)*{w}+x];")
            for o0, ot in _tiles(co):
                bias = f"p[{ly.b_off}+{o0}+o]" if ly.b_off >= 0 else "0.0f"
                e(f"for (int oy=0; oy<{ho}; oy++) for (int ox=0; ox<{wo}; ox++) {{")
                e(f"  vf acc[{ot}];")
                e(f"  for (int o=0; o<{ot}; o++) acc[o] = (vf){{}} + {bias};")
                e(f"  const vf* b = {ps} + oy*{sh * wp} + ox*{sw};")
                e(f"  for (int c=0; c<{ci}; c++) for (int ky=0; ky<{kh}; ky++)"
                  f" for (int kx=0; kx<{kw}; kx++) {{")
                e(f"    vf v = b[(c*{hp}+ky*{dh})*{wp}+kx*{dw}];")
                e(f"    const float* wp = p + {ly.w_off} + {o0 * wsz} + (c*{kh}+ky)*{kw}+kx;")
                e(f"    UNROLL for (int o=0; o<{ot}; o++) acc[o] += v * wp[o*{wsz}];")
                e("  }")
                e(f"  for (int o=0; o<{ot}; o++) {dst}[(({o0}+o)*{ho}+oy)*{wo}+ox] = acc[o];")
                e("}")
        elif ly.kind == "linear":
            fi, fo = a["fin"], a["fout"]
            for o0, ot in _tiles(fo, 16):
                bias = f"p[{ly.b_off}+{o0}+o]" if ly.b_off >= 0 else "0.0f"
                e(f"{{ vf acc[{ot}];")
                e(f"  for (int o=0; o<{ot}; o++) acc[o] = (vf){{}} + {bias};")
                e(f"  for (int i=0; i<{fi}; i++) {{ vf v = {src}[i];")
                e(f"    const float* wp = p + {ly.w_off} + {o0 * fi} + i;")
                e(f"    UNROLL for (int o=0; o<{ot}; o++) acc[o] += v * wp[o*{fi}]; }}")
                e(f"  for (int o=0; o<{ot}; o++) {dst}[{o0}+o] = acc[o]; }}")
        elif ly.kind == "relu":
            e(f"for (int i=0; i<{ly.out_size}; i++) {{ vf v = {src}[i];"
              f" {dst}[i] = sel(v > 0, v, (vf){{}}); }}")
        elif ly.kind == "leaky_relu":
            e(f"for (int i=0; i<{ly.out_size}; i++) {{ vf v = {src}[i];"
              f" {dst}[i] = sel(v > 0, v, v * {a['slope']!r}f); }}")
        elif ly.kind in ("tanh", "sigmoid"):
            fn = "tanhf(x[j])" if ly.kind == "tanh" else "1.0f / (1.0f + expf(-x[j]))"
            e(f"{{ const float* x = (const float*){src}; float* y = (float*){dst};")
            e(f"  for (int j=0; j<{ly.out_size}*V; j++) y[j] = {fn}; }}")
        elif ly.kind in ("maxpool", "avgpool"):
            c, h, w, kh, kw = a["c"], a["h"], a["w"], a["kh"], a["kw"]
            sh, sw, ho, wo = a["sh"], a["sw"], a["ho"], a["wo"]
            e(f"for (int c=0; c<{c}; c++) for (int oy=0; oy<{ho}; oy++)"
              f" for (int ox=0; ox<{wo}; ox++) {{")
            e(f"  const vf* b = {src} + (c*{h}+oy*{sh})*{w}+ox*{sw};")
            if ly.kind == "maxpool":  # first maximum wins, as in torch's CPU kernel
                e("  vf m = b[0];")
                e(f"  for (int ky=0; ky<{kh}; ky++) for (int kx=0; kx<{kw}; kx++) {{")
                e(f"    vf v = b[ky*{w}+kx]; m = sel(v > m, v, m); }}")
                e(f"  {dst}[(c*{ho}+oy)*{wo}+ox] = m; }}")
            else:
                e("  vf s = (vf){};")
                e(f"  for (int ky=0; ky<{kh}; ky++) for (int kx=0; kx<{kw}; kx++)"
                  f" s += b[ky*{w}+kx];")
                e(f"  {dst}[(c*{ho}+oy)*{wo}+ox] = s / {float(kh * kw)!r}f; }}")
        elif ly.kind in ("softmax", "log_softmax"):
            n = ly.out_size
            e(f"{{ const float* x = (const float*){src}; float* y = (float*){dst};")
            e("  for (int l=0; l<V; l++) {")
            e(f"    float m = x[l]; for (int i=1; i<{n}; i++) m = x[i*V+l] > m ? x[i*V+l] : m;")
            e(f"    float s = 0; for (int i=0; i<{n}; i++) s += expf(x[i*V+l] - m);")
            if ly.kind == "softmax":
                e(f"    for (int i=0; i<{n}; i++) y[i*V+l] = expf(x[i*V+l] - m) / s;")
            else:
                e(f"    float ls = logf(s); for (int i=0; i<{n}; i++)"
                  f" y[i*V+l] = x[i*V+l] - m - ls;")
            e("  } }")
        elif ly.kind == "flatten":
            pass
        else:  # pragma: no cover - plan_module only emits the kinds above
            raise AssertionError(ly.kind)

    # -- backward ---------------------------------------------------------------------------
    def bwd(self, ly: Layer, src: str, dst: str, gout: str, gin: str, need_gin: bool) -> None:
        """Accumulate parameter gradients into G; write dL/d(input) to ``gin`` if needed."""
        e, a = self.e, ly.attrs
        if ly.kind == "conv":
            self.conv_weight_grad(ly, gout)
            if need_gin:
                if "pg" in a:
                    self.conv_input_grad_padded(ly, gout, gin)
                else:
                    self.conv_input_grad_strided(ly, gout, gin)
        elif ly.kind == "linear":
            fi, fo = a["fin"], a["fout"]
            e(f"for (int o=0; o<{fo}; o++) {{ vf g = {gout}[o];")
            if ly.b_off >= 0:
                e(f"  G[{ly.b_off}+o] += g;")
            e(f"  vf* gp = G + {ly.w_off} + o*{fi};")
            e(f"  for (int i=0; i<{fi}; i++) gp[i] += g * {src}[i]; }}")
            if need_gin:
                e(f"for (int i=0; i<{fi}; i++) {gin}[i] = (vf){{}};")
                e(f"for (int o=0; o<{fo}; o++) {{ vf g = {gout}[o];"
                  f" const float* wp = p + {ly.w_off} + o*{fi};")
                e(f"  for (int i=0; i<{fi}; i++) {gin}[i] += g * wp[i]; }}")
        elif not need_gin:
            return  # a parameter-free first layer: nothing to propagate
        elif ly.kind == "relu":
            e(f"for (int i=0; i<{ly.out_size}; i++)"
              f" {gin}[i] = sel({dst}[i] > 0, {gout}[i], (vf){{}});")
        elif ly.kind == "leaky_relu":
            e(f"for (int i=0; i<{ly.out_size}; i++)"
              f" {gin}[i] = sel({dst}[i] > 0, {gout}[i], {gout}[i] * {a['slope']!r}f);")
        elif ly.kind == "tanh":
            e(f"for (int i=0; i<{ly.out_size}; i++)"
              f" {gin}[i] = {gout}[i] * (1.0f - {dst}[i] * {dst}[i]);")
        elif ly.kind == "sigmoid":
            e(f"for (int i=0; i<{ly.out_size}; i++)"
              f" {gin}[i] = {gout}[i] * {dst}[i] * (1.0f - {dst}[i]);")
        elif ly.kind in ("maxpool", "avgpool"):
            c, h, w, kh, kw = a["c"], a["h"], a["w"], a["kh"], a["kw"]
            sh, sw, ho, wo = a["sh"], a["sw"], a["ho"], a["wo"]
            e(f"memset({gin}, 0, sizeof(vf)*{c * h * w});")
            e(f"for (int c=0; c<{c}; c++) for (int oy=0; oy<{ho}; oy++)"
              f" for (int ox=0; ox<{wo}; ox++) {{")
            e(f"  int base = (c*{h}+oy*{sh})*{w}+ox*{sw}; vf g = {gout}[(c*{ho}+oy)*{wo}+ox];")
            if ly.kind == "maxpool":  # the gradient goes to the first maximum only
                e(f"  vf m = {dst}[(c*{ho}+oy)*{wo}+ox]; vi taken = (vi){{}};")
                e(f"  for (int ky=0; ky<{kh}; ky++) for (int kx=0; kx<{kw}; kx++) {{")
                e(f"    int j = base + ky*{w}+kx; vi hit = ({src}[j] == m) & ~taken;")
                e(f"    taken |= hit; {gin}[j] += sel(hit, g, (vf){{}}); }} }}")
            else:
                e(f"  g = g / {float(kh * kw)!r}f;")
                e(f"  for (int ky=0; ky<{kh}; ky++) for (int kx=0; kx<{kw}; kx++)"
                  f" {gin}[base + ky*{w}+kx] += g; }}")
        elif ly.kind == "softmax":
            n = ly.out_size
            e(f"{{ vf s = (vf){{}}; for (int i=0; i<{n}; i++) s += {gout}[i] * {dst}[i];")
            e(f"  for (int i=0; i<{n}; i++) {gin}[i] = {dst}[i] * ({gout}[i] - s); }}")
        elif ly.kind == "log_softmax":
            n = ly.out_size
            e(f"{{ vf s = (vf){{}}; for (int i=0; i<{n}; i++) s += {gout}[i];")
            e(f"  const float* y = (const float*){dst}; float* gi = (float*){gin};")
            e(f"  const float* go = (const float*){gout};")
            e(f"  for (int i=0; i<{n}; i++) for (int l=0; l<V; l++)"
              f" gi[i*V+l] = go[i*V+l] - expf(y[i*V+l]) * s[l]; }}")
        elif ly.kind == "flatten":
            if gin != gout:
                e(f"memcpy({gin}, {gout}, sizeof(vf)*{ly.out_size});")
        else:  # pragma: no cover
            raise AssertionError(ly.kind)

    def conv_weight_grad(self, ly: Layer, gout: str) -> None:
        """dW and db. Accumulators for a block of taps x output channels stay in registers
        over all output positions (instead of a load and store of G per multiply-add)."""
        e, a = self.e, ly.attrs
        ci, co, kh, kw = a["cin"], a["cout"], a["kh"], a["kw"]
        sh, sw, dh, dw = a["sh"], a["sw"], a["dh"], a["dw"]
        ho, wo, hp, wp = a["ho"], a["wo"], a["hp"], a["wp"]
        wsz = ci * kh * kw
        ps = f"A[{a['ps']}]"
        offs = [(c * hp + ky * dh) * wp + kx * dw
                for c in range(ci) for ky in range(kh) for kx in range(kw)]
        name = f"TAP{ly.w_off}"
        table = ", ".join(map(str, offs))
        self.tables.append(f"static const int {name}[{len(offs)}] = {{{table}}};")
        if ly.b_off >= 0:
            e(f"for (int o=0; o<{co}; o++) {{ vf s = (vf){{}};")
            e(f"  for (int q=0; q<{ho * wo}; q++) s += {gout}[o*{ho * wo}+q];")
            e(f"  G[{ly.b_off}+o] += s; }}")
        for o0, ot in _tiles(co):
            tb = max(1, 24 // ot)
            blocks = [(t0, min(tb, wsz - t0)) for t0 in range(0, wsz, tb)]
            full = [b for b in blocks if b[1] == tb]
            tail = [b for b in blocks if b[1] != tb]
            for start, count, nb in ((0, tb, len(full)), *[(t0, n, 1) for t0, n in tail]):
                if nb == 0:
                    continue
                e(f"for (int t0={start}; t0<{start + nb * count}; t0+={count}) {{")
                e(f"  vf acc[{ot}][{count}];")
                e(f"  for (int o=0; o<{ot}; o++) for (int t=0; t<{count}; t++)"
                  f" acc[o][t] = (vf){{}};")
                e(f"  for (int oy=0; oy<{ho}; oy++) for (int ox=0; ox<{wo}; ox++) {{")
                e(f"    const vf* b = {ps} + oy*{sh * wp} + ox*{sw};")
                e(f"    vf g[{ot}];")
                e(f"    for (int o=0; o<{ot}; o++) g[o] = {gout}[(({o0}+o)*{ho}+oy)*{wo}+ox];")
                e(f"    UNROLL for (int t=0; t<{count}; t++) {{ vf v = b[{name}[t0+t]];")
                e(f"      UNROLL for (int o=0; o<{ot}; o++) acc[o][t] += g[o] * v; }}")
                e("  }")
                e(f"  for (int o=0; o<{ot}; o++) for (int t=0; t<{count}; t++)"
                  f" G[{ly.w_off}+({o0}+o)*{wsz}+t0+t] += acc[o][t];")
                e("}")

    def conv_input_grad_padded(self, ly: Layer, gout: str, gin: str) -> None:
        """dL/d(input) for stride 1, as a correlation over a zero-bordered copy of gout."""
        e, a = self.e, ly.attrs
        ci, h, w, co, kh, kw = a["cin"], a["h"], a["w"], a["cout"], a["kh"], a["kw"]
        dh, dw, pt, pl, ho, wo = a["dh"], a["dw"], a["pt"], a["pl"], a["ho"], a["wo"]
        gh, gw, gy0, gx0 = a["gh"], a["gw"], a["gy0"], a["gx0"]
        pg = f"A[{a['pg']}]"
        e(f"for (int o=0; o<{co}; o++) for (int y=0; y<{ho}; y++) for (int x=0; x<{wo}; x++)")
        e(f"  {pg}[(o*{gh}+y+{gy0})*{gw}+x+{gx0}] = {gout}[(o*{ho}+y)*{wo}+x];")
        for c0, ct in _tiles(ci):
            e(f"for (int iy=0; iy<{h}; iy++) for (int ix=0; ix<{w}; ix++) {{")
            e(f"  vf acc[{ct}]; for (int c=0; c<{ct}; c++) acc[c] = (vf){{}};")
            e(f"  const vf* b = {pg} + (iy+{pt + gy0})*{gw} + ix+{pl + gx0};")
            e(f"  for (int o=0; o<{co}; o++) for (int ky=0; ky<{kh}; ky++)"
              f" for (int kx=0; kx<{kw}; kx++) {{")
            e(f"    vf g = b[(o*{gh}-ky*{dh})*{gw}-kx*{dw}];")
            e(f"    const float* wp = p + {ly.w_off} + o*{ci * kh * kw} + ({c0}*{kh}+ky)*{kw}+kx;")
            e(f"    UNROLL for (int c=0; c<{ct}; c++) acc[c] += g * wp[c*{kh * kw}];")
            e("  }")
            e(f"  for (int c=0; c<{ct}; c++) {gin}[(({c0}+c)*{h}+iy)*{w}+ix] = acc[c];")
            e("}")

    def conv_input_grad_strided(self, ly: Layer, gout: str, gin: str) -> None:
        """dL/d(input) for any stride: gather form with bounds and divisibility checks."""
        e, a = self.e, ly.attrs
        ci, h, w, co = a["cin"], a["h"], a["w"], a["cout"]
        kh, kw, sh, sw, dh, dw = a["kh"], a["kw"], a["sh"], a["sw"], a["dh"], a["dw"]
        pt, pl, ho, wo = a["pt"], a["pl"], a["ho"], a["wo"]
        wsz = ci * kh * kw
        for c0, ct in _tiles(ci):
            e(f"for (int iy=0; iy<{h}; iy++) for (int ix=0; ix<{w}; ix++) {{")
            e(f"  vf acc[{ct}]; for (int c=0; c<{ct}; c++) acc[c] = (vf){{}};")
            e(f"  for (int o=0; o<{co}; o++) for (int ky=0; ky<{kh}; ky++) {{")
            e(f"    int ty = iy + {pt} - ky*{dh}; if (ty < 0 || ty % {sh}) continue;")
            e(f"    int oy = ty / {sh}; if (oy >= {ho}) continue;")
            e(f"    for (int kx=0; kx<{kw}; kx++) {{")
            e(f"      int tx = ix + {pl} - kx*{dw}; if (tx < 0 || tx % {sw}) continue;")
            e(f"      int ox = tx / {sw}; if (ox >= {wo}) continue;")
            e(f"      vf g = {gout}[(o*{ho}+oy)*{wo}+ox];")
            e(f"      const float* wp = p + {ly.w_off} + o*{wsz} + ({c0}*{kh}+ky)*{kw}+kx;")
            e(f"      UNROLL for (int c=0; c<{ct}; c++) acc[c] += g * wp[c*{kh * kw}];")
            e("  }}")
            e(f"  for (int c=0; c<{ct}; c++) {gin}[(({c0}+c)*{h}+iy)*{w}+ix] = acc[c];")
            e("}")

    # -- whole source -------------------------------------------------------------------------
    def source(self) -> str:
        plan, e = self.plan, self.e
        layers = plan.layers
        n_in = int(np.prod(plan.in_shape))
        e(_PRELUDE.replace("@LANES@", str(LANES)))
        e(f"#define NP {plan.n_params}")
        e(f"#define NIN {n_in}")
        e(f"#define NOUT {plan.out_size}")
        e(f"#define NBUF {self.nbuf}")
        e(f"#define GMAX {self.gmax}")
        e(f"static const int BUF_SIZE[NBUF] = {{{', '.join(map(str, self.buf_sizes))}}};")
        e(f"#define OUTBUF {self.bufs[-1]}")
        body_start = len(self.lines)
        e("static void forward(const float* restrict p, vf** A) {")
        for i, ly in enumerate(layers):
            self.fwd(ly, f"A[{self.bufs[i]}]", f"A[{self.bufs[i + 1]}]")
        e("}")
        e("static void backward(const float* restrict p, vf** A, vf* restrict G,"
          " vf* g0, vf* g1) {")
        e("  (void)g1;")
        cur, other = "g0", "g1"
        for i in reversed(range(len(layers))):
            ly = layers[i]
            src, dst = f"A[{self.bufs[i]}]", f"A[{self.bufs[i + 1]}]"
            need = i > 0
            if ly.kind in (*_ELEMENTWISE, "flatten"):
                self.bwd(ly, src, dst, cur, cur, need)
            else:
                self.bwd(ly, src, dst, cur, other, need)
                cur, other = other, cur
        e("}")
        self.lines[body_start:body_start] = self.tables
        e(_DRIVER)
        return "\n".join(self.lines) + "\n"


_PRELUDE = r"""
/* Generated by dvl_jupyter.valuation.fastpath_kernel: do not edit. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#define V @LANES@
typedef float vf __attribute__((vector_size(V * 4)));
typedef int32_t vi __attribute__((vector_size(V * 4)));
#if defined(__clang__)
#define UNROLL _Pragma("unroll")
#else
#define UNROLL _Pragma("GCC unroll 16")
#endif
static inline vf sel(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }
"""

_DRIVER = r"""
enum { H_OPT, H_LR, H_B1, H_B2, H_EPS, H_WD, H_AMSGRAD, H_MAXIMIZE, H_DECOUPLED, H_MOMENTUM,
       H_DAMPENING, H_NESTEROV, H_LOSS, H_SMOOTHING, H_IGNORE, H_SUM };
enum { OPT_ADAM = 0, OPT_SGD = 1 };
enum { LOSS_CE = 0, LOSS_NLL_LOG = 1, LOSS_NLL = 2 };

typedef struct { vf* A[NBUF]; vf* G; vf* g0; vf* g1; float* grad; float* m; float* v;
                 float* vmax; } work_t;

static void* amalloc(size_t n) {
    void* p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) return NULL;
    return p;
}

static int work_init(work_t* w) {
    memset(w, 0, sizeof(*w));
    int ok = 1;
    for (int b = 0; b < NBUF; b++) {
        ok &= (w->A[b] = amalloc(sizeof(vf) * BUF_SIZE[b])) != NULL;
        if (w->A[b]) memset(w->A[b], 0, sizeof(vf) * BUF_SIZE[b]);  /* zero borders */
    }
    ok &= (w->G = amalloc(sizeof(vf) * NP)) != NULL;
    ok &= (w->g0 = amalloc(sizeof(vf) * GMAX)) != NULL;
    ok &= (w->g1 = amalloc(sizeof(vf) * GMAX)) != NULL;
    ok &= (w->grad = amalloc(sizeof(float) * NP)) != NULL;
    ok &= (w->m = amalloc(sizeof(float) * NP)) != NULL;
    ok &= (w->v = amalloc(sizeof(float) * NP)) != NULL;
    ok &= (w->vmax = amalloc(sizeof(float) * NP)) != NULL;
    return ok;
}

static void work_free(work_t* w) {
    for (int b = 0; b < NBUF; b++) free(w->A[b]);
    free(w->G); free(w->g0); free(w->g1); free(w->grad); free(w->m); free(w->v); free(w->vmax);
}

/* Load up to V rows of X into the lanes of the input buffer; empty lanes get zeros. */
static void gather(float* x, const float* X, const int64_t* rows, int n) {
    for (int l = 0; l < V; l++) {
        if (l < n) { const float* r = X + rows[l] * (int64_t)NIN;
                     for (int j = 0; j < NIN; j++) x[j * V + l] = r[j]; }
        else { for (int j = 0; j < NIN; j++) x[j * V + l] = 0.0f; }
    }
}

/* Loss of the final activation o and its gradient g (both [NOUT][V]); w: per-lane weight
   (1/count for a mean, 1 for a sum, 0 for empty or ignored lanes). Returns sum_l w*loss_l. */
static float loss_grad(const double* h, const float* o, const int32_t* y, const float* w,
                       float* g) {
    int kind = (int)h[H_LOSS];
    float loss = 0.0f;
    memset(g, 0, sizeof(float) * NOUT * V);
    for (int l = 0; l < V; l++) {
        if (w[l] == 0.0f) continue;
        int t = y[l];
        if (kind == LOSS_CE) {
            float eps = (float)h[H_SMOOTHING];
            float m = o[l];
            for (int i = 1; i < NOUT; i++) m = o[i * V + l] > m ? o[i * V + l] : m;
            float s = 0.0f;
            for (int i = 0; i < NOUT; i++) s += expf(o[i * V + l] - m);
            float ls = logf(s), smooth = 0.0f;
            for (int i = 0; i < NOUT; i++) {
                float q = o[i * V + l] - m - ls;
                smooth -= q;
                float target = (1.0f - eps) * (i == t) + eps / NOUT;
                g[i * V + l] = w[l] * (expf(q) - target);
            }
            float nll = -(o[t * V + l] - m - ls);
            loss += w[l] * ((1.0f - eps) * nll + eps * smooth / NOUT);
        } else if (kind == LOSS_NLL_LOG) {  /* skorch's NLLLoss on probabilities: log(p+eps) */
            const float feps = 1.1920928955078125e-07f;
            float pv = o[t * V + l] + feps;
            loss -= w[l] * logf(pv);
            g[t * V + l] = -w[l] / pv;
        } else {
            loss -= w[l] * o[t * V + l];
            g[t * V + l] = -w[l];
        }
    }
    return loss;
}

/* One optimizer step on p, as torch.optim's single-tensor Adam/AdamW/SGD do it. */
static void opt_step(const double* h, float* restrict p, const float* restrict grad,
                     float* restrict m, float* restrict v, float* restrict vmax, int64_t step) {
    const int maximize = h[H_MAXIMIZE] != 0.0;
    const float wd = (float)h[H_WD];
    if ((int)h[H_OPT] == OPT_ADAM) {
        const double lr = h[H_LR], b1 = h[H_B1], b2 = h[H_B2];
        const float decay = (float)(1.0 - lr * h[H_WD]);
        const float w1 = (float)(1.0 - b1), fb2 = (float)b2, w2 = (float)(1.0 - b2);
        const float eps = (float)h[H_EPS];
        const float step_size = (float)(lr / (1.0 - pow(b1, (double)step)));
        const float bc2s = (float)sqrt(1.0 - pow(b2, (double)step));
        const int decoupled = h[H_DECOUPLED] != 0.0, amsgrad = h[H_AMSGRAD] != 0.0;
        for (int j = 0; j < NP; j++) {
            float g = maximize ? -grad[j] : grad[j];
            if (wd != 0.0f) { if (decoupled) p[j] *= decay; else g += wd * p[j]; }
            m[j] += w1 * (g - m[j]);
            v[j] = v[j] * fb2 + w2 * g * g;
            float vv = v[j];
            if (amsgrad) { vmax[j] = vmax[j] > vv ? vmax[j] : vv; vv = vmax[j]; }
            float denom = sqrtf(vv) / bc2s + eps;
            p[j] += -step_size * (m[j] / denom);
        }
    } else {
        const float lr = (float)h[H_LR], mom = (float)h[H_MOMENTUM];
        const float damp = (float)(1.0 - h[H_DAMPENING]);
        const int nesterov = h[H_NESTEROV] != 0.0;
        for (int j = 0; j < NP; j++) {
            float g = maximize ? -grad[j] : grad[j];
            if (wd != 0.0f) g += wd * p[j];
            if (mom != 0.0f) {
                m[j] = step == 1 ? g : m[j] * mom + damp * g;
                g = nesterov ? g + mom * m[j] : m[j];
            }
            p[j] += -lr * g;
        }
    }
}

/* Forward + backward of one minibatch: gradient (not yet summed over lanes) into w->G. */
static float batch_grad(work_t* wk, const double* h, const float* p, const float* X,
                        const int64_t* Y, const int64_t* rows, int64_t cnt) {
    const int ignore = (int)h[H_IGNORE];
    int64_t valid = 0;
    for (int64_t i = 0; i < cnt; i++) valid += Y[rows[i]] != ignore;
    const float wt = h[H_SUM] != 0.0 ? 1.0f : (valid ? 1.0f / (float)valid : 0.0f);
    float loss = 0.0f;
    memset(wk->G, 0, sizeof(vf) * NP);
    for (int64_t s = 0; s < cnt; s += V) {
        int n = (int)(cnt - s < V ? cnt - s : V);
        int32_t y[V]; float w[V];
        for (int l = 0; l < V; l++) {
            int64_t t = l < n ? Y[rows[s + l]] : ignore;
            y[l] = (int32_t)t; w[l] = (l < n && t != ignore) ? wt : 0.0f;
        }
        gather((float*)wk->A[0], X, rows + s, n);
        forward(p, wk->A);
        loss += loss_grad(h, (const float*)wk->A[OUTBUF], y, w, (float*)wk->g0);
        backward(p, wk->A, wk->G, wk->g0, wk->g1);
    }
    for (int j = 0; j < NP; j++) {
        float t = 0.0f;
        for (int l = 0; l < V; l++) t += wk->G[j][l];
        wk->grad[j] = t;
    }
    return loss;
}

/* Train nm models, each for `epochs` epochs on its own rows (order + order_off[m]: n_sub[m]
   rows, or epochs * n_sub[m] rows when per_epoch != 0). params: nm x NP, updated in place.
   epoch_loss: nm x epochs, skorch's train_loss (batch losses weighted by batch size).
   Returns 0, or 1 when memory ran out. */
int train(int64_t nm, const float* X, const int64_t* Y, const int64_t* order,
          const int64_t* order_off, const int64_t* n_sub, int64_t epochs, int64_t bs,
          int64_t drop_last, int64_t per_epoch, float* params, const double* h,
          float* epoch_loss) {
    work_t wk;
    if (!work_init(&wk)) { work_free(&wk); return 1; }
    for (int64_t mi = 0; mi < nm; mi++) {
        float* p = params + mi * (int64_t)NP;
        const int64_t n = n_sub[mi];
        const int64_t steps = drop_last ? n / bs : (n + bs - 1) / bs;
        memset(wk.m, 0, sizeof(float) * NP); memset(wk.v, 0, sizeof(float) * NP);
        memset(wk.vmax, 0, sizeof(float) * NP);
        int64_t t = 0;
        for (int64_t e = 0; e < epochs; e++) {
            const int64_t* ord = order + order_off[mi] + (per_epoch ? e * n : 0);
            double lsum = 0.0; int64_t seen = 0;
            for (int64_t s = 0; s < steps; s++) {
                int64_t cnt = n - s * bs < bs ? n - s * bs : bs;
                float loss = batch_grad(&wk, h, p, X, Y, ord + s * bs, cnt);
                opt_step(h, p, wk.grad, wk.m, wk.v, wk.vmax, ++t);
                lsum += (double)loss * (double)cnt; seen += cnt;
            }
            epoch_loss[mi * epochs + e] = seen ? (float)(lsum / (double)seen) : NAN;
        }
    }
    work_free(&wk);
    return 0;
}

/* Outputs of nm models on n rows of X: out is nm x n x NOUT. */
int predict(int64_t nm, const float* X, int64_t n, const float* params, float* out) {
    work_t wk;
    if (!work_init(&wk)) { work_free(&wk); return 1; }
    int64_t rows[V];
    for (int64_t mi = 0; mi < nm; mi++) {
        const float* p = params + mi * (int64_t)NP;
        for (int64_t s = 0; s < n; s += V) {
            int c = (int)(n - s < V ? n - s : V);
            for (int l = 0; l < c; l++) rows[l] = s + l;
            gather((float*)wk.A[0], X, rows, c);
            forward(p, wk.A);
            const float* o = (const float*)wk.A[OUTBUF];
            for (int l = 0; l < c; l++)
                for (int j = 0; j < NOUT; j++) out[(mi * n + s + l) * NOUT + j] = o[j * V + l];
        }
    }
    work_free(&wk);
    return 0;
}
"""


def generate_source(plan: Plan) -> str:
    """The C source of the kernel for ``plan`` (exposed for tests and curious readers)."""
    return _CodeGen(plan).source()


# --------------------------------------------------------------------------------------------
# Compilation and loading
# --------------------------------------------------------------------------------------------
_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC",
          "-Wno-unknown-pragmas")
_LOCK = threading.Lock()
_LOADED: dict[str, Any] = {}
_FAILED: dict[str, str] = {}


def find_compiler() -> str | None:
    """The C compiler to use: ``$CC`` if set, else the first of cc, gcc, clang on PATH."""
    env = os.environ.get("CC")
    if env:
        return shutil.which(env.split()[0]) and env.split()[0]
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return name
    return None


def _cache_dir() -> str:
    """Where compiled kernels are kept: machine-local, so -march=native is always right."""
    base = os.environ.get("DVL_JUPYTER_KERNEL_DIR")
    if not base:
        uid = os.getuid() if hasattr(os, "getuid") else "user"
        base = os.path.join(tempfile.gettempdir(), f"dvl_jupyter_kernels_{uid}")
    os.makedirs(base, mode=0o700, exist_ok=True)
    _check_private(base)
    return base


def _check_private(path: str) -> None:
    """Refuse a directory or library another user could have planted or can write.

    Loading a shared library runs its code: a predictable path under /tmp must be ours alone,
    as the cache's pickles must be (see valuation/cache.py).
    """
    st = os.lstat(path)
    uid = os.getuid() if hasattr(os, "getuid") else st.st_uid
    if stat.S_ISLNK(st.st_mode) or st.st_uid != uid or st.st_mode & 0o022:
        raise OSError(
            f"{path} is not private to this user (owner {st.st_uid}, mode "
            f"{stat.S_IMODE(st.st_mode):o}); set DVL_JUPYTER_KERNEL_DIR to a directory of yours"
        )


def _cpu_id() -> str:
    """CPU identity mixed into the cache key: a kernel built for AVX-512 must not be reused on
    a machine without it (the cache directory could be shared)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return hashlib.sha256(line.encode()).hexdigest()[:12]
    except OSError:
        pass
    import platform

    return platform.machine() + platform.processor()


def _compile(source: str) -> Any:
    """Compile (once per source and machine) and load the kernel library."""
    cc = find_compiler()
    if cc is None:
        raise OSError("no C compiler found (set $CC or install gcc/clang)")
    key = hashlib.sha256(
        (source + cc + repr(_FLAGS) + _cpu_id() + sys.platform).encode()
    ).hexdigest()[:20]
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        if key in _FAILED:
            raise OSError(_FAILED[key])
        d = _cache_dir()
        so = os.path.join(d, f"fastpath_{key}.so")
        if not os.path.exists(so):
            fd, tmp_c = tempfile.mkstemp(suffix=".c", dir=d)
            with os.fdopen(fd, "w") as f:
                f.write(source)
            tmp_so = tmp_c[:-2] + ".so"
            try:
                proc = subprocess.run([cc, *_FLAGS, "-o", tmp_so, tmp_c, "-lm"],
                                      capture_output=True, text=True, timeout=300)
                if proc.returncode != 0:  # e.g. a compiler without -march=native: portable
                    flags = [f for f in _FLAGS if not f.startswith("-march")]
                    proc = subprocess.run([cc, *flags, "-o", tmp_so, tmp_c, "-lm"],
                                          capture_output=True, text=True, timeout=300)
                if proc.returncode != 0:
                    msg = f"{cc} failed: {proc.stderr.strip()[:300]}"
                    _FAILED[key] = msg
                    raise OSError(msg)
                os.replace(tmp_so, so)  # atomic: concurrent workers may compile the same key
            finally:
                for path in (tmp_c, tmp_so):
                    if os.path.exists(path):
                        os.remove(path)
        _check_private(so)
        lib = ctypes.CDLL(so)
        i64, ptr = ctypes.c_int64, ctypes.c_void_p
        lib.train.argtypes = [i64, ptr, ptr, ptr, ptr, ptr, i64, i64, i64, i64, ptr, ptr, ptr]
        lib.train.restype = ctypes.c_int
        lib.predict.argtypes = [i64, ptr, i64, ptr, ptr]
        lib.predict.restype = ctypes.c_int
        _LOADED[key] = lib
        return lib


def _ptr(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


class Kernel:
    """A compiled kernel for one plan: ``train`` and ``predict`` over many models."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.lib = _compile(generate_source(plan))

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
    ) -> np.ndarray:
        """Train ``len(orders)`` models in place in ``params`` (K x P float32).

        ``orders[k]`` holds the rows of ``x`` model k visits, in order: its subset (same order
        every epoch) or, with ``per_epoch``, ``epochs`` concatenated epoch orders; its
        minibatches are consecutive runs of ``batch_sizes[k]`` rows of that order. Models are
        handed to ``n_threads`` threads one at a time, largest first, so the threads finish
        together. Returns the per-epoch training loss (K x epochs).
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

        def one(i: int) -> int:
            n = np.array([n_sub[i]], dtype=np.int64)
            return self.lib.train(
                1, _ptr(xs), _ptr(ys), _ptr(ords[i]), _ptr(zero), _ptr(n), epochs,
                int(batch_sizes[i]),
                int(drop_last), int(per_epoch), ctypes.c_void_p(base + i * row_bytes),
                _ptr(hy), _ptr(losses[i]),
            )

        order_idx = sorted(range(k), key=lambda i: -int(n_sub[i]))
        if n_threads <= 1 or k <= 1:
            codes = [one(i) for i in order_idx]
        else:
            with ThreadPoolExecutor(max_workers=min(n_threads, k)) as pool:
                codes = list(pool.map(one, order_idx))
        if any(codes):
            raise MemoryError("the fast-path kernel could not allocate its work buffers")
        return losses

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
    weights, random inputs) to float32 tolerance. It guards against a trace that reads the
    module differently from how it runs. Results are cached per module structure and shape.
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
    """Compare the kernel's forward pass with the module's on a few random inputs."""
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
    return None
