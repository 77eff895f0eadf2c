"""The main job, headless: execute the demo notebook and keep what it produced.

``python -m dvl_jupyter.demo --out out`` (what ``make demo`` runs) executes
``notebooks/shapley_skorch.ipynb`` with nbclient in a fresh kernel whose working directory is
``out/``, so that everything the notebook writes lands there:

- ``out/shapley_skorch.ipynb``: the executed notebook, outputs and widget state included;
- ``out/figures/<cell>.png``: every figure, named after the cell's tag (``lowest_values``,
  ``image_grid_lowest``, ``image_grid_highest``, ``shapley`` for the magic's own display...);
- ``out/valuation.json``: the magic's ``application/vnd.dvl-jupyter.valuation.v1+json``
  payload (what the JupyterLab renderer draws);
- ``out/result.npz``: the ``ValuationResult``, saved by the notebook;
- ``out/.dvl_cache/``: the utility cache, so running the demo again trains no model.

``--ci`` runs it with the tiny settings the notebook uses when ``CI`` is set.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "shapley_skorch.ipynb"
MIME_TYPE = "application/vnd.dvl-jupyter.valuation.v1+json"


def execute(notebook: Path | Any, out: Path, timeout: int = 3600, ci: bool = False) -> Any:
    """Execute a notebook (a path or a ``NotebookNode``, changed in place) in a fresh kernel
    working in ``out``; returns the executed notebook.

    The kernel inherits this process's environment (plus ``CI=1`` with ``ci``), and one
    torch thread per process, which is what two small processes on two cores want. It talks
    to us over local sockets in a temporary directory rather than TCP: nothing to expose, and
    no warning about unencrypted TCP in the demo's output.
    """
    import tempfile

    import nbformat
    from nbclient import NotebookClient
    from traitlets.config import Config

    out.mkdir(parents=True, exist_ok=True)
    nb = notebook if isinstance(notebook, nbformat.NotebookNode) else nbformat.read(
        notebook, as_version=4)
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if ci:
        env["CI"] = "1"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel process inherits it
    try:
        with tempfile.TemporaryDirectory(prefix="dvl-demo-") as sockets:
            ipc = Config({"KernelManager": {"transport": "ipc",
                                            "ip": str(Path(sockets) / "kernel")}})
            client = NotebookClient(
                nb,
                config=ipc,
                kernel_name="python3",
                timeout=timeout,
                resources={"metadata": {"path": str(out)}},
                store_widget_state=True,
            )
            client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def extract(nb: Any, out: Path) -> list[Path]:
    """Write the notebook's figures and the valuation JSON under ``out``; returns the paths.

    What an earlier run left there goes first, so ``out`` never mixes two runs' outputs.
    """
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for old in [*figures.glob("*.png"), out / "valuation.json"]:
        old.unlink(missing_ok=True)
    written: list[Path] = []
    for number, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        stem = tags[0] if tags else f"cell{number:02d}"
        pngs = [png for o in cell.get("outputs", []) if (png := _png_of(o.get("data", {})))]
        for k, png in enumerate(pngs):
            path = figures / (f"{stem}.png" if len(pngs) == 1 else f"{stem}-{k + 1}.png")
            path.write_bytes(base64.b64decode(png))
            written.append(path)
        for o in cell.get("outputs", []):
            payload = o.get("data", {}).get(MIME_TYPE)
            # the first payload is the magic's run; later ones (the panel's) are the same run
            if payload is not None and out / "valuation.json" not in written:
                (out / "valuation.json").write_text(json.dumps(payload, indent=1))
                written.append(out / "valuation.json")
    return written


_INLINE_PNG = re.compile(
    r'<img class="dvl-png"[^>]*\bsrc="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _png_of(data: dict[str, Any]) -> str | None:
    """The base64 PNG of an output: its ``image/png``, or for a valuation result (whose
    bundle stores its picture once, inside its HTML) the image inlined in ``text/html``."""
    if "image/png" in data:
        return data["image/png"]
    if MIME_TYPE in data:
        match = _INLINE_PNG.search(str(data.get("text/html", "")))
        return match.group(1) if match else None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dvl_jupyter.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out", help="output directory (default: out)")
    parser.add_argument("--notebook", default=str(NOTEBOOK), help="notebook to execute")
    parser.add_argument("--ci", action="store_true", help="tiny settings (as with CI=1)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)

    import nbformat

    notebook, out = Path(args.notebook), Path(args.out).absolute()
    if not notebook.exists():
        print(f"no notebook at {notebook}; pass --notebook PATH", file=sys.stderr)
        return 2
    start = time.perf_counter()
    nb = execute(notebook, out, timeout=args.timeout, ci=args.ci)
    nbformat.write(nb, out / notebook.name)
    written = extract(nb, out)
    print(f"Executed {notebook.name} in {time.perf_counter() - start:.0f} s; wrote "
          f"{out / notebook.name}, {len(written)} figures and data files under {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
