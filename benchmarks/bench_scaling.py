"""How cost grows: each method's wall time against n, and the fast path's rate against n and
the net's size.

The reference CNN (skorch, 24 epochs, batch 128, Adam) on the digits, with larger training
sets made by augmenting them (each image shifted by one pixel left, right, up and down, so
n = 300, 1,257 and 5,000 are all real digits). For each n and method, one run measured from a
cold cache on 2 jobs:

- ``knn``: exact KNN-Shapley (K = 5, raw pixels): no model trained on subsets;
- ``data-oob``: Data-OOB with 100 bags of the CNN (fast path);
- ``tmc``: TMC-Shapley, ``RelativeTruncation(0.05, 0.3)``: a few permutations measured, the
  time of the reference budget (100 permutations) projected from them;
- ``banzhaf``: MSR-Banzhaf, 1,000 sampled subsets (fast path), if the method is installed;
- ``beta``: Beta(16, 1)-Shapley (the short name ``beta``): ``MinUpdates(1)`` measured (one
  sample, two fits, per point), the time of its default ``MinUpdates(20)`` projected from it;
- ``loo``: leave-one-out (n + 2 fits, fast path).

And the fast path's fits per second of a whole TMC run against n and against the net's width
(the reference CNN and one twice as wide), with the rate of full blocks beside the whole run's
rate (what the tail of a run costs), and peak memory (RSS of the driver and its workers).

Usage::

    .venv/bin/python benchmarks/bench_scaling.py               # everything (about an hour)
    .venv/bin/python benchmarks/bench_scaling.py --sizes 300 1257 --methods knn data-oob
    .venv/bin/python benchmarks/bench_scaling.py --quick       # a smoke test (minutes)

Results also go to ``out/bench_scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

TMC_PERMUTATIONS = 100  # the reference budget, projected from the measured permutations
BETA_DEFAULT_UPDATES = 20  # the short name "beta"'s default MinUpdates, projected from one


def augmented_digits(n: int):
    """``n`` training digits (shifted copies when n > 1,257) and the 540 test digits."""
    from dvl_jupyter.datasets import load_digits
    from dvl_jupyter.valuation import Dataset

    train, test = load_digits(train_size=0.7, random_state=36)
    x, y = (np.asarray(a) for a in train.data())
    xs, ys = [x], [y]
    for axis, step in ((3, 1), (3, -1), (2, 1), (2, -1)):
        xs.append(np.roll(x, step, axis=axis))
        ys.append(y)
    x_all, y_all = np.concatenate(xs), np.concatenate(ys)
    if n > len(x_all):
        raise SystemExit(f"at most {len(x_all)} points can be made from the digits")
    pick = np.random.default_rng(0).permutation(len(x_all))[:n] if n != len(x) else \
        np.arange(n)
    return Dataset(x_all[pick], y_all[pick]), test


def cnn(width: int = 1):
    import torch
    from skorch import NeuralNetClassifier
    from torch import nn

    class WideCNN(nn.Module):
        """SimpleCNN with ``width`` times its channels."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8 * width, kernel_size=5, padding="same")
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(8 * width, 4 * width, kernel_size=3, padding="same")
            self.relu2 = nn.ReLU()
            self.pool = nn.MaxPool2d(kernel_size=2)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(64 * width, 10)
            self.softmax = nn.Softmax(dim=1)

        def forward(self, x):
            x = self.relu1(self.conv1(x))
            x = self.relu2(self.conv2(x))
            return self.softmax(self.fc(self.flatten(self.pool(x))))

    if width == 1:
        from dvl_jupyter.models import SimpleCNN as module
    else:
        module = WideCNN
    return NeuralNetClassifier(module, criterion=torch.nn.CrossEntropyLoss, lr=0.01,
                               max_epochs=24, batch_size=128, train_split=None,
                               optimizer=torch.optim.Adam, verbose=False)


class PeakRSS:
    """The largest RSS (MiB) of this process and of its workers while it runs."""

    def __init__(self) -> None:
        self.driver = self.worker = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.5):
            try:
                self.driver = max(self.driver, me.memory_info().rss / 2**20)
                for c in me.children(recursive=True):
                    self.worker = max(self.worker, c.memory_info().rss / 2**20)
            except psutil.Error:
                pass

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


class Rates:
    """Fits per second of full blocks (the first half of a run's fits) and of the whole run."""

    def __init__(self) -> None:
        from dvl_jupyter.valuation import ValuationCallback

        rates = self

        class Watch(ValuationCallback):
            def on_evaluations(self, stats) -> None:
                rates.samples.append((time.perf_counter(), stats.fits))

        self.samples: list[tuple[float, int]] = []
        self.callback = Watch()

    def summary(self) -> dict[str, float]:
        if len(self.samples) < 4:
            return {}
        t0, f0 = self.samples[0]
        t1, f1 = self.samples[-1]
        half = f0 + (f1 - f0) / 2
        tm, fm = next((t, f) for t, f in self.samples if f >= half)
        return {"block_rate": (fm - f0) / max(tm - t0, 1e-9),
                "run_rate": (f1 - f0) / max(t1 - t0, 1e-9)}


