"""Utility evaluations per second on the reference configuration, one-by-one fits.

Reference configuration: SimpleCNN in skorch, max_epochs 24, batch_size 128, Adam, lr 0.01,
the 1,257-image digits training split, scored on the 540 test images. Subsets are drawn as TMC
draws them: prefixes of random permutations, truncated near the 30% burn-in (sizes 1..378).
Each configuration is measured in this one process, side by side, through the engine's own
``SubsetEvaluator`` (the code path a TMC run takes), with the cache off.

    .venv/bin/python benchmarks/bench_utility.py            # ~1-2 minutes
    .venv/bin/python benchmarks/bench_utility.py --n-subsets 60
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def build(epochs: int):
    from reference import reference_setup

    from dvl_jupyter.valuation import ModelUtility

    net, scorer, train, test = reference_setup(epochs)
    utility = ModelUtility(net, scorer).with_dataset(train)
    return utility, train, test


def tmc_like_subsets(n: int, count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    limit = int(0.3 * n)
    return [rng.permutation(n)[: rng.integers(1, limit + 1)] for _ in range(count)]


def measure(utility, subsets, n_jobs: int) -> float:
    from joblib import parallel_config

    from dvl_jupyter.valuation.callbacks import RunStats
    from dvl_jupyter.valuation.evaluators import OneByOneEvaluator
    from dvl_jupyter.valuation.parallel import SubsetEvaluator

    with parallel_config(backend="loky", n_jobs=n_jobs):
        with SubsetEvaluator(OneByOneEvaluator(utility), RunStats()) as evaluate:
            evaluate(subsets[: 2 * n_jobs])  # start the workers outside the timing
            start = time.perf_counter()
            evaluate(subsets)
            rate = len(subsets) / (time.perf_counter() - start)
            WORKER_RSS.append(_largest_child_rss())
            return rate


WORKER_RSS: list[float] = []


def _largest_child_rss() -> float:
    """MiB of the largest live worker process (loky keeps them alive, so rusage misses them)."""
    import psutil

    children = psutil.Process().children(recursive=True)
    return max((c.memory_info().rss for c in children), default=0) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subsets", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=24)
    args = parser.parse_args()

    utility, train, _ = build(args.epochs)
    subsets = tmc_like_subsets(len(train), args.n_subsets)
    sizes = np.array([len(s) for s in subsets])
    print(f"reference config: SimpleCNN, {args.epochs} epochs, batch 128, Adam lr 0.01, "
          f"n_train={len(train)}, {len(subsets)} subsets of mean size {sizes.mean():.0f}")
    rates = {}
    for n_jobs in (1, 2):
        rates[n_jobs] = measure(utility, subsets, n_jobs)
        print(f"one-by-one fits, n_jobs={n_jobs} (1 torch thread per process): "
              f"{rates[n_jobs]:.2f} evaluations/s")
    print(f"n_jobs=2 / n_jobs=1: {rates[2] / rates[1]:.2f}x")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: driver {own:.0f} MiB, largest worker {max(WORKER_RSS):.0f} MiB")
    full_run = 40_000
    print(f"projected full reference run (~{full_run} fits) at n_jobs=2: "
          f"{full_run / rates[2] / 3600:.1f} h")


if __name__ == "__main__":
    main()
