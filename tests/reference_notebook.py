"""pyDVL's reference notebook as text, and the same notebook with only its imports changed.

The reference ("Computing Shapley values for a torch model", pyDVL's
``shapley_skorch_notebook``) is kept as the plain-text export the project was given: markdown,
and code cells each introduced by a line ``In [None]:``. :data:`IMPORTS` maps each of its
imports from pyDVL or from pyDVL's notebook ``support`` package to the dvl_jupyter import that
replaces it; the README's table lists the same pairs (a test compares them). Nothing else in
the notebook is changed: :func:`rewrite_imports` touches import statements only, found with
``ast`` so that a string or a comment that looks like one is left alone.

Used by ``tests/test_reference_notebook.py`` (the notebook in a real kernel, with ``CI`` set)
and ``benchmarks/bench_reference_notebook.py`` (the full run).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NAME = "shapley_skorch_notebook.txt"
#: The copy committed with the tests (CI runs on a clean clone, without ../shared).
REFERENCE = ROOT / "tests" / "data" / NAME
#: The project's reference, beside the repository; the copy must equal it where it exists.
SHARED_REFERENCE = ROOT.parent / "shared" / "reference" / NAME

CELL_MARK = "In [None]:"

#: Each import of the reference notebook that names pyDVL or its notebooks' ``support``
#: package, and its dvl_jupyter counterpart. Other imports (torch, skorch, joblib...) stay.
IMPORTS: dict[str, str] = {
    "from support.common import filecache": "from dvl_jupyter.support import filecache",
    "from support.datasets import load_digits_dataset":
        "from dvl_jupyter.datasets import load_digits_dataset",
    "from pydvl.reporting.plots import plot_result_errors":
        "from dvl_jupyter.plots import plot_result_errors",
    "from support.banzhaf import SimpleCNN": "from dvl_jupyter.models import SimpleCNN",
    "from pydvl.valuation.scorers import SkorchSupervisedScorer":
        "from dvl_jupyter.valuation import SkorchSupervisedScorer",
    "from pydvl.valuation.stopping import MinUpdates":
        "from dvl_jupyter.valuation import MinUpdates",
    "from pydvl.valuation.utility import ModelUtility":
        "from dvl_jupyter.valuation import ModelUtility",
    "from pydvl.valuation.samplers import RelativeTruncation":
        "from dvl_jupyter.valuation import RelativeTruncation",
    "from pydvl.valuation.stopping import MaxChecks":
        "from dvl_jupyter.valuation import MaxChecks",
    "from pydvl.valuation.methods import TMCShapleyValuation":
        "from dvl_jupyter.valuation import TMCShapleyValuation",
}

#: Top-level packages whose imports must all be in IMPORTS.
FOREIGN = ("pydvl", "support")


def _python(code: str) -> str:
    """``code`` with IPython's line magics (``%matplotlib inline``) made plain Python."""
    lines = []
    for line in code.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = line[: len(line) - len(stripped)] + "pass"
        lines.append(line)
    return "\n".join(lines)


def _compiles(code: str) -> bool:
    try:
        compile(_python(code), "<cell>", "exec")
    except SyntaxError:
        return False
    return True


def _comments_only(paragraph: str) -> bool:
    return all(line.lstrip().startswith("#") for line in paragraph.splitlines())


def code_cells(text: str) -> list[str]:
    """The code cells of the text export, in order.

    A cell starts after a line ``In [None]:`` and runs to the next such line, but the export
    puts the following markdown right after it, separated only by a blank line. So a cell is
    read paragraph by paragraph (blank-line separated, since code has blank lines too) for as
    long as the code so far still compiles; the first paragraph that does not (prose), or a
    paragraph of ``#`` lines after the first (a markdown heading, which would compile as a
    comment), starts the markdown.
    """
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if line.strip() == CELL_MARK:
            blocks.append([])
        elif blocks:
            blocks[-1].append(line)
    cells = []
    for block in blocks:
        paragraphs, current = [], []
        for line in [*block, ""]:
            if line.strip():
                current.append(line)
            elif current:
                paragraphs.append("\n".join(current))
                current = []
        code = ""
        for k, paragraph in enumerate(paragraphs):
            candidate = paragraph if k == 0 else f"{code}\n\n{paragraph}"
            if (k > 0 and _comments_only(paragraph)) or not _compiles(candidate):
                break
            code = candidate
        if not code:
            raise ValueError(f"a cell after {CELL_MARK!r} holds no code: {block[:3]!r}")
        cells.append(code)
    return cells


def _imports(code: str) -> list[ast.Import | ast.ImportFrom]:
    return [n for n in ast.walk(ast.parse(_python(code)))
            if isinstance(n, (ast.Import, ast.ImportFrom))]


def _top_modules(node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.ImportFrom):
        return {(node.module or "").split(".")[0]}
    return {alias.name.split(".")[0] for alias in node.names}


def rewrite_imports(code: str, used: set[str] | None = None) -> str:
    """``code`` with each import in :data:`IMPORTS` replaced, indentation kept.

    Every other line is left as it is. ``used`` (when given) collects the keys replaced.

    Raises
    ------
    ValueError
        For an import from pyDVL or ``support`` that :data:`IMPORTS` does not map (the
        reference changed: add the pair here and to the README's table), or one that spans
        several lines.
    """
    lines = code.splitlines()
    for node in _imports(code):
        text = lines[node.lineno - 1]
        statement = text.strip()
        if statement in IMPORTS:
            if node.end_lineno != node.lineno:
                raise ValueError(f"import spans several lines: {statement!r}")
            lines[node.lineno - 1] = text[: len(text) - len(text.lstrip())] + IMPORTS[statement]
            if used is not None:
                used.add(statement)
        elif _top_modules(node) & set(FOREIGN):
            raise ValueError(
                f"import {statement!r} of the reference is not in IMPORTS; add its "
                "dvl_jupyter counterpart there and to the README's table"
            )
    return "\n".join(lines)


def rewritten_cells(text: str | None = None) -> list[str]:
    """The reference's code cells with their imports rewritten (all of IMPORTS must be used)."""
    if text is None:
        text = REFERENCE.read_text(encoding="utf-8")
    used: set[str] = set()
    cells = [rewrite_imports(cell, used) for cell in code_cells(text)]
    unused = set(IMPORTS) - used
    if unused:
        raise ValueError(f"IMPORTS has entries the reference does not import: {sorted(unused)}")
    return cells


def notebook(extra_cells: list[str] | None = None) -> Any:
    """An nbformat notebook of the rewritten cells, plus ``extra_cells`` (checks) at the end."""
    import nbformat

    cells = [*rewritten_cells(), *(extra_cells or [])]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb
