"""Utility evaluations per second: the fast path vs one-by-one skorch fits, in one run.

Reference configuration: ``SimpleCNN`` in a skorch ``NeuralNetClassifier`` (CrossEntropyLoss,
Adam, lr 0.01, max_epochs 24, batch_size 128, train_split None), the 1,257-image digits
training split (``load_digits(train_size=0.7, random_state=36)``), each model scored on the
540 test images (``SkorchSupervisedScorer``, accuracy). An evaluation = fit + score.

Subsets are drawn as TMC draws them: prefixes of random permutations, truncated at the 30%
burn-in (378 of 1,257), so sizes are uniform in 1..378 (mean ~189). One-by-one fits go
through ``ModelUtility`` (the engine's own code path, one torch thread per fit). The fast
path gets what the lockstep TMC driver gives it: K permutations advanced together, so one
call holds K prefixes of the same length (a second configuration mixes sizes in a call, as
when the driver refills slots). Everything is measured side by side in this one run, because
the machine is shared and absolute rates drift; the ratios are the result. Fits per
CPU-second (CPU time of all threads and worker processes) is printed as well: it does not
depend on how much of the machine other work left to each configuration.

    .venv/bin/python benchmarks/bench_fastpath.py --quick   # ~1-2 minutes
    .venv/bin/python benchmarks/bench_fastpath.py           # ~5 minutes
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import sys
import time
import tracemalloc
from typing import Any

import numpy as np

from dvl_jupyter.models import SimpleCNN

REFERENCE_FITS = 40_000  # fits of the full reference run (MinUpdates(100), 1,257 points)
MACS_PER_SAMPLE = 31_872  # SimpleCNN forward multiply-accumulates per 8x8 image
BURN_IN = 378  # 30% of 1,257: TMC's truncation point in the reference run
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=2)
def setup(epochs: int) -> tuple[Any, Any, Any, Any, Any]:
    """Net, scorer, utility and training arrays of the reference configuration."""
    from reference import reference_setup

    from dvl_jupyter.valuation import ModelUtility

    net, scorer, train, _ = reference_setup(epochs)
    utility = ModelUtility(net, scorer).with_dataset(train)
    x, y = train.data()
    return net, scorer, utility, x, y


def tmc_sizes(count: int, seed: int) -> np.ndarray:
    """Prefix lengths as a truncated TMC permutation visits them: uniform in 1..BURN_IN."""
    return np.random.default_rng(seed).integers(1, BURN_IN + 1, size=count)


def prefixes(n: int, sizes: np.ndarray, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.permutation(n)[:k] for k in sizes]


def lockstep_blocks(n: int, k_models: int, sizes: np.ndarray, seed: int,
                    mixed: bool = False) -> list[list[np.ndarray]]:
    """Calls the lockstep driver makes: K permutations, each call one prefix length
    (``mixed``: every model its own length, as after refills)."""
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(n) for _ in range(k_models)]
    blocks = []
    for size in sizes:
        lens = rng.integers(1, BURN_IN + 1, size=k_models) if mixed else [size] * k_models
        blocks.append([p[:m] for p, m in zip(perms, lens, strict=True)])
    return blocks


def peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# -- workers (also run inside loky processes) ----------------------------------------------------
def run_one_by_one(epochs: int, subsets: list[np.ndarray]) -> tuple[float, float, float, float]:
    """(seconds, mean score, peak RSS MB, CPU seconds) for one-by-one ModelUtility
    evaluations."""
    import torch

    torch.set_num_threads(1)
    _, _, utility, _, _ = setup(epochs)
    start, cpu = time.perf_counter(), time.process_time()
    scores = [utility(s) for s in subsets]
    return (time.perf_counter() - start, float(np.mean(scores)), peak_rss_mb(),
            time.process_time() - cpu)


def run_fast(epochs: int, blocks: list[list[np.ndarray]], threads: int,
             trainer: str = "auto") -> tuple[float, float, float, float]:
    """(seconds, mean score, peak RSS MB, CPU seconds) for fast-path evaluations, one call
    per block."""
    import torch

    from dvl_jupyter.valuation import fastpath
    from dvl_jupyter.valuation.utility import subset_seed

    torch.set_num_threads(threads)
    net, scorer, utility, x, y = setup(epochs)
    seeds = [[subset_seed(s, utility.random_state) for s in b] for b in blocks]
    start, cpu = time.perf_counter(), time.process_time()
    scores = [fastpath.fit_score_many(net, x, y, b, s, scorer, n_threads=threads,
                                      trainer=trainer)
              for b, s in zip(blocks, seeds, strict=True)]
    return (time.perf_counter() - start, float(np.mean(np.concatenate(scores))), peak_rss_mb(),
            time.process_time() - cpu)


def run_pydvl(epochs: int, subsets: list[np.ndarray]) -> tuple[float, float, float, float]:
    """pyDVL 0.10's ModelUtility (fit + score one by one) on the same net, data and subsets.

    pyDVL 0.10's ``Dataset`` takes 2-d arrays only, so it gets the images flattened and the
    net a SimpleCNN whose forward first reshapes them to 1x8x8 (same layers, same
    initialisation; the reshape is a view and costs nothing next to a fit).
    """
    import torch
    from pydvl.valuation.dataset import Dataset as PydvlDataset
    from pydvl.valuation.scorers import SupervisedScorer as PydvlScorer
    from pydvl.valuation.types import Sample
    from pydvl.valuation.utility import ModelUtility as PydvlUtility
    from sklearn.base import clone

    torch.set_num_threads(1)
    net, scorer, _, x, y = setup(epochs)
    x_test, y_test = scorer.test_data.data()

    def flat(a: Any) -> np.ndarray:
        return np.asarray(a).reshape(len(a), -1)

    test = PydvlDataset(flat(x_test), np.asarray(y_test))
    net = clone(net).set_params(module=FlatSimpleCNN)
    utility = PydvlUtility(net, PydvlScorer("accuracy", test, default=0.0, range=(0.0, 1.0)))
    utility = utility.with_dataset(PydvlDataset(flat(x), np.asarray(y)))
    start, cpu = time.perf_counter(), time.process_time()
    scores = []
    for i, s in enumerate(subsets):
        torch.manual_seed(i)
        scores.append(utility(Sample(idx=None, subset=s)))
    return (time.perf_counter() - start, float(np.mean(scores)), peak_rss_mb(),
            time.process_time() - cpu)


class FlatSimpleCNN(SimpleCNN):
    """SimpleCNN on flattened 8x8 images (pyDVL 0.10's Dataset is 2-d only)."""

    def forward(self, x: Any) -> Any:
        return super().forward(x.reshape(-1, 1, 8, 8))


def pydvl_in_other_venv(python: str, epochs: int, subsets: list[np.ndarray]
                        ) -> tuple[str, tuple[float, float, float, float]]:
    """Run :func:`run_pydvl` with another interpreter (pyDVL 0.10 pins numpy 1.x, so it lives
    in its own venv, ``make bench-pydvl-env``) on the same subsets, sequentially in this run."""
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "subsets.npz")
        np.savez(path, *subsets)
        out = subprocess.run(
            [python, os.path.abspath(__file__), "--pydvl-worker", path, "--epochs", str(epochs)],
            capture_output=True, text=True, check=False, timeout=3600,
        )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    reply = json.loads(out.stdout.strip().splitlines()[-1])
    return reply["version"], tuple(reply["result"])


