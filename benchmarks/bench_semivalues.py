"""MSR-Banzhaf and Beta-Shapley against exact enumeration and against pyDVL 0.10.

One small, deterministic game: a scikit-learn ``LogisticRegression`` (lbfgs, deterministic)
fitted on subsets of ``--n`` training points of a 2-d two-class problem and scored by its
accuracy on 60 test points (0 for the empty set and single-class subsets, as pyDVL scores
them). Small enough to enumerate all ``2^n`` subsets, so every estimate is also compared
with the exact values:

1. the exact Banzhaf and Beta(alpha, beta) values (pyDVL's coefficients), by enumeration;
2. ours, ``MSRBanzhafValuation`` and ``BetaShapleyValuation`` (``MinUpdates(--updates)``);
3. pyDVL 0.10's ``MSRBanzhafValuation`` and ``BetaShapleyValuation`` (with its
   ``UniformSampler``: a point and a uniformly random subset of the others per sample) with
   the same criterion, run from its own venv (``make bench-pydvl-env``; pyDVL pins numpy 1.x)
   in a subprocess, on the same arrays.

Reported per method: Spearman between ours and pyDVL's (and each against the exact values),
the largest ``|difference| / sqrt(se_ours^2 + se_pydvl^2)`` over the points (about 3 or less
is agreement within the standard errors for 8-12 points), and each one's largest
``|estimate - exact| / se``. Nearly all the time is pyDVL's (it caches no utility, and its
Beta-Shapley makes two fits per sample); ours reuse the enumeration's cache.

    .venv/bin/python benchmarks/bench_semivalues.py                  # about 9 min on 2 cores
    .venv/bin/python benchmarks/bench_semivalues.py --n 10 --updates 2000
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """``n`` training and 60 test points; two classes, overlapping (some points hurt)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + 60, 2))
    y = (x[:, 0] + 0.8 * rng.normal(size=n + 60) > 0).astype(np.int64)
    y[:2] = [0, 1]  # both classes among the training points
    return x[:n], y[:n], x[n:], y[n:]


# -- pyDVL 0.10 in its own interpreter ---------------------------------------------------------
def pydvl_worker(path: str, updates: int, alpha: float, beta: float, seed: int) -> None:
    """Run pyDVL's MSR-Banzhaf and Beta-Shapley on the arrays in ``path``; print JSON."""
    import pydvl
    from pydvl.valuation.dataset import Dataset
    from pydvl.valuation.methods import BetaShapleyValuation, MSRBanzhafValuation
    from pydvl.valuation.samplers import UniformSampler
    from pydvl.valuation.scorers import SupervisedScorer
    from pydvl.valuation.stopping import MinUpdates
    from pydvl.valuation.utility import ModelUtility
    from sklearn.linear_model import LogisticRegression

    warnings.simplefilter("ignore")
    with np.load(path) as f:
        x, y, x_test, y_test = (f[k] for k in ("x", "y", "x_test", "y_test"))
    train, test = Dataset(x, y), Dataset(x_test, y_test)
    utility = ModelUtility(LogisticRegression(),
                           SupervisedScorer("accuracy", test, default=0.0, range=(0.0, 1.0)),
                           show_warnings=False)
    out = {"version": pydvl.__version__}
    start = time.perf_counter()
    msr = MSRBanzhafValuation(utility, is_done=MinUpdates(updates), seed=seed).fit(train)
    out["msr"] = _pack(msr.result, time.perf_counter() - start)
    start = time.perf_counter()
    bsv = BetaShapleyValuation(utility, sampler=UniformSampler(seed=seed),
                               is_done=MinUpdates(updates), alpha=alpha, beta=beta).fit(train)
    out["beta"] = _pack(bsv.result, time.perf_counter() - start)
    print(json.dumps(out))


def _pack(result, seconds: float) -> dict:
    order = np.argsort(np.asarray(result.indices))  # by data index
    return {"values": np.asarray(result.values)[order].tolist(),
            "stderr": np.asarray(result.stderr)[order].tolist(),
            "counts": np.asarray(result.counts)[order].tolist(), "seconds": seconds}


def run_pydvl(python: str, data: tuple[np.ndarray, ...], updates: int, alpha: float,
              beta: float, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "arrays.npz")
        np.savez(path, **dict(zip(("x", "y", "x_test", "y_test"), data, strict=True)))
        out = subprocess.run(
            [python, os.path.abspath(__file__), "--pydvl-worker", path, "--updates",
             str(updates), "--alpha", str(alpha), "--beta", str(beta), "--seed", str(seed)],
            capture_output=True, text=True, check=False, timeout=3600,
        )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- ours and the exact values -----------------------------------------------------------------
