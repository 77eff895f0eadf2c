"""The main job, headless: TMC-Shapley values of the reference CNN on the bundled digits.

``python -m dvl_jupyter.demo --out out`` (what ``make demo`` runs) follows the reference
notebook's workflow with small settings, so it finishes in minutes on two cores, and writes
``out/result.npz`` (the ValuationResult), ``out/lowest_values.png`` (the 10 lowest values with
95% intervals) and ``out/image_grid.png`` (the lowest- and highest-valued images).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dvl_jupyter.demo", description=__doc__)
    parser.add_argument("--out", default="out", help="output directory (default: out)")
    parser.add_argument("--n-train", type=int, default=100, help="training points to value")
    parser.add_argument("--n-test", type=int, default=200, help="test points to score on")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--updates", type=int, default=10, help="MinUpdates(n)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=36)
    parser.add_argument("--batched", default="auto", choices=["auto", "on", "off"])
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import torch
    from joblib import parallel_config
    from skorch import NeuralNetClassifier

    from dvl_jupyter.datasets import load_digits
    from dvl_jupyter.models import SimpleCNN
    from dvl_jupyter.plots import plot_image_grid, plot_result_errors
    from dvl_jupyter.valuation import (
        MinUpdates,
        ModelUtility,
        RelativeTruncation,
        SkorchSupervisedScorer,
        TMCShapleyValuation,
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    train, test = load_digits(train_size=0.7, random_state=args.seed)
    train, test = train[: args.n_train], test[: args.n_test]
    model = NeuralNetClassifier(
        SimpleCNN, criterion=torch.nn.CrossEntropyLoss, lr=0.01, max_epochs=args.epochs,
        batch_size=128, train_split=None, optimizer=torch.optim.Adam, verbose=False,
    )
    scorer = SkorchSupervisedScorer(model, test_data=test, default=0.0, range=(0, 1))
    utility = ModelUtility(model=model, scorer=scorer, cache=out / "cache")
    valuation = TMCShapleyValuation(
        utility,
        truncation=RelativeTruncation(rtol=0.05, burn_in_fraction=0.3),
        is_done=MinUpdates(args.updates),
        progress=True,
        seed=args.seed,
        batched={"auto": "auto", "on": True, "off": False}[args.batched],
    )
    start = time.perf_counter()
    with parallel_config(n_jobs=args.jobs):
        result = valuation.fit(train).result
    elapsed = time.perf_counter() - start

    result.save(out / "result.npz")
    bottom = result.sort()[:10]
    ax = plot_result_errors(bottom, level=0.05, title="Images with low values", xlabel="Image",
                            ylabel="Shapley value")
    ax.figure.savefig(out / "lowest_values.png", dpi=100, bbox_inches="tight")
    fig = plot_image_grid(result, train, k=10, which="bottom", title="Lowest-valued images")
    fig.savefig(out / "image_grid_lowest.png", dpi=100, bbox_inches="tight")
    fig = plot_image_grid(result, train, k=10, which="top", title="Highest-valued images")
    fig.savefig(out / "image_grid_highest.png", dpi=100, bbox_inches="tight")
    meta = result.meta
    print(
        f"{len(result)} points valued in {elapsed:.1f} s: {meta['evaluations']} fits, "
        f"{meta['cache_hits']} cache hits, {meta['permutations']} permutations ({meta['path']}). "
        f"Outputs in {out}/"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