def pydvl_worker(path: str, epochs: int) -> None:
    import json

    import pydvl

    with np.load(path) as f:
        subsets = [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]
    print(json.dumps({"version": pydvl.__version__, "result": run_pydvl(epochs, subsets)}))


def warm(epochs: int) -> float:
    """Build the data, the net and the C kernel in this process; returns seconds taken."""
    from dvl_jupyter.valuation import fastpath

    start = time.perf_counter()
    net, _, _, x, y = setup(epochs)
    fastpath.fit_many(net, x, y, [np.arange(3)], [0])
    return time.perf_counter() - start


def in_processes(n_jobs: int, fn: Any, epochs: int, parts: list[Any], *args: Any
                 ) -> tuple[float, float, float, float]:
    """Run ``fn`` on ``parts`` in ``n_jobs`` loky workers (started and warmed beforehand):
    (wall seconds, mean score, max worker peak RSS MB, CPU seconds of all workers)."""
    from joblib import Parallel, delayed

    with Parallel(n_jobs=n_jobs, backend="loky") as parallel:
        parallel(delayed(warm)(epochs) for _ in range(n_jobs))  # start workers, untimed
        start = time.perf_counter()
        out = parallel(delayed(fn)(epochs, p, *args) for p in parts)
        wall = time.perf_counter() - start
    return (wall, float(np.mean([o[1] for o in out])), max(o[2] for o in out),
            sum(o[3] for o in out))


