"""Do the values find bad data? TMC-Shapley's variance reductions on flipped digits.

The reference workflow with 10% of the 1,257 training labels flipped (each to another class,
seeded): how well do the lowest TMC values find the flipped points (AUROC, precision at k =
the number flipped), how much do two runs with different seeds agree (Spearman), and does the
run's own split-half reliability predict that agreement (calibration)? For the reference CNN
under each variance reduction, at equal numbers of fits, beside a deterministic model
(LogisticRegression) as the control.

Configurations (TMC with RelativeTruncation(0.05, 0.3) unless said, the fit budget of the
reference run, MinUpdates(100), about 39,000 fits, read at a tenth, three tenths and all of
it):

- ``independent-acc``: today's default: every fit seeded by its subset, test accuracy;
- ``coupled-acc``: coupled training (same initial weights, minibatches restricted from one
  order per epoch);
- ``coupled-prob``: coupled, utility = mean predicted probability of the true test label
  (smoother than accuracy);
- ``coupled-prob-anti``: the same with antithetic permutations;
- ``coupled-prob-trunc10``: the same truncated after 10% of the points (burn-in 0.1): shorter
  walks, so about three times as many permutations for the same fits;
- ``independent-acc-avg2``: each u(S) the mean of two independent fits (pyDVL's repeated
  evaluations), half the permutations;
- ``logreg``: LogisticRegression (deterministic training), accuracy: the control.

Usage::

    .venv/bin/python benchmarks/bench_quality.py                 # everything (about an hour)
    .venv/bin/python benchmarks/bench_quality.py --configs logreg coupled-prob --budget 0.3
    .venv/bin/python benchmarks/bench_quality.py --quick          # a smoke test (minutes)

Results also go to ``out/bench_quality.json``. Nothing is tuned to the data: the flipped
labels are drawn once from ``--flip-seed``, the same for every configuration.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

REFERENCE_PERMUTATIONS = 100
READ_AT = (0.1, 0.3, 1.0)  # fractions of the fit budget at which the values are read


def mean_true_probability(model: Any, x: Any, y: Any) -> float:
    """The mean predicted probability of each test point's true label (in [0, 1])."""
    p = np.asarray(model.predict_proba(x))
    return float(np.mean(p[np.arange(len(y)), np.asarray(y)]))


CONFIGS: dict[str, dict[str, Any]] = {
    "independent-acc": {"coupled": False, "scoring": "accuracy"},
    "coupled-acc": {"coupled": True, "scoring": "accuracy"},
    "coupled-prob": {"coupled": True, "scoring": mean_true_probability},
    "coupled-prob-anti": {"coupled": True, "scoring": mean_true_probability,
                          "antithetic": True},
    "coupled-prob-trunc10": {"coupled": True, "scoring": mean_true_probability,
                             "burn_in": 0.1},
    "independent-acc-avg2": {"coupled": False, "scoring": "accuracy", "repeats": 2},
    "logreg": {"model": "logreg", "scoring": "accuracy"},
}


def flipped_digits(flip_seed: int):
    from dvl_jupyter.datasets import load_digits
    from dvl_jupyter.valuation import flip_labels

    train, test = load_digits(train_size=0.7, random_state=36)
    noisy, mask = flip_labels(train, 0.1, seed=flip_seed)
    return noisy, test, mask


def _flat(data):
    from dvl_jupyter.valuation import Dataset

    x, y = data.data()
    return Dataset(np.asarray(x).reshape(len(x), -1), y, names=data.names,
                   indices=data.indices)


def build_utility(cfg: dict[str, Any], train, test, cache: str | None):
    """The utility of a configuration (the reference CNN, or LogisticRegression on flattened
    pixels) and the training set it values."""
    import torch
    from skorch import NeuralNetClassifier

    from dvl_jupyter.models import SimpleCNN
    from dvl_jupyter.valuation import ModelUtility, SkorchSupervisedScorer, SupervisedScorer

    if cfg.get("model") == "logreg":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(max_iter=500)
        scorer = SupervisedScorer(cfg["scoring"], _flat(test), default=0.0, range=(0, 1))
        train = _flat(train)
    else:
        model = NeuralNetClassifier(SimpleCNN, criterion=torch.nn.CrossEntropyLoss, lr=0.01,
                                    max_epochs=24, batch_size=128, train_split=None,
                                    optimizer=torch.optim.Adam, verbose=False)
        scorer = SkorchSupervisedScorer(model, test_data=test, default=0.0, range=(0, 1),
                                        scoring=cfg["scoring"])
    utility = ModelUtility(model, scorer, cache=cache,
                           coupled_training=cfg.get("coupled", False))
    return utility, train


def build_valuation(name: str, cfg: dict[str, Any], train, test, seed: int, budget: float,
                    cache: str | None, snapshots: dict):
    """The TMC run of a configuration, stopping at the budget's number of fits."""
    from dvl_jupyter.valuation import (
        MinUpdates,
        RelativeTruncation,
        TMCShapleyValuation,
        ValuationCallback,
    )

    utility, train = build_utility(cfg, train, test, cache)
    burn_in = cfg.get("burn_in", 0.3)
    # permutations for the budget: the reference spends 100 walks of about burn_in * n points
    walks = int(round(budget * REFERENCE_PERMUTATIONS * 0.3 / burn_in / cfg.get("repeats", 1)))
    reads = sorted({max(1, int(round(f * walks))) for f in READ_AT if f <= budget / 1.0 + 1e-9}
                   | {walks})

    class Snapshot(ValuationCallback):
        def on_update(self, result, stats):
            for k in reads:
                if stats.permutations >= k and k not in snapshots:
                    snapshots[k] = {"values": result.values.copy(), "fits": stats.fits,
                                    "reliability": result.meta.get("reliability"),
                                    "advice": result.meta.get("reliability") is not None}

    valuation = TMCShapleyValuation(
        utility, truncation=RelativeTruncation(0.05, burn_in), is_done=MinUpdates(walks),
        seed=seed, antithetic=cfg.get("antithetic", False), callbacks=[Snapshot()])
    return valuation, train, reads


