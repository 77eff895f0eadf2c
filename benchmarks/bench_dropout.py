"""Fits per second for a CNN with dropout: the C kernel vs the torch.func trainer vs one by one.

The reference configuration (24 epochs, batch 128, Adam lr 0.01, digits, subsets as TMC draws
them, sizes uniform in 1..378), with SimpleCNN's module plus ``nn.Dropout(0.25)`` before its
linear layer. All in one process with one torch thread, side by side, so the ratios are the
result:

    .venv/bin/python benchmarks/bench_dropout.py
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dvl_jupyter.models import SimpleCNN  # noqa: E402


class DropoutCNN(SimpleCNN):
    """SimpleCNN with dropout on the flattened features (before the linear layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        return self.softmax(self.fc(self.drop(self.flatten(x))))


def main() -> None:
    from bench_fastpath import BURN_IN, prefixes, tmc_sizes
    from reference import reference_setup
    from sklearn.base import clone

    from dvl_jupyter.valuation import ModelUtility, fastpath
    from dvl_jupyter.valuation.utility import subset_seed

    torch.set_num_threads(1)
    base, scorer, train, _ = reference_setup(24)
    net = clone(base).set_params(module=DropoutCNN)
    scorer = type(scorer)(net, test_data=scorer.test_data, default=0.0, range=(0, 1))
    x, y = train.data()
    n = len(y)
    print(f"# bench_dropout: torch {torch.__version__}, 1 thread, DropoutCNN (p=0.25), "
          f"24 epochs, batch 128, subset sizes 1..{BURN_IN}")
    print("backends:", fastpath.trainer_for(net, x))

    utility = ModelUtility(net, scorer).with_dataset(train)
    block = prefixes(n, tmc_sizes(32, seed=3), seed=4)
    seeds = [subset_seed(s, utility.random_state) for s in block]
    few = 12  # one-by-one and vmap fits are slow: they get the first 12 subsets
    start = time.perf_counter()
    acc_one = np.array([utility(s) for s in block[:few]])
    rate_one = few / (time.perf_counter() - start)
    print(f"  one-by-one skorch   {rate_one:7.2f} fits/s  mean acc of the first {few} "
          f"{acc_one.mean():.3f}")

    fastpath.fit_score_many(net, x, y, block[:2], seeds[:2], scorer)  # build/load the kernel
    for trainer in ("kernel", "vmap"):
        sub = block if trainer == "kernel" else block[:few]
        start = time.perf_counter()
        acc = fastpath.fit_score_many(net, x, y, sub, seeds[:len(sub)], scorer, trainer=trainer)
        rate = len(sub) / (time.perf_counter() - start)
        # dropout masks differ from skorch's, so accuracies agree in distribution only
        print(f"  fast path, {trainer:6s}  {rate:7.2f} fits/s  mean acc of the first {few} "
              f"{acc[:few].mean():.3f} = {rate / rate_one:5.1f}x one-by-one "
              f"({len(sub)} fits)")


if __name__ == "__main__":
    main()