# -- measurements ----------------------------------------------------------------------------------
def matmul_gflops(threads: int) -> float:
    """FLOP rate of a 2048x2048 float32 matmul with ``threads`` torch threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
        a @ b
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
        return 2 * 2048**3 / best / 1e9
    finally:
        torch.set_num_threads(before)


def tracemalloc_peak_mb(epochs: int, block: list[np.ndarray]) -> float:
    """Peak Python-tracked allocation (numpy arrays, lists) of one fast-path call."""
    from dvl_jupyter.valuation import fastpath

    net, scorer, _, x, y = setup(epochs)
    tracemalloc.start()
    fastpath.fit_score_many(net, x, y, block, list(range(len(block))), scorer, n_threads=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (~1-2 minutes)")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--k", type=int, nargs="+", default=None,
                        help="models per fast-path call (default: 32 64; quick: 32)")
    parser.add_argument("--no-vmap", action="store_true", help="skip the torch.func trainer")
    parser.add_argument("--pydvl-python", default=os.path.join(ROOT, ".venv-pydvl", "bin",
                                                               "python"),
                        help="interpreter with pyDVL 0.10 installed (default: .venv-pydvl)")
    parser.add_argument("--pydvl-worker", metavar="SUBSETS_NPZ", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pydvl_worker:
        pydvl_worker(args.pydvl_worker, args.epochs)
        return
    quick = args.quick
    n_base = 10 if quick else 40  # one-by-one fits per process configuration
    n_calls = 6 if quick else 16  # fast-path calls (prefix lengths) per configuration
    ks = args.k or ([32] if quick else [32, 64])
    epochs = args.epochs

    import torch

    from dvl_jupyter.valuation import fastpath

    torch.set_num_threads(1)
    print(f"# bench_fastpath: {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"epochs {epochs}, batch 128, Adam lr 0.01, {'quick' if quick else 'full'} run, "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine skews rates)")
    t_compile = warm(epochs)
    net, _, _, x, y = setup(epochs)
    trainer, why = fastpath.trainer_for(net, x)
    print(f"fast-path trainer: {trainer}{'' if why is None else f' ({why})'}; setup (imports, "
          f"data, kernel build or load from the disk cache) {t_compile:.1f} s")
    n = len(y)
    rows: list[tuple[str, int, float, float]] = []  # name, fits, seconds, CPU seconds

    def report(name: str, fits: int, seconds: float, score: float, rss: float,
               cpu: float) -> None:
        """One line per configuration. "cores" = CPU seconds / wall seconds: how much of the
        machine the configuration actually got (well below its threads x processes when
        other work competes for the two cores)."""
        rows.append((name, fits, seconds, cpu))
        print(f"  {name:44s} {fits:5d} fits {seconds:7.1f} s {fits / seconds:7.2f} fits/s "
              f"cores {cpu / seconds:4.2f} mean acc {score:.3f} peak RSS {rss:4.0f} MB",
              flush=True)

    # one-by-one: 1 process x 1 thread, then 2 loky processes x 1 thread
    base_subsets = prefixes(n, tmc_sizes(n_base, seed=1), seed=2)
    report("one-by-one skorch, 1 process x 1 thread", n_base,
           *run_one_by_one(epochs, base_subsets))
    base2 = prefixes(n, tmc_sizes(2 * n_base, seed=3), seed=4)
    report("one-by-one skorch, 2 processes x 1 thread", 2 * n_base,
           *in_processes(2, run_one_by_one, epochs, [base2[::2], base2[1::2]]))
    base_rate = rows[-1][1] / rows[-1][2]
    base_per_cpu = rows[-1][1] / rows[-1][3]

    # pyDVL 0.10, when installed here or in its own venv: its ModelUtility on the same
    # subsets, 1 process x 1 thread (compare with the first line, not the 2-process baseline)
    try:
        import pydvl

        version, measured = pydvl.__version__, run_pydvl(epochs, base_subsets)
    except ImportError:
        if os.path.exists(args.pydvl_python):
            try:
                version, measured = pydvl_in_other_venv(args.pydvl_python, epochs, base_subsets)
            except Exception as exc:  # noqa: BLE001 - pyDVL failing must not stop the benchmark
                print(f"  pyDVL: its run failed ({type(exc).__name__}: {exc})")
                measured = None
        else:
            print(f"  pyDVL 0.10: not installed (nor {args.pydvl_python}; "
                  "`make bench-pydvl-env` makes it), skipped")
            measured = None
    if measured is not None:
        pydvl_row = len(rows)
        report(f"pyDVL {version} ModelUtility, 1 process x 1 thread", n_base, *measured)
    else:
        pydvl_row = None

    # fast path
    sizes = tmc_sizes(n_calls, seed=5)
    for k in ks:
        blocks = lockstep_blocks(n, k, sizes, seed=6)
        fits = k * len(blocks)
        report(f"fast path K={k}, 1 process x 1 thread", fits, *run_fast(epochs, blocks, 1))
        report(f"fast path K={k}, 1 process x 2 threads", fits, *run_fast(epochs, blocks, 2))
        halves = [blocks[::2], blocks[1::2]]
        report(f"fast path K={k}, 2 processes x 1 thread", fits,
               *in_processes(2, run_fast, epochs, halves, 1))
    k = ks[0]
    mixed = lockstep_blocks(n, k, sizes, seed=7, mixed=True)
    report(f"fast path K={k}, mixed sizes, 1 process x 2 thr", k * len(mixed),
           *run_fast(epochs, mixed, 2))
    if not args.no_vmap:  # one thread: torch's OpenMP threads suffer most on a busy machine
        small = lockstep_blocks(n, 16, sizes[: max(2, len(sizes) // 3)], seed=8)
        report("torch.func (vmap) trainer K=16, 1 proc x 1 thr", 16 * len(small),
               *run_fast(epochs, small, 1, trainer="vmap"))

    # summary
    mean_k = float(np.mean(np.arange(1, BURN_IN + 1)))
    flops_fit = 6 * MACS_PER_SAMPLE * mean_k * epochs
    g1, g2 = matmul_gflops(1), matmul_gflops(2)
    fast_rows = rows[2:] if pydvl_row is None else rows[pydvl_row + 1:]
    best = max(fast_rows, key=lambda r: r[1] / r[2])
    best_rate = best[1] / best[2]
    print("\nsummary")
    print(f"  baseline (one-by-one, 2 processes x 1 thread): {base_rate:.2f} fits/s, "
          f"{base_per_cpu:.2f} fits per CPU-second")
    if pydvl_row is not None:
        name, fits, seconds, cpu = rows[pydvl_row]
        ours = rows[0][1] / rows[0][3]
        print(f"  {name}: {fits / cpu:.2f} fits per CPU-second = {fits / cpu / ours:.2f}x our "
              f"one-by-one fits (1 process x 1 thread, same subsets)")
    for name, fits, seconds, cpu in fast_rows:
        rate = fits / seconds
        vs_pydvl = "" if pydvl_row is None else \
            f" = {fits / cpu / (rows[pydvl_row][1] / rows[pydvl_row][3]):5.1f}x pyDVL"
        print(f"  {name:44s} {rate:7.2f} fits/s = {rate / base_rate:5.1f}x baseline, "
              f"{rate * flops_fit / 1e9:5.1f} GFLOP/s effective; {fits / cpu:6.1f} fits per "
              f"CPU-second = {fits / cpu / base_per_cpu:5.1f}x{vs_pydvl}")
    print(f"  arithmetic ceiling: {flops_fit / 1e9:.2f} GFLOP per fit at mean size {mean_k:.1f} "
          f"(6 x {MACS_PER_SAMPLE:,} x k x {epochs}); 2048^2 matmul {g1:.0f} GFLOP/s (1 thread), "
          f"{g2:.0f} GFLOP/s (2 threads) -> {g2 * 1e9 / flops_fit:.0f} fits/s")
    print(f"  tracemalloc peak of one K={k} call: "
          f"{tracemalloc_peak_mb(epochs, lockstep_blocks(n, k, sizes[:1], seed=9)[0]):.1f} MB")
    print(f"  load average at the end: {os.getloadavg()[0]:.1f}")
    for label, rate in (("one-by-one (2 processes)", base_rate), (best[0], best_rate)):
        print(f"  projected full reference run ({REFERENCE_FITS:,} fits), {label}: "
              f"{REFERENCE_FITS / rate / 60:.1f} min")


if __name__ == "__main__":
    # Run as the importable module ``bench_fastpath`` so loky workers unpickle the worker
    # functions by reference (import) instead of by value.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_fastpath

    bench_fastpath.main()
