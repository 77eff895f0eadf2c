"""pyDVL's reference notebook, run as written with only its imports changed: its wall time.

The notebook's code cells (``tests/data/shapley_skorch_notebook.txt``) with each pyDVL and
``support`` import replaced through the mapping of ``tests/reference_notebook.py`` (the
README's table), executed headless in a fresh kernel (nbclient, as ``make demo`` does) whose
working directory is ``--out``. Without ``--ci`` the kernel has no ``CI`` variable, so this is
the notebook's full run: all 1,257 training images, 24 epochs, ``MinUpdates(100)``,
``n_jobs = 6`` as the notebook says (about 5 minutes of both cores here). The notebook's
``filecache`` keeps the result in ``OUT/shapley_skorch_result.npz``: a second run with the
same ``--out`` loads it instead of computing, so the default ``--out`` is a fresh temporary
directory.

    .venv/bin/python benchmarks/bench_reference_notebook.py          # the full run
    .venv/bin/python benchmarks/bench_reference_notebook.py --ci     # tiny settings, seconds

It prints the wall time of the whole notebook (kernel start included), of each cell that took
longer than a second, and what the valuation did (points valued, fits, path, how it ended).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT_FILE = "shapley_skorch_result.npz"

# Run after the notebook, outside the timed cells: what the valuation did.
REPORT = """
import json as _json
print("REPORT " + _json.dumps({
    "points": len(result), "training points": len(train),
    **{k: result.meta.get(k) for k in ("path", "fits", "evaluations", "cache_hits",
                                       "permutations", "ended", "elapsed_s")},
}))
"""


def _cell_seconds(cell) -> float | None:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = dt.datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def run(out: Path, ci: bool, timeout: int) -> int:
    sys.path.insert(0, str(ROOT))
    from dvl_jupyter import demo
    from tests import reference_notebook as ref

    if (out / RESULT_FILE).exists():
        print(f"note: {out / RESULT_FILE} exists, so the notebook loads it instead of "
              "computing; use another --out (or delete it) for a full run")
    nb = ref.notebook(extra_cells=[REPORT])
    start = time.perf_counter()
    demo.execute(nb, out, timeout=timeout, ci=ci)
    wall = time.perf_counter() - start

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    if errors:
        e = errors[0]
        print(f"the notebook failed: {e.get('ename')}: {e.get('evalue')}", file=sys.stderr)
        return 1
    report = {}
    for o in nb.cells[-1].get("outputs", []):
        for line in o.get("text", "").splitlines():
            if line.startswith("REPORT "):
                report = json.loads(line[len("REPORT "):])
    notebook_cells = nb.cells[:-1]
    print(f"reference notebook ({'CI settings' if ci else 'full run'}), "
          f"{len(notebook_cells)} code cells: {wall:.1f} s wall, kernel start included")
    for number, cell in enumerate(notebook_cells, start=1):
        seconds = _cell_seconds(cell)
        if seconds is not None and seconds >= 1.0:
            first = cell.source.splitlines()[0][:60]
            print(f"  cell {number:2d}: {seconds:7.1f} s  {first}")
    print("valuation: " + ", ".join(f"{k} {v}" for k, v in report.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ci", action="store_true",
                        help="set CI=1: the notebook's tiny settings (10 points, 1 epoch, "
                             "MaxChecks(1)), a quick check that everything runs")
    parser.add_argument("--out", type=Path, default=None,
                        help="kernel working directory, kept (default: a fresh temporary one)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        return run(args.out.absolute(), args.ci, args.timeout)
    with tempfile.TemporaryDirectory(prefix="dvl-reference-") as tmp:
        return run(Path(tmp), args.ci, args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
