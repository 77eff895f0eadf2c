"""Reference models, so that a notebook can value data without defining a network first."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SimpleCNN"]


class SimpleCNN(nn.Module):
    """The small CNN of the reference notebook "Computing Shapley values for a torch model".

    That notebook (``shapley_skorch_notebook``) wraps this network, imported there from pyDVL's
    notebook support code (``support.banzhaf.SimpleCNN``), in a skorch ``NeuralNetClassifier``
    and values the sklearn digits with TMC-Shapley. We reproduce the same shape, written
    independently, so results are comparable with that notebook:

    ``Conv2d(1, 8, 5, padding="same") -> ReLU -> Conv2d(8, 4, 3, padding="same") -> ReLU
    -> MaxPool2d(2) -> Flatten -> Linear(64, 10) -> Softmax(dim=1)``

    Input is ``(N, 1, 8, 8)`` float32; output is ``(N, 10)`` class probabilities. The network is
    deliberately tiny (31,872 multiply-accumulates per sample: 12,800 + 18,432 + 640) because
    TMC-Shapley trains it thousands of times on subsets.

    Why a softmax at the end: skorch's ``NeuralNetClassifier`` expects the module to return
    probabilities (``predict_proba`` returns the module's output as is). The reference notebook
    pairs it with ``CrossEntropyLoss`` anyway, which then applies a second (log-)softmax; we keep
    that pairing for fidelity with the reference rather than "fixing" it.

    Only layers that work under ``torch.func`` are used, so the batched fast path can stack
    many copies of it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=5, padding="same")
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 4, kernel_size=3, padding="same")
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, 10)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch of ``(N, 1, 8, 8)`` images to ``(N, 10)`` class probabilities."""
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = self.flatten(self.pool(x))
        return self.softmax(self.fc(x))
