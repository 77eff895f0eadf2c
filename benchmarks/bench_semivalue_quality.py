"""MSR-Banzhaf beside TMC-Shapley on flipped digits, at equal numbers of fits (issue 13).

The flipped-digits benchmark of ``bench_quality.py`` (10% of the 1,257 training labels flipped,
each to another class, drawn once from ``--flip-seed``; scored on the 540 test images): how
well do the lowest values find the flipped points (AUROC, precision at k = the number
flipped), how much do two seeds agree (Spearman), and what does the run's own split-half
reliability (``result.meta["reliability"]``) say, for MSR-Banzhaf and for TMC-Shapley read at
the same numbers of fits (default 500, 1,000 and 2,000), two seeds each.

Configuration (models, scorers and data built by ``bench_quality``'s own helpers):

- ``cnn``: the reference CNN (SimpleCNN in skorch, 24 epochs, batch 128, Adam, lr 0.01) on
  the fast path, test accuracy, coupled training (the engine's default);
- ``logreg``: ``LogisticRegression(max_iter=500)`` on flattened pixels, test accuracy
  (``bench_quality``'s ``logreg`` configuration: deterministic training, one-by-one fits);
- ``MSRBanzhafValuation`` with its default rounds; ``TMCShapleyValuation`` with
  ``RelativeTruncation(0.05, 0.3)``.

How the fits are counted: every run counts the fits of the full set and the training-noise
probe (the same for both methods) and then its own. MSR-Banzhaf uses every fit it makes. TMC
is walked one permutation at a time (a stopping criterion that asks for one more permutation
at a time, so that its values can be read after each) with rounds kept full; the prefixes a
round computes past the step where its walk truncates are not counted (they are not counted
in an ordinary run of many walks side by side either): TMC's figure is the fits its values rest
on, ``fits_computed`` all it computed. Each read takes the snapshot (one per round, or per
permutation for TMC) whose count is nearest to the target; the JSON has the exact counts.

Usage::

    .venv/bin/python benchmarks/bench_semivalue_quality.py              # both models, 2 jobs
    .venv/bin/python benchmarks/bench_semivalue_quality.py --models logreg --reads 500 1000
    .venv/bin/python benchmarks/bench_semivalue_quality.py --quick      # a smoke test

Results also go to ``out/bench_semivalue_quality.json``. Nothing is tuned to the data: the
flipped labels, the models, the truncation and the read points are fixed in advance, the same
for both methods and every seed.
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

from bench_quality import CONFIGS, _result_like, build_utility, flipped_digits  # noqa: E402

MODELS = {"cnn": {**CONFIGS["coupled-acc"], "coupled": True}, "logreg": CONFIGS["logreg"]}
METHODS = ("msr-banzhaf", "tmc")
NEVER = 10**9  # the criteria's budget: runs end by the snapshot callback's stop


def _counting_truncation():
    """RelativeTruncation(0.05, 0.3) that counts the steps walks take (the prefixes used)."""
    from dvl_jupyter.valuation import RelativeTruncation

    class Counted(RelativeTruncation):
        steps = 0  # a class attribute: the policy's repr and spec stay RelativeTruncation's

        def should_truncate(self, step, value, n, total):
            type(self).steps += 1
            return super().should_truncate(step, value, n, total)

    return Counted(0.05, 0.3), Counted


def run_one(model: str, method: str, seed: int, train, test, reads: list[int]) -> dict:
    from dvl_jupyter.valuation import (
        MinUpdates,
        MSRBanzhafValuation,
        TMCShapleyValuation,
        ValuationCallback,
    )

    utility, data = build_utility(MODELS[model], train, test, cache=None)
    target = max(reads)
    snaps: list[dict] = []
    counter = None

    class Snapshot(ValuationCallback):
        base = 0

        def on_stage(self, stats):
            if stats.stage == "running":
                self.base = stats.fits  # the full set and the noise probe

        def on_update(self, result, stats):
            used = stats.fits if counter is None else self.base + counter.steps
            snaps.append({"fits": int(used), "fits_computed": int(stats.fits),
                          "samples": int(result.meta.get("samples") or stats.permutations),
                          "values": result.values.copy(),
                          "reliability": result.meta.get("reliability")})
            if used >= target:
                valuation.stop()

    if method == "tmc":
        class OneAtATime(MinUpdates):
            """MinUpdates that lets TMC walk one permutation at a time."""

            def updates_needed(self, result):
                needed = super().updates_needed(result)
                return None if needed is None else min(needed, 1)

        truncation, counter = _counting_truncation()
        valuation = TMCShapleyValuation(utility, truncation=truncation,
                                        is_done=OneAtATime(NEVER), seed=seed,
                                        callbacks=[Snapshot()])
    else:
        valuation = MSRBanzhafValuation(utility, is_done=MinUpdates(NEVER), seed=seed,
                                        callbacks=[Snapshot()])
    start = time.perf_counter()
    result = valuation.fit(data).result
    elapsed = time.perf_counter() - start
    picked = {}
    for k in reads:
        if snaps:
            picked[k] = min(snaps, key=lambda s: (abs(s["fits"] - k), s["fits"]))
    print(f"  {model} {method} seed {seed}: {snaps[-1]['fits'] if snaps else 0:,} fits used "
          f"({result.meta['fits']:,} computed) in {elapsed:.0f} s ({result.meta.get('path')})",
          flush=True)
    return {"seed": seed, "picked": picked, "elapsed": elapsed, "fits": result.meta["fits"],
            "noise": result.meta.get("noise"), "path": result.meta.get("path"),
            "coupled_training": utility.coupled_training, "data": data}


def rows_of(model: str, method: str, runs: list[dict], reads: list[int], mask) -> list[dict]:
    from dvl_jupyter.valuation import detection_scores
    from dvl_jupyter.valuation.diagnostics import spearman

    rows = []
    for k in reads:
        per_seed = [r["picked"][k] for r in runs if k in r["picked"]]
        data = runs[0]["data"]
        scores = [detection_scores(_result_like(s["values"], data), mask, dataset=data)
                  for s in per_seed]
        rel = [s["reliability"] for s in per_seed
               if s["reliability"] is not None and not math.isnan(s["reliability"])]
        rows.append({
            "model": model, "method": method, "read_at": k,
            "fits": [s["fits"] for s in per_seed],
            "fits_computed": [s["fits_computed"] for s in per_seed],
            "samples": [s["samples"] for s in per_seed],
            "auroc": float(np.mean([s.auroc for s in scores])),
            "auroc_per_seed": [float(s.auroc) for s in scores],
            "precision_at_k": float(np.mean([s.precision_at_k for s in scores])),
            "spearman_two_seeds": (float(spearman(per_seed[0]["values"], per_seed[1]["values"]))
                                   if len(per_seed) >= 2 else math.nan),
            "reliability": float(np.mean(rel)) if rel else math.nan,
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--reads", nargs="+", type=int, default=[500, 1000, 2000],
                        help="fit counts at which the values are read")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--flip-seed", type=int, default=12345)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="200 points, reads at 40 and 80 fits: checks the script, not "
                             "the values")
    parser.add_argument("--out", default="out/bench_semivalue_quality.json")
    args = parser.parse_args(argv)
    from joblib import parallel_config

    train, test, mask = flipped_digits(args.flip_seed)
    if args.quick:
        keep = np.arange(200)
        train, mask, test = train[keep], mask[keep], test[:200]
        args.reads = [40, 80]
    reads = sorted(set(args.reads))
    print(f"# bench_semivalue_quality: flipped digits ({int(np.sum(mask))} of {len(mask)} "
          f"flipped, flip seed {args.flip_seed}), seeds {args.seeds}, reads {reads} fits, "
          f"{args.jobs} jobs", flush=True)
    report: dict[str, Any] = {"flip_seed": args.flip_seed, "n_train": len(mask),
                              "n_flipped": int(np.sum(mask)), "seeds": args.seeds,
                              "jobs": args.jobs, "quick": args.quick, "runs": [], "rows": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for model in args.models:
        for method in args.methods:
            with parallel_config(n_jobs=args.jobs):
                runs = [run_one(model, method, s, train, test, reads) for s in args.seeds]
            report["rows"] += rows_of(model, method, runs, reads, mask)
            report["runs"] += [{"model": model, "method": method,
                                **{k: v for k, v in r.items() if k not in ("picked", "data")}}
                               for r in runs]
            out.write_text(json.dumps(report, indent=1, default=float))
    print(f"\n{'model':<7} {'method':<12} {'fits':>5} {'(used per seed)':>16} {'AUROC':>6} "
          f"{'P@k':>6} {'Spearman':>9} {'reliab.':>8}")
    for r in report["rows"]:
        used = "/".join(f"{f}" for f in r["fits"])
        print(f"{r['model']:<7} {r['method']:<12} {r['read_at']:>5} {used:>16} "
              f"{r['auroc']:>6.3f} {r['precision_at_k']:>6.3f} "
              f"{r['spearman_two_seeds']:>+9.3f} {r['reliability']:>+8.3f}")
    print(f"(written to {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
