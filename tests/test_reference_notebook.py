"""pyDVL's reference notebook runs as written, with only its imports changed.

The notebook's code cells are read from its text export (a copy in ``tests/data/``), each
import from pyDVL or its ``support`` package is replaced through the fixed mapping
``IMPORTS`` (``tests/reference_notebook.py``; the README's table shows the same pairs), and
the cells run in a real kernel with ``CI`` set, which selects the notebook's own tiny settings
(10 points, 1 epoch, ``MaxChecks(1)``). ``benchmarks/bench_reference_notebook.py`` runs the same
notebook without ``CI``: the full reference run.
"""

from __future__ import annotations

import inspect
import re

import pytest

from dvl_jupyter import datasets
from tests import reference_notebook as ref

README = ref.ROOT / "README.md"
README_SECTION = "## pyDVL's reference notebook, import by import"

# What the kernel runs after the notebook: the result has one value per training point.
CHECK = """
import numpy as np
from dvl_jupyter.valuation import ValuationResult
assert isinstance(result, ValuationResult), type(result)
assert len(train) == 10, len(train)
assert len(result) == len(train), (len(result), len(train))
assert sorted(result.indices.tolist()) == sorted(train.indices.tolist())
assert np.all(np.isfinite(result.values)), result.values
print("values:", len(result), "for", len(train), "training points")
"""


def test_copy_equals_the_shared_reference():
    if not ref.SHARED_REFERENCE.exists():
        pytest.skip(f"no {ref.SHARED_REFERENCE} beside this checkout (a clean clone)")
    assert ref.REFERENCE.read_bytes() == ref.SHARED_REFERENCE.read_bytes(), (
        f"{ref.REFERENCE} differs from {ref.SHARED_REFERENCE}: copy the reference again")


def test_code_cells_of_the_text_export():
    cells = ref.code_cells(ref.REFERENCE.read_text(encoding="utf-8"))
    firsts = [c.splitlines()[0] for c in cells]
    assert firsts == [
        "from __future__ import annotations",
        "train, test = load_digits_dataset(",
        "fig, axes = plt.subplots(1, 4, figsize=(12, 3))",
        "# Reduce computation time in CI",
        "from skorch import NeuralNetClassifier",
        'print(f"Training accuracy: {model.score(*train.data().cpu()):.3f}")',
        "from pydvl.valuation.scorers import SkorchSupervisedScorer",
        "from pydvl.valuation.samplers import RelativeTruncation",
        "if is_CI:",
        "from joblib import parallel_config",
        "bottom = result.sort()[:10]",
    ]
    lasts = [c.splitlines()[-1] for c in cells]
    assert lasts[0] == "torch.manual_seed(random_state);"  # not the "## The dataset" heading
    assert lasts[2] == lasts[-1] == "plt.show();"
    assert lasts[9] == "    result = cached_fit(train)"


def test_markdown_headings_and_prose_end_a_cell():
    text = "\n".join([
        "# Title", "", "In [None]:", "# a comment", "x = 1", "", "y = 2", "",
        "## A heading", "", "Some prose, not code.", "", "In [None]:", "%matplotlib inline",
        "", "z = 3", "", "The end.",
    ])
    assert ref.code_cells(text) == ["# a comment\nx = 1\n\ny = 2", "%matplotlib inline\n\nz = 3"]


def test_only_import_lines_change():
    original = ref.code_cells(ref.REFERENCE.read_text(encoding="utf-8"))
    rewritten = ref.rewritten_cells()
    assert len(rewritten) == len(original)
    changed = []
    for before, after in zip(original, rewritten, strict=True):
        a, b = before.splitlines(), after.splitlines()
        assert len(a) == len(b)
        changed += [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    assert sorted(x.strip() for x, _ in changed) == sorted(ref.IMPORTS)
    for x, y in changed:
        indent = x[: len(x) - len(x.lstrip())]
        assert y == indent + ref.IMPORTS[x.strip()]
    # nothing of pyDVL or its support package is left
    assert not re.search(r"\b(pydvl|support)\.", "\n".join(rewritten).replace(
        "dvl_jupyter.support", ""))


def test_every_counterpart_imports():
    for statement in ref.IMPORTS.values():
        exec(statement, {})  # noqa: S102 - our own fixed import lines


def test_unmapped_pydvl_imports_are_refused():
    with pytest.raises(ValueError, match="not in IMPORTS"):
        ref.rewrite_imports("if True:\n    from pydvl.valuation import Dataset")
    with pytest.raises(ValueError, match="not in IMPORTS"):
        ref.rewrite_imports("import support.common")
    assert ref.rewrite_imports("import os\nx = 'from pydvl import x'") == \
        "import os\nx = 'from pydvl import x'"


def readme_table() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    assert README_SECTION in text, f"README has no section {README_SECTION!r}"
    section = text.split(README_SECTION, 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*`([^`]+)`\s*\|\s*`([^`]+)`\s*\|\s*$", section, flags=re.M)
    return [(a, b) for a, b in rows]


def test_readme_table_is_the_mapping():
    assert readme_table() == list(ref.IMPORTS.items())


def test_load_digits_dataset_is_load_digits():
    assert datasets.load_digits_dataset is datasets.load_digits
    params = inspect.signature(datasets.load_digits_dataset).parameters
    assert list(params)[:3] == ["train_size", "random_state", "device"]
    assert "load_digits_dataset" in datasets.__all__


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    from dvl_jupyter import demo

    out = tmp_path_factory.mktemp("reference")
    nb = ref.notebook(extra_cells=[CHECK])
    demo.execute(nb, out, timeout=600, ci=True)
    return nb, out


def outputs_of(cell):
    return cell.get("outputs", [])


@pytest.mark.slow
def test_the_notebook_runs_in_a_kernel_with_ci(executed):
    nb, out = executed
    errors = [o for c in nb.cells for o in outputs_of(c) if o.output_type == "error"]
    assert errors == []
    text = "".join(o.get("text", "") for o in outputs_of(nb.cells[-1]))
    assert "values: 10 for 10 training points" in text
    # filecache is the notebook's pass-through under CI: nothing is written
    assert not list(out.glob("shapley_skorch_result*"))


@pytest.mark.slow
def test_the_plot_cells_draw(executed):
    nb, _ = executed
    plot_cells = [c for c in nb.cells if "plot_result_errors(" in c.source
                  or "ax.imshow(" in c.source]
    assert len(plot_cells) == 2
    for cell in plot_cells:
        assert any("image/png" in o.get("data", {}) for o in outputs_of(cell)), cell.source


@pytest.mark.slow
def test_the_accuracy_cell_prints_scores(executed):
    nb, _ = executed
    (cell,) = [c for c in nb.cells if c.source.startswith('print(f"Training accuracy')]
    text = "".join(o.get("text", "") for o in outputs_of(cell))
    assert re.fullmatch(r"Training accuracy: [01]\.\d{3}\nTest accuracy: [01]\.\d{3}\n", text), \
        text


def test_the_benchmark_script_has_help():
    import subprocess
    import sys

    script = ref.ROOT / "benchmarks" / "bench_reference_notebook.py"
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--ci" in out.stdout and "full run" in out.stdout
