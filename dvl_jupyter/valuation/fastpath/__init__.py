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

Two trainers do the training (``trainer_for`` says which one a net gets, and why):

* ``"kernel"`` (:mod:`.kernel`): generated C with 16 samples in the SIMD lanes, the whole fit
  of a model in one call, models spread over threads. CPU, float32, nets made of Conv2d /
  Linear / ReLU / LeakyReLU / Tanh / Sigmoid / MaxPool2d / AvgPool2d / Dropout / Flatten /
  Softmax / LogSoftmax, and a C compiler (each model draws its dropout masks from its own RNG
  stream, seeded by its seed).
* ``"vmap"`` (:mod:`.vmap`): ``torch.func.functional_call`` + ``vmap`` over K stacked models
  in lockstep, for any module that works under torch.func (dropout included, with independent
  masks per model) and any device, CUDA included.

Nets neither can train get a reason from :func:`unsupported_reason` (BatchNorm, unknown
optimizers, callbacks that change training such as LRScheduler, a validation split...); the
caller then fits them one by one. The README has the measured speed-ups.

The package, one job per module:

* ``spec``: read a skorch net into a :class:`~.spec.NetSpec`, or say why it cannot be read;
* ``replay``: the initial weights and minibatch orders skorch's own fit would draw;
* ``train``: choose the trainer and train K models (:func:`fit_many`);
* ``kernel``: the C kernel (plan, generate, compile, check, run);
* ``vmap``: the torch.func trainer;
* ``scoring``: batched predictions behind any scorer (:func:`fit_score_many`);
* ``evaluator``: :class:`FastPathEvaluator`, what a valuation run dispatches to its workers
  (and :class:`FastPathPredictionEvaluator`, the same for Data-OOB's bags: predictions).

Public API::

    reason = unsupported_reason(net, x, y)      # None, or a short reason naming the culprit
    states = fit_many(net, x, y, subsets, seeds)  # one module state_dict per subset
    probs = predict_proba_many(net, states, x_test)        # (K, N, C), skorch's predict_proba
    scores = fit_score_many(net, x, y, subsets, seeds, scorer)  # fit + score, fastest route
    probs = fit_predict_many(net, x, y, bags, seeds, [x_train, x_test])  # [(K, N, C), ...]
"""

from __future__ import annotations

from .evaluator import DEFAULT_BLOCK, FastPathEvaluator, FastPathPredictionEvaluator
from .scoring import fit_predict_many, fit_score_many, predict_proba_many
from .train import FitResult, fit_many, train_models, trainer_for, unsupported_reason

__all__ = [
    "DEFAULT_BLOCK",
    "FastPathEvaluator",
    "FastPathPredictionEvaluator",
    "FitResult",
    "fit_many",
    "fit_predict_many",
    "fit_score_many",
    "predict_proba_many",
    "train_models",
    "trainer_for",
    "unsupported_reason",
]
