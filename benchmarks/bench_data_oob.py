"""Data-OOB: noisy-label detection with the reference CNN, and pyDVL 0.10 on one fitted ensemble.

1. The reference CNN (``reference.py``: SimpleCNN in skorch, 24 epochs, batch 128, Adam lr
   0.01), bagged by ``DataOOBValuation`` itself: 100 bags (``max_samples`` 0.8, pyDVL's
   default) of the 1,257 training digits of ``load_digits(train_size=0.7, random_state=36)``
   with 10% of the labels flipped to another class uniformly (seeded). The bags go through the
   fast path, many models at once. Reported: wall time of the run (after a warm-up run of two
   bags, so the C kernel's one-time compilation is not counted; it is reported apart), AUROC of
   "low value" against the flipped mask, the split-half reliability, the ensemble's OOB and
   test accuracy, and the time of a re-run from the cache (no model is trained).
2. pyDVL 0.10's ``DataOOBValuation`` on the same *fitted* ensemble, a ``BaggingClassifier`` of
   100 decision trees on the same noisy digits (pixels flattened): pyDVL pins numpy 1.x, so it
   runs from its own venv (``make bench-pydvl-env``) in a subprocess, which fits the ensemble,
   values it, and pickles it for this process (the same scikit-learn on both sides), where our
   ``DataOOBValuation`` values the very same estimators. The two must be equal (values to
   1e-12, counts exactly).

    .venv/bin/python benchmarks/bench_data_oob.py            # ~1 minute on 2 cores
    .venv/bin/python benchmarks/bench_data_oob.py --jobs 2 --n-estimators 200
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def flip(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy labels, flipped mask)``: ``fraction`` of the labels, each moved to another of
    the 10 classes uniformly (a shift of 1..9 modulo 10)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y).copy()
    flipped = np.zeros(len(y), dtype=bool)
    flipped[rng.choice(len(y), size=round(fraction * len(y)), replace=False)] = True
    y[flipped] = (y[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    return y, flipped


def auroc(values: np.ndarray, flipped: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(flipped, -values))  # a low value flags a suspect label


def noisy_digits(seed: int) -> tuple[Any, Any, np.ndarray]:
    """``(noisy train, test, flipped)`` as our Datasets (images (N, 1, 8, 8) float32)."""
    from dvl_jupyter.datasets import load_digits
    from dvl_jupyter.valuation import Dataset

    train, test = load_digits(train_size=0.7, random_state=36)
    y, flipped = flip(np.asarray(train.y), 0.1, seed)
    return Dataset(np.asarray(train.x), y, names=train.names, indices=train.indices), test, \
        flipped


# -- pyDVL, in its own venv ------------------------------------------------------------------
def pydvl_worker(path: str, n_estimators: int) -> None:
    """Fit the tree ensemble, value it with pyDVL 0.10, pickle it; print what it found."""
    warnings.simplefilter("ignore", FutureWarning)  # pyDVL's own deprecation notices
    import pydvl
    import sklearn
    from pydvl.valuation.dataset import Dataset
    from pydvl.valuation.methods import DataOOBValuation
    from sklearn.ensemble import BaggingClassifier
    from sklearn.tree import DecisionTreeClassifier

    with np.load(path) as f:
        x, y = f["x"], f["y"]
    start = time.perf_counter()
    ensemble = BaggingClassifier(DecisionTreeClassifier(), n_estimators=n_estimators,
                                 random_state=0).fit(x, y)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    valuation = DataOOBValuation(ensemble).fit(Dataset(x, y))
    seconds = time.perf_counter() - start
    result = valuation.result
    order = np.argsort(result.indices)  # pyDVL's result, back in data order
    out = path.replace(".npz", "-out")
    np.savez(out + ".npz", values=result.values[order], counts=result.counts[order])
    with open(out + ".pkl", "wb") as f:
        pickle.dump(ensemble, f)
    print(json.dumps({"version": pydvl.__version__, "sklearn": sklearn.__version__,
                      "fit_s": fit_s, "seconds": seconds, "out": out}))


def run_pydvl(python: str, x: np.ndarray, y: np.ndarray, n_estimators: int, tmp: str
              ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, Any]:
    path = os.path.join(tmp, "digits.npz")
    np.savez(path, x=x, y=y)
    out = subprocess.run([python, os.path.abspath(__file__), "--pydvl-worker", path,
                          "--n-estimators", str(n_estimators)],
                         capture_output=True, text=True, check=False, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    reply = json.loads(out.stdout.strip().splitlines()[-1])
    with np.load(reply["out"] + ".npz") as f:
        values, counts = f["values"], f["counts"]
    # our own file, written by the worker just now, with the same scikit-learn
    with open(reply["out"] + ".pkl", "rb") as f:
        ensemble = pickle.load(f)  # noqa: S301
    return reply, values, counts, ensemble


# -- the benchmark ---------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the flipped labels")
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--max-samples", type=float, default=0.8)
    parser.add_argument("--jobs", type=int, default=1, help="joblib workers (default 1: the "
                        "fast path's C kernel already uses every core)")
    parser.add_argument("--pydvl-python", default=os.path.join(ROOT, ".venv-pydvl", "bin",
                                                               "python"),
                        help="interpreter with pyDVL 0.10 installed (default: .venv-pydvl)")
    parser.add_argument("--pydvl-worker", metavar="ARRAYS_NPZ", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pydvl_worker:
        pydvl_worker(args.pydvl_worker, args.n_estimators)
        return

    from joblib import parallel_config
    from reference import reference_setup

    from dvl_jupyter.valuation import DataOOBValuation, Dataset
    from dvl_jupyter.valuation.methods.data_oob import NeverOutOfBagWarning

    print(f"# bench_data_oob: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
          "(other work on the machine skews times)")
    net, _, _, _ = reference_setup()
    train, test, flipped = noisy_digits(args.seed)
    print(f"noisy digits: {len(train)} training points, {flipped.sum()} labels flipped "
          f"(seed {args.seed}), {len(test)} test points")

    # 1. the reference CNN, bagged here on the fast path
    with tempfile.TemporaryDirectory() as tmp, parallel_config(n_jobs=args.jobs):
        start = time.perf_counter()
        with warnings.catch_warnings():  # two bags leave many points never out of bag
            warnings.simplefilter("ignore", NeverOutOfBagWarning)
            DataOOBValuation(net, n_estimators=2, seed=10**6).fit(train)  # compiles the kernel
        warm_s = time.perf_counter() - start

        def valuation() -> DataOOBValuation:
            return DataOOBValuation(net, n_estimators=args.n_estimators,
                                    max_samples=args.max_samples, seed=36, test_data=test,
                                    cache=os.path.join(tmp, "cache"))

        start = time.perf_counter()
        run = valuation().fit(train)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        again = valuation().fit(train)
        cached_s = time.perf_counter() - start
    r = run.result
    same = np.array_equal(r.values, again.result.values)
    print(f"\n1. DataOOBValuation, reference CNN ({net.max_epochs} epochs), "
          f"{args.n_estimators} bags, max_samples {args.max_samples}, {args.jobs} job(s)")
    print(f"   path: {r.meta['path']}")
    print(f"   wall time {seconds:.1f} s (target < 30 s); warm-up of 2 bags {warm_s:.1f} s")
    print(f"   AUROC of low values against the flipped labels: {auroc(r.values, flipped):.3f} "
          "(target >= 0.97)")
    print(f"   split-half reliability {r.meta['reliability']:.3f}; OOB accuracy "
          f"{r.meta['oob_accuracy']:.3f}; test accuracy {r.meta['test_accuracy']:.3f}; "
          f"bags each point was out of: {r.counts.min()}-{r.counts.max()}")
    print(f"   re-run from the cache: {cached_s:.1f} s, {again.stats.fits} fits, "
          f"identical values: {same}")

    # 2. pyDVL 0.10 on the same fitted ensemble
    x = np.asarray(train.x, dtype=np.float64).reshape(len(train), -1)
    y = np.asarray(train.y)
    print(f"\n2. a fitted BaggingClassifier of {args.n_estimators} decision trees, pyDVL "
          "0.10 against ours")
    if not os.path.exists(args.pydvl_python):
        print(f"   pyDVL 0.10: not installed at {args.pydvl_python} (`make bench-pydvl-env` "
              "makes it), skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        try:
            reply, values, counts, ensemble = run_pydvl(args.pydvl_python, x, y,
                                                        args.n_estimators, tmp)
        except Exception as exc:  # noqa: BLE001 - pyDVL failing must not hide part 1
            print(f"   pyDVL: its run failed ({type(exc).__name__}: {exc})")
            return
    import sklearn

    start = time.perf_counter()
    ours = DataOOBValuation(ensemble).fit(Dataset(x, y)).result
    ours_s = time.perf_counter() - start
    diff = float(np.max(np.abs(ours.values - values)))
    print(f"   pyDVL {reply['version']} (scikit-learn {reply['sklearn']}; here "
          f"{sklearn.__version__}): ensemble fitted in {reply['fit_s']:.1f} s, valued in "
          f"{reply['seconds']:.2f} s; ours {ours_s:.2f} s")
    print(f"   largest |difference| of values {diff:.1e} (must be <= 1e-12); counts equal: "
          f"{np.array_equal(ours.counts, counts)}")
    print(f"   AUROC: pyDVL {auroc(values, flipped):.3f}, ours {auroc(ours.values, flipped):.3f}")
    if diff > 1e-12 or not np.array_equal(ours.counts, counts):
        sys.exit("Data-OOB differs from pyDVL's on the same ensemble")


if __name__ == "__main__":
    main()
