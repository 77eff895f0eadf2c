"""CPU backend of the fast path: the whole training loop of many small nets in generated C.

Why C: the reference network (``SimpleCNN``) has 8 and 4 convolution channels. Every
formulation in torch turns its layers into matrix products with one dimension of 4-8, which
MKL/oneDNN run at 4-15 GFLOP/s here, and each training step is ~40 operator calls whose
dispatch and memory traffic cost more than the arithmetic. Measured on this machine, the best
torch formulation (grouped convolutions over K stacked models, channels-last) needed ~19 us per
sample and step on one core; this kernel needs ~2.5-6 us.

How: a net is a chain of layers (conv, linear, pooling, element-wise activations, dropout,
flatten, softmax) whose shapes are known once the input shape is. Dropout draws its masks in
training from each model's own RNG stream (``train_seeded`` takes a seed per model) and is
the identity in ``predict``, as in eval mode. We generate C for that chain with
every size a compile-time constant and put 16 *samples* of one model side by side in the 16
lanes of a SIMD vector (GCC vector extensions, so the same source compiles for AVX-512, AVX2
or NEON). Each layer is then plain scalar-looking code over vectors: a convolution is
``acc[o] += w[o,c,ky,kx] * x[c,y+ky,x+kx]`` with the weight broadcast and the 16 samples in
the lanes, with no im2col, no padding copies and no shuffles, and every activation of a
16-sample group stays in L1/L2. The kernel runs the whole fit of one model (every epoch,
minibatch, backward pass and optimizer step) in one call, so a model takes exactly its own
steps; models are independent and are spread over threads by Python (ctypes releases the GIL).

The backend is used only when all of this holds (otherwise :func:`get_kernel` returns why and the
caller uses the torch.func backend): CPU float32, a module that ``torch.fx`` traces to a chain
of the supported layers, a C compiler (``cc``/``gcc``/``clang``), and a self-check of the
generated forward pass against the module itself.

The package, one job per module:

* ``plan``: trace an ``nn.Module`` into a :class:`Plan` (the layer chain and the flat
  parameter layout), or raise the reason it cannot be traced.
* ``codegen``: write the C source for a plan (:func:`generate_source`).
* ``templates``: the fixed C text around the generated layers (SIMD prelude, loss, optimizer,
  training and prediction driver) and the constants Python shares with it (``LANES``,
  ``OPT_*``, ``LOSS_*``, ``HYPER_FIELDS``).
* ``build``: find a C compiler, compile into a private per-user cache directory, load.
* ``runtime``: the ctypes wrapper (:class:`Kernel`), :func:`get_kernel` and its self-check.
"""

from __future__ import annotations

from .build import find_compiler
from .codegen import generate_source
from .plan import Layer, Plan, plan_module
from .plan import _Unsupported as _Unsupported  # what plan_module raises
from .runtime import Kernel, get_kernel
from .templates import HYPER_FIELDS, LANES, LOSS_CE, LOSS_NLL, LOSS_NLL_LOG, OPT_ADAM, OPT_SGD

__all__ = [
    "Layer",
    "Plan",
    "plan_module",
    "Kernel",
    "get_kernel",
    "generate_source",
    "find_compiler",
    "LANES",
    "OPT_ADAM",
    "OPT_SGD",
    "LOSS_CE",
    "LOSS_NLL_LOG",
    "LOSS_NLL",
    "HYPER_FIELDS",
]
