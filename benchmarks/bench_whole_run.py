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

What the driver loses between rounds and at the tail of a run is measured against a
**replay**: every subset the fast-path run evaluated once it was running (in its order, the
prefixes computed past a truncation included) is evaluated again, from a cold cache, in one
call, so the workers get nothing but full blocks of the same subsets. The ratio replay time /
run time is what the round-by-round schedule costs (target >= 0.9). Comparing the first half
of a run's fits with the whole run instead would mostly measure that TMC's later prefixes are
larger, so slower to fit.

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


class Recorder:
    """Records the subsets a run evaluates once it is running, and when that stage began."""

    def __init__(self) -> None:
        from dvl_jupyter.valuation import ValuationCallback

        recorder = self
        self.subsets: list = []
        self.running_since: float | None = None

        class Watch(ValuationCallback):
            def on_stage(self, stats) -> None:
                if stats.stage == "running" and recorder.running_since is None:
                    recorder.running_since = time.perf_counter()

        self.callback = Watch()

    def __enter__(self) -> Recorder:
        from dvl_jupyter.valuation.driver import Run

        self._evaluate = evaluate = Run.evaluate
        recorder = self

        def recording(run, subsets, evaluator=None):
            if recorder.running_since is not None and evaluator is None:
                recorder.subsets += [s.copy() for s in subsets]
            return evaluate(run, subsets, evaluator)

        Run.evaluate = recording
        return self

    def __exit__(self, *exc) -> None:
        from dvl_jupyter.valuation.driver import Run

        Run.evaluate = self._evaluate


def timed_run(permutations: int, batched: bool, epochs: int, seed: int) -> dict:
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
    rates, recorder = Rates(), Recorder()
    method = TMCShapleyValuation(
        ModelUtility(net, scorer), truncation=RelativeTruncation(0.05, 0.3),
        is_done=MinUpdates(permutations), seed=seed, batched=batched,
        callbacks=[rates.callback, recorder.callback])
    with PeakRSS() as rss, parallel_config(n_jobs=2), recorder:
        start = time.perf_counter()
        result = method.fit(train).result
        ended = time.perf_counter()
    seconds = ended - start
    fits = int(result.meta["fits"])
    return {"seconds": seconds, "fits": fits, "rate": fits / seconds,
            "permutations": int(result.meta["permutations"]), "path": result.meta.get("path"),
            "running_seconds": ended - recorder.running_since,
            "subsets": recorder.subsets,
            "driver_rss_mib": rss.driver, "worker_rss_mib": rss.worker, **rates.summary()}


def replay(subsets: list, epochs: int) -> float:
    """Seconds to evaluate ``subsets`` from a cold cache in one call: full blocks only."""
    from joblib import parallel_config
    from reference import reference_setup

    from dvl_jupyter.valuation import ModelUtility
    from dvl_jupyter.valuation.ending import RunEnd
    from dvl_jupyter.valuation.methods.base import UtilityValuation

    class Replay(UtilityValuation):
        algorithm = "replay"

        def _fit(self, run) -> None:
            self._bind(run)
            started = time.perf_counter()
            run.evaluate(subsets)
            self.seconds = time.perf_counter() - started
            run.finish(RunEnd.DONE)

    net, scorer, train, _ = reference_setup(epochs)
    method = Replay(ModelUtility(net, scorer), batched=True)
    with parallel_config(n_jobs=2):
        method.fit(train)
    return method.seconds


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
          f"{fast['seconds']:.1f} s = {fast['rate']:.1f} fits/s ("
          f"{fast['running_seconds']:.1f} s running); peak RSS driver "
          f"{fast['driver_rss_mib']:.0f} MiB, worker {fast['worker_rss_mib']:.0f} MiB",
          flush=True)
    slow = timed_run(args.one_by_one_permutations, False, args.epochs, args.seed)
    print(f"one by one: {slow['permutations']} permutation(s), {slow['fits']:,} fits in "
          f"{slow['seconds']:.1f} s = {slow['rate']:.2f} fits/s; peak RSS driver "
          f"{slow['driver_rss_mib']:.0f} MiB, worker {slow['worker_rss_mib']:.0f} MiB")
    full = replay(fast["subsets"], args.epochs)
    print(f"replay: the {len(fast['subsets']):,} subsets of the fast-path run's running stage "
          f"in one call, full blocks only: {full:.1f} s against the run's "
          f"{fast['running_seconds']:.1f} s")
    print(f"whole run, fast path / one by one: {fast['rate'] / slow['rate']:.1f}x "
          f"(target >= 55x in fp32); rounds and tail: replay time / run time = "
          f"{full / fast['running_seconds']:.2f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
