"""SimpleCNN: the reference network's shape, outputs and skorch compatibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dvl_jupyter.models import SimpleCNN

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_output_is_a_probability_per_class():
    torch.manual_seed(0)
    out = SimpleCNN()(torch.rand(5, 1, 8, 8))
    assert out.shape == (5, 10)
    assert out.dtype == torch.float32
    assert torch.all(out >= 0)
    torch.testing.assert_close(out.sum(dim=1), torch.ones(5))


def test_layers_match_the_reference_network():
    layers = [m for m in SimpleCNN().modules() if not isinstance(m, SimpleCNN)]
    assert [type(m) for m in layers] == [
        nn.Conv2d,
        nn.ReLU,
        nn.Conv2d,
        nn.ReLU,
        nn.MaxPool2d,
        nn.Flatten,
        nn.Linear,
        nn.Softmax,
    ]
    conv1, conv2, fc = layers[0], layers[2], layers[6]
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size) == (1, 8, (5, 5))
    assert (conv2.in_channels, conv2.out_channels, conv2.kernel_size) == (8, 4, (3, 3))
    assert conv1.padding == conv2.padding == "same"
    assert (fc.in_features, fc.out_features) == (64, 10)
    assert layers[7].dim == 1


def test_macs_per_sample_are_as_documented():
    """31,872 multiply-accumulates per 8x8 sample, counted from the actual layer outputs."""
    macs = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs += output[0].numel() * module.in_channels * kh * kw
        elif isinstance(module, nn.Linear):
            macs += output[0].numel() * module.in_features

    net = SimpleCNN()
    hooks = [m.register_forward_hook(count) for m in net.modules()]
    net(torch.zeros(1, 1, 8, 8))
    for h in hooks:
        h.remove()
    assert macs == 31_872
    assert "31,872" in (SimpleCNN.__doc__ or "")


def test_trains_under_skorch_for_one_epoch():
    from skorch import NeuralNetClassifier

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 8, 8), dtype=np.float32)
    y = np.arange(40, dtype=np.int64) % 10
    net = NeuralNetClassifier(
        SimpleCNN,
        criterion=nn.CrossEntropyLoss,
        lr=0.01,
        max_epochs=1,
        batch_size=16,
        train_split=None,
        optimizer=torch.optim.Adam,
        verbose=False,
    )
    net.initialize()
    before = [p.detach().clone() for p in net.module_.parameters()]
    net.fit(x, y)
    after = list(net.module_.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert len(net.history) == 1
    proba = net.predict_proba(x)
    assert proba.shape == (40, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert set(np.unique(net.predict(x))) <= set(range(10))