def exact_values(u, n: int, coefficient) -> np.ndarray:
    memo: dict[tuple[int, ...], float] = {}

    def value(s: tuple[int, ...]) -> float:
        if s not in memo:
            memo[s] = float(u(np.array(s, dtype=np.int64)))
        return memo[s]

    v = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for k in range(n):
            for s in itertools.combinations(others, k):
                v[i] += coefficient(n, k) * (value(tuple(sorted(s + (i,)))) - value(s))
    return v


def spearman(a, b) -> float:
    from dvl_jupyter.valuation.diagnostics import spearman as rank_corr

    return rank_corr(np.asarray(a, float), np.asarray(b, float))


def report(name: str, exact: np.ndarray, ours, theirs: dict | None) -> None:
    v, se = np.asarray(ours.values), np.asarray(ours.stderr)
    line = (f"{name:>13} ours:  Spearman vs exact {spearman(v, exact):.3f}, max |est - exact|"
            f" / se {np.max(np.abs(v - exact) / se):.2f}, se {se.min():.3g}-{se.max():.3g},"
            f" {ours.meta['samples']:,} samples, {ours.meta['evaluations']:,} evaluations")
    print(line)
    if theirs is None:
        return
    tv, tse = np.asarray(theirs["values"]), np.asarray(theirs["stderr"])
    print(f"{'':>13} pyDVL: Spearman vs exact {spearman(tv, exact):.3f}, max |est - exact|"
          f" / se {np.max(np.abs(tv - exact) / tse):.2f}, se {tse.min():.3g}-{tse.max():.3g},"
          f" {theirs['seconds']:.1f} s")
    gap = np.abs(v - tv) / np.sqrt(se ** 2 + tse ** 2)
    print(f"{'':>13} ours vs pyDVL: Spearman {spearman(v, tv):.3f}, max |difference| / "
          f"combined se {gap.max():.2f}, max |difference| {np.max(np.abs(v - tv)):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="training points (2^n fits exact)")
    parser.add_argument("--updates", type=int, default=1000, help="MinUpdates of every run")
    parser.add_argument("--alpha", type=float, default=4.0)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=36)
    parser.add_argument("--pydvl-python", default=os.path.join(ROOT, ".venv-pydvl", "bin",
                                                               "python"),
                        help="interpreter with pyDVL 0.10 installed (default: .venv-pydvl)")
    parser.add_argument("--pydvl-worker", metavar="ARRAYS_NPZ", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pydvl_worker:
        pydvl_worker(args.pydvl_worker, args.updates, args.alpha, args.beta, args.seed)
        return

    from sklearn.linear_model import LogisticRegression

    from dvl_jupyter.valuation import (
        BetaShapleyValuation,
        Dataset,
        MinUpdates,
        ModelUtility,
        MSRBanzhafValuation,
        SupervisedScorer,
    )
    from dvl_jupyter.valuation.methods.semivalue import banzhaf_coefficient, beta_coefficient

    data = make_data(args.n)
    x, y, x_test, y_test = data
    train, test = Dataset(x, y), Dataset(x_test, y_test)
    with tempfile.TemporaryDirectory() as cache:
        utility = ModelUtility(LogisticRegression(), SupervisedScorer(
            "accuracy", test, default=0.0, range=(0.0, 1.0)), cache=cache)
        bound = utility.with_dataset(train)
        start = time.perf_counter()
        exact_banzhaf = exact_values(bound, args.n, banzhaf_coefficient)
        exact_beta = exact_values(bound, args.n,
                                  lambda n, k: beta_coefficient(args.alpha, args.beta, n, k))
        print(f"exact values of {args.n} points by enumeration: "
              f"{time.perf_counter() - start:.1f} s")
        msr = MSRBanzhafValuation(utility, MinUpdates(args.updates), seed=args.seed,
                                  batched=False).fit(train).result
        bsv = BetaShapleyValuation(utility, MinUpdates(args.updates), alpha=args.alpha,
                                   beta=args.beta, seed=args.seed,
                                   batched=False).fit(train).result
    theirs = None
    if os.path.exists(args.pydvl_python):
        try:
            theirs = run_pydvl(args.pydvl_python, data, args.updates, args.alpha, args.beta,
                               args.seed)
            print(f"pyDVL {theirs['version']}, MinUpdates({args.updates}) on the same arrays")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"pyDVL: failed ({exc})")
    else:
        print(f"pyDVL 0.10: not installed (nor {args.pydvl_python}; `make bench-pydvl-env` "
              "builds it)")
    report("MSR-Banzhaf", exact_banzhaf, msr, None if theirs is None else theirs["msr"])
    report(f"Beta({args.alpha:g},{args.beta:g})", exact_beta, bsv,
           None if theirs is None else theirs["beta"])
    if not math.isfinite(spearman(msr.values, exact_banzhaf)):
        sys.exit("a ranking was constant: choose another --n or --seed")


if __name__ == "__main__":
    main()
