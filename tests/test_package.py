"""The package's shape: exported names, no Jupyter in the engine, progress bar behaviour."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

import dvl_jupyter.valuation as valuation


def test_engine_imports_nothing_from_jupyter():
    code = (
        "import sys, dvl_jupyter.valuation as v\n"
        "names = ('IPython', 'ipywidgets', 'ipykernel', 'traitlets')\n"
        "bad = [m for m in names if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the engine imported {out.stdout.strip()}"


def test_exported_members():
    exported = set(valuation.__all__)
    public = {n for n in vars(valuation) if not n.startswith("_") and n[0].isupper()}
    assert public <= exported, f"public but not in __all__: {public - exported}"
    for name in exported:
        assert hasattr(valuation, name), name
    # pyDVL's names for the reference workflow
    for name in ("ModelUtility", "SkorchSupervisedScorer", "TMCShapleyValuation",
                 "RelativeTruncation", "MinUpdates", "MaxChecks", "ValuationResult"):
        assert name in exported


def test_progress_bar_moves_with_every_evaluation(capsys):
    v = valuation.TMCShapleyValuation(lambda s: float(len(s)), is_done=valuation.MinUpdates(3),
                                      seed=0, progress=True, lockstep=1)
    v.fit(valuation.Dataset(np.zeros((6, 1)), np.zeros(6)))
    err = capsys.readouterr().err
    # tqdm redraws on each evaluation group: far more frames than permutations
    frames = [f for f in err.replace("\r", "\n").split("\n") if "eval" in f]
    assert len(frames) >= 3 * 6
    assert "100%" in frames[-1]
