"""Exact KNN-Shapley: noisy-label detection on digits, wall time and memory, against pyDVL 0.10.

1. Digits: the 1,257 training images of ``load_digits(train_size=0.7, random_state=36)``, raw
   pixels flattened (the loader's pixels / 16: same distances up to a factor, same ties), 10% of
   the training labels flipped to another class uniformly (seeded), valued with
   ``KNeighborsClassifier(n_neighbors=5)`` on the 540 test images. Reported: wall time, peak
   memory, AUROC of "low value" as a detector of the flipped labels.
2. Synthetic: 20,000 training and 2,000 test points, 64 features, 10 classes (Gaussian blobs
   around random class centres), K=5: wall time and peak memory. Memory is measured with
   tracemalloc on a second, shorter run over two chunks of test points: a chunk's memory does
   not depend on the size of the test set, so the peak is the full run's.
3. pyDVL 0.10's ``KNNShapleyValuation`` on the same noisy digits, run from its own venv
   (``make bench-pydvl-env``; pyDVL pins numpy 1.x) in a subprocess. Raw pixels have many equal
   distances, and pyDVL walks scikit-learn's ``kneighbors`` order, whose order among ties is
   implementation-defined; our values average over tie orders instead. So the comparison is
   twofold: our closed form on pyDVL's own neighbour order (``knn_shapley_from_ranking``, the
   order returned by the worker from the classifier pyDVL fitted) must equal pyDVL's values to
   1e-9, and our tie-averaged values are compared by their largest difference, Spearman
   correlation and AUROC.

    .venv/bin/python benchmarks/bench_knn_shapley.py             # ~1 minute
    .venv/bin/python benchmarks/bench_knn_shapley.py --no-synthetic
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 5


def peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def noisy_digits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, noisy y_train, x_test, y_test, flipped mask), pixels flattened as float64."""
    from dvl_jupyter.datasets import load_digits

    train, test = load_digits(train_size=0.7, random_state=36)
    x_train = np.asarray(train.x, dtype=np.float64).reshape(len(train), -1)
    x_test = np.asarray(test.x, dtype=np.float64).reshape(len(test), -1)
    y_train, y_test = np.asarray(train.y).copy(), np.asarray(test.y)
    rng = np.random.default_rng(seed)
    n = len(y_train)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=round(0.1 * n), replace=False)] = True
    # another class, uniformly: shift by 1..9 modulo 10
    y_train[flipped] = (y_train[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    return x_train, y_train, x_test, y_test, flipped


def synthetic(n_train: int, n_test: int, n_features: int, n_classes: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=1.5, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, n_train + n_test)
    x = centres[y] + rng.normal(size=(len(y), n_features))
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def traced_peak_mb(fn: Any, *args: Any, **kwargs: Any) -> float:
    tracemalloc.start()
    try:
        fn(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def auroc(values: np.ndarray, flipped: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(flipped, -values))  # low value = suspect


def tie_share(x_train: np.ndarray, x_test: np.ndarray) -> float:
    """Fraction of (test, train) pairs whose distance another training point shares."""
    from sklearn.metrics import pairwise_distances

    d = pairwise_distances(x_test, x_train, metric="sqeuclidean")
    d.sort(axis=1)
    tied = np.zeros(d.shape, dtype=bool)
    same = d[:, 1:] == d[:, :-1]
    tied[:, 1:] |= same
    tied[:, :-1] |= same
    return float(tied.mean())


# -- pyDVL 0.10 in its own interpreter -------------------------------------------------------
def pydvl_worker(path: str) -> None:
    """Run pyDVL's KNNShapleyValuation on the arrays in ``path``; print values and order."""
    import pydvl
    from pydvl.valuation.dataset import Dataset
    from pydvl.valuation.methods import KNNShapleyValuation
    from sklearn.neighbors import KNeighborsClassifier

    with np.load(path) as f:
        x_train, y_train, x_test, y_test = (f[k] for k in ("x_train", "y_train", "x_test",
                                                             "y_test"))
    valuation = KNNShapleyValuation(KNeighborsClassifier(n_neighbors=K), Dataset(x_test, y_test),
                                    progress=False)
    start = time.perf_counter()
    valuation.fit(Dataset(x_train, y_train))
    seconds = time.perf_counter() - start
    # the same call pyDVL made (one batch without a joblib context): its neighbour order
    ranking = valuation.model.kneighbors(x_test, n_neighbors=len(x_train),
                                         return_distance=False)
    out = path.replace(".npz", "-out.npz")
    np.savez(out, values=valuation.result.values, ranking=ranking)
    print(json.dumps({"version": pydvl.__version__, "seconds": seconds, "out": out}))


def run_pydvl(python: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
              y_test: np.ndarray) -> tuple[str, float, np.ndarray, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "digits.npz")
        np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        out = subprocess.run([python, os.path.abspath(__file__), "--pydvl-worker", path],
                             capture_output=True, text=True, check=False, timeout=3600)
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
        reply = json.loads(out.stdout.strip().splitlines()[-1])
        with np.load(reply["out"]) as f:
            return reply["version"], reply["seconds"], f["values"], f["ranking"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the flipped labels")
    parser.add_argument("--no-synthetic", action="store_true", help="skip the 20,000 x 2,000 set")
    parser.add_argument("--pydvl-python", default=os.path.join(ROOT, ".venv-pydvl", "bin",
                                                               "python"),
                        help="interpreter with pyDVL 0.10 installed (default: .venv-pydvl)")
    parser.add_argument("--pydvl-worker", metavar="ARRAYS_NPZ", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pydvl_worker:
        pydvl_worker(args.pydvl_worker)
        return

    from scipy.stats import spearmanr

    from dvl_jupyter.valuation.methods.knn_shapley import (
        _BYTES_PER_PAIR,
        _CHUNK_BUDGET,
        knn_shapley_from_ranking,
        knn_shapley_values,
    )

    print(f"# bench_knn_shapley: {os.cpu_count()} CPUs, K={K}, load average "
          f"{os.getloadavg()[0]:.1f} (other work on the machine skews times)")

    x_train, y_train, x_test, y_test, flipped = noisy_digits(args.seed)
    knn_shapley_values(x_train[:50], y_train[:50], x_test[:5], y_test[:5], K)  # imports
    values, seconds = timed(knn_shapley_values, x_train, y_train, x_test, y_test, K)
    peak = traced_peak_mb(knn_shapley_values, x_train, y_train, x_test, y_test, K)
    print(f"digits {len(x_train):,} x {len(x_test):,}, {x_train.shape[1]} pixels, "
          f"{flipped.sum()} labels flipped (seed {args.seed}): {seconds:.2f} s, "
          f"peak traced {peak:.0f} MB, AUROC {auroc(values, flipped):.4f} "
          f"({100 * tie_share(x_train, x_test):.0f}% of distances tied)", flush=True)

    if not args.no_synthetic:
        xs, ys, xts, yts = synthetic(20_000, 2_000, 64, 10, seed=1)
        _, seconds = timed(knn_shapley_values, xs, ys, xts, yts, K)
        chunk = max(1, _CHUNK_BUDGET // (_BYTES_PER_PAIR * len(xs)))
        peak = traced_peak_mb(knn_shapley_values, xs, ys, xts[:2 * chunk], yts[:2 * chunk], K)
        inputs = (xs.nbytes + xts.nbytes) / 2**20
        print(f"synthetic {len(xs):,} x {len(xts):,}, 64 features, 10 classes: {seconds:.1f} s, "
              f"peak traced {peak:.0f} MB ({chunk} test points per chunk; inputs "
              f"{inputs:.0f} MB), peak RSS of this process {peak_rss_mb():.0f} MB", flush=True)

    if os.path.exists(args.pydvl_python):
        try:
            version, seconds, theirs, ranking = run_pydvl(args.pydvl_python, x_train, y_train,
                                                          x_test, y_test)
        except Exception as exc:  # a broken venv should not hide the figures above
            print(f"pyDVL: failed ({exc})")
            return
        same_order = knn_shapley_from_ranking(ranking, y_train, y_test, K)
        gap = float(np.abs(same_order - theirs).max())
        print(f"pyDVL {version} on the same digits: {seconds:.2f} s, AUROC "
              f"{auroc(theirs, flipped):.4f}")
        print(f"  our closed form on pyDVL's neighbour order: max |difference| {gap:.1e} "
              f"({'equal' if gap <= 1e-9 else 'NOT equal'} to 1e-9)")
        diff = float(np.abs(values - theirs).max())
        rho = float(spearmanr(values, theirs).statistic)
        print(f"  our tie-averaged values: max |difference| {diff:.1e}, Spearman {rho:.4f} "
              f"(the difference is the tie order only)")
        if gap > 1e-9:
            sys.exit(1)
    else:
        print(f"pyDVL 0.10: not installed (nor {args.pydvl_python}; `make bench-pydvl-env` "
              "makes it), skipped")


if __name__ == "__main__":
    main()
