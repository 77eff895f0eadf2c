"""The reference configuration every benchmark measures, built in one place.

SimpleCNN in skorch (CrossEntropyLoss, Adam, lr 0.01, batch 128, 24 epochs by default), the
digits split of the reference notebook (train_size 0.7, random_state 36: 1,257 training and
540 test images), accuracy on the test images. Benchmarks run as scripts, so they import this
module by its bare name.
"""

from __future__ import annotations

from typing import Any


def reference_setup(epochs: int = 24) -> tuple[Any, Any, Any, Any]:
    """``(net, scorer, train, test)`` of the reference configuration."""
    import torch
    from skorch import NeuralNetClassifier

    from dvl_jupyter.datasets import load_digits
    from dvl_jupyter.models import SimpleCNN
    from dvl_jupyter.valuation import SkorchSupervisedScorer

    train, test = load_digits(train_size=0.7, random_state=36)
    net = NeuralNetClassifier(SimpleCNN, criterion=torch.nn.CrossEntropyLoss, lr=0.01,
                              max_epochs=epochs, batch_size=128, train_split=None,
                              optimizer=torch.optim.Adam, verbose=False)
    scorer = SkorchSupervisedScorer(net, test_data=test, default=0.0, range=(0, 1))
    return net, scorer, train, test
