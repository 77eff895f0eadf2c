"""A finished valuation, run again: how much faster is the second run (all cache hits)?

Reference configuration at small N: SimpleCNN in skorch, 24 epochs, batch 128, Adam, lr 0.01,
RelativeTruncation(0.05, 0.3), on the first ``--n-train`` points of the digits training split,
scored on the 540 test images; one-by-one fits with ``--jobs`` workers. Both runs happen in this
one process with the same seed and a fresh cache directory.

    .venv/bin/python benchmarks/bench_cache.py            # ~1 minute
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=30)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    from joblib import parallel_config
    from reference import reference_setup

    from dvl_jupyter.valuation import (
        MinUpdates,
        ModelUtility,
        RelativeTruncation,
        TMCShapleyValuation,
    )

    net, scorer, train, _ = reference_setup()
    train = train[: args.n_train]
    with tempfile.TemporaryDirectory() as cache:
        times, runs = [], []
        for _ in range(2):
            v = TMCShapleyValuation(ModelUtility(net, scorer, cache=cache),
                                    truncation=RelativeTruncation(0.05, 0.3),
                                    is_done=MinUpdates(args.updates), seed=36, batched=False)
            start = time.perf_counter()
            with parallel_config(n_jobs=args.jobs):
                v.fit(train)
            times.append(time.perf_counter() - start)
            runs.append(v)
    first, second = runs
    assert np.array_equal(first.result.values, second.result.values)
    print(f"config: n_train={args.n_train}, MinUpdates({args.updates}), n_jobs={args.jobs}, "
          f"one-by-one fits")
    print(f"first run:  {times[0]:8.2f} s, {first.stats.evaluations} fits")
    print(f"second run: {times[1]:8.4f} s, {second.stats.evaluations} fits, "
          f"{second.stats.cache_hits} cache hits, identical values")
    print(f"speed-up: {times[0] / times[1]:.0f}x")


if __name__ == "__main__":
    main()
