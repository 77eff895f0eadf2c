"""The fast path on a CUDA device: the same models as one-by-one skorch fits on that device.

These tests run only where ``torch.cuda.is_available()``; on this project's 2-core CPU
machines they are skipped, and the skip reason says so in pytest's summary. They are the
check issue #6 asks for ("the same code runs on a CUDA device when the net's device is
one"): the vmap trainer, fed by the TMC driver, with the net's ``device="cuda"``.

TF32 is switched off: with it, cuDNN convolutions and matmuls round inputs to 10 bits of
mantissa and neither side would match float32 arithmetic. The tolerance is looser than on
the CPU (cuDNN picks its own convolution algorithms for the grouped convolutions that vmap
produces, so sums run in another order), and each comparison also checks that another seed
gives clearly different parameters, so it can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device (none on this machine)")

skorch = pytest.importorskip("skorch")
from skorch import NeuralNetClassifier  # noqa: E402

from dvl_jupyter.models import SimpleCNN  # noqa: E402
from dvl_jupyter.valuation import fastpath  # noqa: E402

from .test_fastpath import max_diff, skorch_fit  # noqa: E402

ATOL, RTOL = 1e-4, 1e-3


@pytest.fixture(autouse=True)
def no_tf32():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def cuda_net(**kw):
    params = dict(criterion=nn.CrossEntropyLoss, lr=0.01, max_epochs=3, batch_size=16,
                  train_split=None, optimizer=torch.optim.Adam, verbose=False, device="cuda")
    params.update(kw)
    return NeuralNetClassifier(SimpleCNN, **params)


CONFIGS = {
    "adam": {},
    "adamw": dict(optimizer=torch.optim.AdamW, optimizer__weight_decay=0.05),
    "sgd-momentum": dict(optimizer=torch.optim.SGD, lr=0.1, optimizer__momentum=0.9),
    "shuffle": dict(iterator_train__shuffle=True),
}


def test_cuda_net_takes_the_vmap_backend_and_says_why(digits):
    x, y, _, _ = digits
    net = cuda_net()
    assert fastpath.unsupported_reason(net, x[:4], y[:4]) is None
    trainer, why = fastpath.trainer_for(net, x)
    assert trainer == "vmap" and "cuda" in why


@pytest.mark.parametrize("config", list(CONFIGS))
def test_fit_many_on_cuda_equals_skorch_fits_on_cuda(digits, config):
    x, y, _, _ = digits
    net = cuda_net(**CONFIGS[config])
    rng = np.random.default_rng(0)
    subsets = [rng.permutation(len(x))[:k] for k in (1, 16, 37, 70)]
    seeds = [11, 12, 13, 14]
    result = fastpath.train_models(net, x, y, subsets, seeds)
    assert result.trainer == "vmap" and result.flat.device.type == "cuda"
    for state, subset, seed in zip(result.states(), subsets, seeds, strict=True):
        ref = skorch_fit(net, x, y, subset, seed).module_.state_dict()
        for key in ref:
            assert state[key].device.type == "cuda"
            torch.testing.assert_close(state[key], ref[key], atol=ATOL, rtol=RTOL)
    other = skorch_fit(net, x, y, subsets[-1], 999).module_.state_dict()
    assert max_diff(result.states()[-1], other) > 1e-3


def test_scores_on_cuda_match_one_by_one(digits):
    from dvl_jupyter.valuation import SkorchSupervisedScorer

    x, y, x_test, y_test = digits
    net = cuda_net(max_epochs=4)
    scorer = SkorchSupervisedScorer(net, test_data=(x_test, y_test))
    rng = np.random.default_rng(1)
    subsets = [np.sort(rng.permutation(len(x))[:k]) for k in (5, 40, 120)]
    fast = fastpath.fit_score_many(net, x, y, subsets, [1, 2, 3], scorer)
    slow = [scorer(skorch_fit(net, x, y, s, seed)) for s, seed in zip(subsets, [1, 2, 3],
                                                                      strict=True)]
    np.testing.assert_allclose(fast, slow, atol=1.5 / len(y_test))


def test_tmc_valuation_with_a_cuda_net(digits):
    """The whole engine, fed a CUDA net: the fast path is chosen and every value is finite."""
    from dvl_jupyter.valuation import (
        Dataset,
        MaxUpdates,
        ModelUtility,
        RelativeTruncation,
        SkorchSupervisedScorer,
        TMCShapleyValuation,
    )

    x, y, x_test, y_test = digits
    train = Dataset(x[:40], y[:40])
    net = cuda_net(max_epochs=2)
    utility = ModelUtility(net, SkorchSupervisedScorer(net, test_data=(x_test, y_test)))
    valuation = TMCShapleyValuation(utility, truncation=RelativeTruncation(rtol=0.05),
                                    is_done=MaxUpdates(3), seed=0, batched=True)
    valuation.fit(train)
    result = valuation.result
    assert result.meta["path"].startswith("fast path")
    assert np.isfinite(result.values).all() and (result.counts > 0).all()