def averaged_fits(repeats: int):
    """Make the fast path's evaluator average ``repeats`` independent fits per subset."""
    from dvl_jupyter.valuation.fastpath import FastPathEvaluator
    from dvl_jupyter.valuation.methods import base

    original = base.choose_evaluator

    class Averaged(FastPathEvaluator):
        def fingerprint(self) -> str:
            return super().fingerprint() + f"-avg{repeats}"

        def evaluate_many(self, subsets):
            batches = [FastPathEvaluator(self.utility.reseeded(self.utility.random_state + r),
                                         block=self.batch_size).evaluate_many(subsets)
                       for r in range(repeats)]
            first = batches[0]
            first.values = np.mean([b.values for b in batches], axis=0)
            first.n_fits = sum(b.n_fits for b in batches)
            return first

    def choose(utility, batched="auto"):
        chosen = original(utility, batched)
        if isinstance(chosen, FastPathEvaluator):
            return Averaged(chosen.utility, block=chosen.batch_size)
        return chosen

    base.choose_evaluator = choose
    return lambda: setattr(base, "choose_evaluator", original)


def run_config(name: str, args) -> dict[str, Any]:
    from joblib import parallel_config

    from dvl_jupyter.valuation import detection_scores
    from dvl_jupyter.valuation.diagnostics import LOW_RELIABILITY, spearman

    cfg = CONFIGS[name]
    train, test, mask = flipped_digits(args.flip_seed)
    if args.quick:
        keep = np.arange(200)
        train, mask, test = train[keep], mask[keep], test[:200]
    runs = []
    for seed in args.seeds:
        restore = averaged_fits(cfg["repeats"]) if cfg.get("repeats", 1) > 1 else None
        snaps: dict = {}
        try:
            valuation, data, reads = build_valuation(
                name, cfg, train, test, seed, args.budget, args.cache, snaps)
            start = time.perf_counter()
            with parallel_config(n_jobs=args.jobs):
                result = valuation.fit(data).result
            elapsed = time.perf_counter() - start
        finally:
            if restore is not None:
                restore()
        runs.append({"seed": seed, "snaps": snaps, "elapsed": elapsed,
                     "fits": result.meta["fits"], "noise": result.meta.get("noise"),
                     "path": result.meta.get("path")})
        print(f"  {name} seed {seed}: {result.meta['fits']:,} fits in {elapsed:.0f} s "
              f"({result.meta.get('path')})", flush=True)
    rows = []
    for k in reads:
        per_seed = [r["snaps"][k] for r in runs if k in r["snaps"]]
        scores = [detection_scores(_result_like(s["values"], train), mask, dataset=train)
                  for s in per_seed]
        rel = [s["reliability"] for s in per_seed if s["reliability"] is not None]
        between = (spearman(per_seed[0]["values"], per_seed[1]["values"])
                   if len(per_seed) >= 2 else math.nan)
        mean_rel = float(np.mean(rel)) if rel else math.nan
        rows.append({
            "permutations": k,
            "fits": int(np.mean([s["fits"] for s in per_seed])),
            "auroc": float(np.mean([s.auroc for s in scores])),
            "precision_at_k": float(np.mean([s.precision_at_k for s in scores])),
            "spearman_two_seeds": between,
            "reliability": mean_rel,
            "calibration_error": abs(mean_rel - between) if rel and len(per_seed) >= 2
            else math.nan,
            "advice_shown": bool(rel) and mean_rel < LOW_RELIABILITY,
        })
    return {"config": name, "settings": {k: (v if not callable(v) else v.__name__)
                                         for k, v in cfg.items()},
            "runs": [{k: v for k, v in r.items() if k != "snaps"} for r in runs],
            "rows": rows}


def _result_like(values: np.ndarray, train):
    from dvl_jupyter.valuation import ValuationResult

    return ValuationResult(values, indices=train.indices, names=train.names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--budget", type=float, default=1.0,
                        help="fraction of the reference run's fits (1.0: ~39,000)")
    parser.add_argument("--flip-seed", type=int, default=12345)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache", default=None, help="a cache directory (default: none)")
    parser.add_argument("--quick", action="store_true",
                        help="200 points, 5%% of the budget: checks the script, not the values")
    parser.add_argument("--out", default="out/bench_quality.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.budget = min(args.budget, 0.05)
    print(f"# bench_quality: flipped digits (10%, flip seed {args.flip_seed}), seeds "
          f"{args.seeds}, budget {args.budget:g} x the reference run, {args.jobs} jobs")
    report = []
    for name in args.configs:
        print(f"{name}:", flush=True)
        report.append(run_config(name, args))
        for row in report[-1]["rows"]:
            print(f"  {row['permutations']:>4} permutations ({row['fits']:>6,} fits): "
                  f"AUROC {row['auroc']:.3f}  precision@k {row['precision_at_k']:.3f}  "
                  f"two seeds' Spearman {row['spearman_two_seeds']:+.3f}  reliability "
                  f"{row['reliability']:+.3f}  |diff| {row['calibration_error']:.3f}  "
                  f"advice {'yes' if row['advice_shown'] else 'no'}", flush=True)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