def run_method(name: str, n: int, quick: bool) -> dict[str, Any]:
    from joblib import parallel_config

    from dvl_jupyter.valuation import (
        DataOOBValuation,
        KNNShapleyValuation,
        LOOValuation,
        MinUpdates,
        ModelUtility,
        RelativeTruncation,
        SkorchSupervisedScorer,
        TMCShapleyValuation,
    )

    train, test = augmented_digits(n)
    if quick:
        test = test[:100]
    net = cnn()
    utility = ModelUtility(net, SkorchSupervisedScorer(net, test_data=test, range=(0, 1)))
    note = ""
    rates = Rates()
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        method = KNNShapleyValuation(KNeighborsClassifier(5), test)
    elif name == "data-oob":
        method = DataOOBValuation(net, n_estimators=10 if quick else 100, seed=0,
                                  callbacks=[rates.callback])
    elif name == "tmc":
        perms = 2 if quick else (4 if n >= 5000 else 8)
        method = TMCShapleyValuation(utility, truncation=RelativeTruncation(0.05, 0.3),
                                     is_done=MinUpdates(perms), seed=0, lockstep=perms,
                                     callbacks=[rates.callback])
        note = f"{perms} permutations measured"
    elif name == "banzhaf":
        try:
            from dvl_jupyter.valuation import MSRBanzhafValuation
        except ImportError:
            return {"method": name, "n": n, "skipped": "MSRBanzhafValuation not installed"}
        samples = 64 if quick else 1000
        method = MSRBanzhafValuation(utility, is_done=MinUpdates(samples // 2), seed=0,
                                     callbacks=[rates.callback])
        note = f"{samples} subsets"
    elif name == "beta":
        from dvl_jupyter.valuation import BetaShapleyValuation

        method = BetaShapleyValuation(utility, is_done=MinUpdates(1), alpha=16, beta=1,
                                      seed=0, callbacks=[rates.callback])
        note = "MinUpdates(1) measured"
    elif name == "loo":
        method = LOOValuation(utility, callbacks=[rates.callback])
    else:
        raise SystemExit(f"unknown method {name}")
    with PeakRSS() as rss, parallel_config(n_jobs=2):
        start = time.perf_counter()
        result = method.fit(train).result
        elapsed = time.perf_counter() - start
    out = {"method": name, "n": n, "seconds": elapsed, "fits": result.meta.get("fits"),
           "note": note, "driver_rss_mib": round(rss.driver), "worker_rss_mib": round(rss.worker),
           **rates.summary()}
    if name == "tmc":
        out["projected_seconds"] = elapsed * TMC_PERMUTATIONS / result.meta["permutations"]
    if name == "beta":
        out["projected_seconds"] = elapsed * BETA_DEFAULT_UPDATES
    return out


def run_width(width: int, n: int, quick: bool) -> dict[str, Any]:
    """A whole TMC run's rate for a net ``width`` times as wide as the reference."""
    from joblib import parallel_config

    from dvl_jupyter.valuation import (
        MinUpdates,
        ModelUtility,
        RelativeTruncation,
        SkorchSupervisedScorer,
        TMCShapleyValuation,
    )

    train, test = augmented_digits(n)
    net = cnn(width)
    utility = ModelUtility(net, SkorchSupervisedScorer(net, test_data=test, range=(0, 1)))
    rates = Rates()
    perms = 2 if quick else 8
    method = TMCShapleyValuation(utility, truncation=RelativeTruncation(0.05, 0.3),
                                 is_done=MinUpdates(perms), seed=0, lockstep=perms,
                                 callbacks=[rates.callback])
    with parallel_config(n_jobs=2):
        start = time.perf_counter()
        result = method.fit(train).result
        elapsed = time.perf_counter() - start
    return {"width": width, "n": n, "seconds": elapsed, "fits": result.meta["fits"],
            "path": result.meta.get("path"), **rates.summary()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[300, 1257, 5000])
    parser.add_argument("--methods", nargs="+",
                        default=["knn", "data-oob", "tmc", "banzhaf", "beta", "loo"])
    parser.add_argument("--widths", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the script")
    parser.add_argument("--out", default="out/bench_scaling.json")
    args = parser.parse_args(argv)
    import os

    print(f"# bench_scaling: 2 jobs; load average {os.getloadavg()[0]:.1f} at the start")
    report: dict[str, Any] = {"methods": [], "widths": []}
    # start joblib's workers and compile the C kernel once, outside every timing
    run_method("tmc", 300, quick=True)
    for n in args.sizes:
        for name in args.methods:
            if name == "loo" and n > 5000 and not args.quick:
                report["methods"].append({"method": name, "n": n,
                                          "skipped": "n + 2 fits of n - 1 points: long"})
                continue
            row = run_method(name, n, args.quick)
            report["methods"].append(row)
            print(json.dumps(row), flush=True)
    for width in args.widths:
        row = run_width(width, 1257 if not args.quick else 300, args.quick)
        report["widths"].append(row)
        print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
