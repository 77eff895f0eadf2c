"""What coupled training costs per fit on the fast path: coupled against independent fits of the
same subsets, interleaved in one run.

Issue 12's target: the cost per fit of coupled training on the fast path within 5% of
independent fits. Coupling changes what each model starts from (one initial-weight seed per
utility) and the rows it visits (its subset in the restriction of one order per epoch, computed
in Python per subset); the kernel's arithmetic is the same. The reference configuration (see
``reference.py``), blocks of 32 prefixes as TMC draws them (sizes uniform in 1..378), each
block evaluated by ``FastPathEvaluator`` once coupled and once independent, alternating which
goes first, so drift of the shared machine falls on both alike. One process, 2 kernel threads.

    .venv/bin/python benchmarks/bench_coupling_cost.py            # ~3 minutes
    .venv/bin/python benchmarks/bench_coupling_cost.py --blocks 4 # a smoke test
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

BURN_IN = 378


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from reference import reference_setup

    from dvl_jupyter.valuation import ModelUtility
    from dvl_jupyter.valuation.fastpath import FastPathEvaluator

    torch.set_num_threads(2)
    net, scorer, train, _ = reference_setup(args.epochs)
    evaluators = {
        coupled: FastPathEvaluator(
            ModelUtility(net, scorer, coupled_training=coupled).with_dataset(train),
            required=True, block=args.block)
        for coupled in (True, False)
    }
    rng = np.random.default_rng(args.seed)
    n = len(train)
    for ev in evaluators.values():  # compile the kernel and warm up, untimed
        ev.evaluate_many([rng.permutation(n)[:50] for _ in range(2)])
    seconds = {True: 0.0, False: 0.0}
    scores: dict[bool, list[float]] = {True: [], False: []}
    fits = 0
    for b in range(args.blocks):
        subsets = [rng.permutation(n)[:k]
                   for k in rng.integers(1, BURN_IN + 1, size=args.block)]
        order = (True, False) if b % 2 == 0 else (False, True)
        for coupled in order:
            start = time.perf_counter()
            batch = evaluators[coupled].evaluate_many(subsets)
            seconds[coupled] += time.perf_counter() - start
            scores[coupled].extend(batch.values.tolist())
        fits += len(subsets)
    rate = {c: fits / s for c, s in seconds.items()}
    print(f"# bench_coupling_cost: reference CNN, {args.epochs} epochs, {args.blocks} blocks "
          f"of {args.block} prefixes (sizes 1..{BURN_IN}), fast path, 2 threads, interleaved")
    print(f"independent: {rate[False]:.1f} fits/s (mean accuracy "
          f"{np.mean(scores[False]):.3f})")
    print(f"coupled:     {rate[True]:.1f} fits/s (mean accuracy {np.mean(scores[True]):.3f})")
    print(f"cost per fit, coupled / independent: {seconds[True] / seconds[False]:.3f} "
          f"(target <= 1.05)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
