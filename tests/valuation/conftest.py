"""Fixtures shared by the fast-path tests (CPU and CUDA)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """400 digits as (N, 1, 8, 8) float32 in [0, 1]: 300 to train on, 100 to test on."""
    from sklearn.datasets import load_digits

    b = load_digits()
    x = (b.data[:400] / 16).astype(np.float32).reshape(-1, 1, 8, 8)
    y = b.target[:400].astype(np.int64)
    return x[:300], y[:300], x[300:], y[300:]


#: Epochs of :func:`shuffling_cnn`'s net.
SHUFFLING_EPOCHS = 3


@pytest.fixture(scope="session")
def shuffling_cnn():
    """A skorch SimpleCNN that reshuffles every epoch (the case coupled training orders),
    batch 16 so that the subsets of the tests take several minibatches per epoch."""
    import torch
    from skorch import NeuralNetClassifier

    from dvl_jupyter.models import SimpleCNN

    return NeuralNetClassifier(SimpleCNN, criterion=torch.nn.CrossEntropyLoss, lr=0.01,
                               max_epochs=SHUFFLING_EPOCHS, batch_size=16, train_split=None,
                               optimizer=torch.optim.Adam, iterator_train__shuffle=True,
                               verbose=False)
