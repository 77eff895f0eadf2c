"""A whole reference-shaped TMC run on the fast path against one-by-one skorch fits of the same
subsets, in one script: the ratio issue 16 targets (>= 55x in fp32).

The reference configuration (``reference.py``: SimpleCNN in skorch, 24 epochs, the 1,257
digits, accuracy on the 540 test images), TMC-Shapley with ``RelativeTruncation(0.05, 0.3)``
and the engine's defaults (coupled training), from a cold cache, 2 jobs:

- **fast path**: ``--permutations`` permutations (default 16), the whole run timed (start-up,
  the training-noise probe, the tail of the last rounds and all);
- **one by one**: the same seed, ``batched=False``, stopped after its first permutation(s)
  (``--one-by-one-permutations``, default 1): the same walks, so the same subset sizes, fitted
  by skorch one model at a time in 2 processes.

Both rates are fits per second of wall time; the ratio is the result (the machine is shared:
absolute rates drift, the two runs follow each other within minutes). Peak RSS of the driver
and the workers is printed for each.

    .venv/bin/python benchmarks/bench_whole_run.py          # ~5 minutes
    .venv/bin/python benchmarks/bench_whole_run.py --permutations 4 --epochs 4   # a smoke test
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def timed_run(permutations: int, batched: bool, epochs: int, seed: int) -> dict[str, float]:
    from bench_scaling import PeakRSS, Rates
    from joblib import parallel_config
    from reference import reference_setup

    from dvl_jupyter.valuation import (
        MinUpdates,
        ModelUtility,
        RelativeTruncation,
        TMCShapleyValuation,
    )

    net, scorer, train, _ = reference_setup(epochs)
    rates = Rates()
    method = TMCShapleyValuation(
        ModelUtility(net, scorer), truncation=RelativeTruncation(0.05, 0.3),
        is_done=MinUpdates(permutations), seed=seed, batched=batched,
        callbacks=[rates.callback])
    with PeakRSS() as rss, parallel_config(n_jobs=2):
        start = time.perf_counter()
        result = method.fit(train).result
        seconds = time.perf_counter() - start
    fits = int(result.meta["fits"])
    return {"seconds": seconds, "fits": fits, "rate": fits / seconds,
            "permutations": int(result.meta["permutations"]), "path": result.meta.get("path"),
            "driver_rss_mib": rss.driver, "worker_rss_mib": rss.worker, **rates.summary()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--permutations", type=int, default=16)
    parser.add_argument("--one-by-one-permutations", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"# bench_whole_run: reference CNN, {args.epochs} epochs, 1,257 points, "
          f"RelativeTruncation(0.05, 0.3), seed {args.seed}, 2 jobs, cold cache; load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    fast = timed_run(args.permutations, True, args.epochs, args.seed)
    print(f"fast path:  {fast['permutations']} permutations, {fast['fits']:,} fits in "
          f"{fast['seconds']:.1f} s = {fast['rate']:.1f} fits/s (full blocks "
          f"{fast.get('block_rate', float('nan')):.1f}, whole run "
          f"{fast.get('run_rate', float('nan')):.1f} fits/s once started); peak RSS driver "
          f"{fast['driver_rss_mib']:.0f} MiB, worker {fast['worker_rss_mib']:.0f} MiB",
          flush=True)
    slow = timed_run(args.one_by_one_permutations, False, args.epochs, args.seed)
    print(f"one by one: {slow['permutations']} permutation(s), {slow['fits']:,} fits in "
          f"{slow['seconds']:.1f} s = {slow['rate']:.2f} fits/s; peak RSS driver "
          f"{slow['driver_rss_mib']:.0f} MiB, worker {slow['worker_rss_mib']:.0f} MiB")
    print(f"whole run, fast path / one by one: {fast['rate'] / slow['rate']:.1f}x "
          f"(target >= 55x in fp32); the tail: whole-run rate / full-block rate = "
          f"{fast.get('run_rate', 0) / max(fast.get('block_rate', 1e-9), 1e-9):.2f} "
          f"(target >= 0.9)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
