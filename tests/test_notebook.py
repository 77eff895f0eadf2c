"""The demo notebook, executed headless as `make demo` does, with the tiny CI settings."""

from __future__ import annotations

import base64
import json
import re

import jsonschema
import nbformat
import pytest

from dvl_jupyter import demo
from dvl_jupyter.display import MIME_TYPE, load_schema

pytestmark = pytest.mark.slow

CHECK = """
assert len(result) == len(train) == 10, (len(result), len(train))
assert list(result.sort(key="index").indices) == list(train.indices)
print("values:", len(result), result.meta["ended"])
"""


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    nb = nbformat.read(demo.NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CHECK))
    demo.execute(nb, out, timeout=600, ci=True)
    return nb, out


def tagged(nb, tag):
    (cell,) = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    return cell


def test_runs_without_errors(executed):
    nb, _ = executed
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    assert "values: 10 done" in nb.cells[-1].outputs[0].text


def test_shapley_cell_displays_the_result(executed):
    nb, _ = executed
    cell = tagged(nb, "shapley")
    (bundle,) = [o.data for o in cell.outputs if MIME_TYPE in o.get("data", {})]
    payload = bundle[MIME_TYPE]
    jsonschema.validate(payload, load_schema())
    assert len(payload["indices"]) == payload["summary"]["n"] == 10
    assert len(payload["images"]) == 10 and all(payload["images"])  # digits are images
    # the picture is stored once, inside the HTML; the static part (before the payload and
    # the renderer's script, which VS Code and Colab run) has no script of its own
    static = bundle["text/html"].split('<script type="application/json"')[0]
    png = re.search(r'class="dvl-png"[^>]*src="data:image/png;base64,([^"]+)"', static)
    assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG")
    assert "<table" in static and "<script" not in static


def test_the_finished_progress_view_left_a_static_record(executed):
    """The magic's live view was replaced by a record that reads the same in any viewer,
    with or without a kernel; no widget of it is left to be "not found" later."""
    nb, _ = executed
    cell = tagged(nb, "shapley")
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for o in cell.outputs), "a widget is left in the %%shapley cell"
    (record,) = [o.data for o in cell.outputs
                 if "dvl-run-record" in o.get("data", {}).get("text/html", "")]
    assert record["text/plain"].startswith("TMC-Shapley: Done")
    assert "evaluations" in record["text/plain"] and "path: " in record["text/plain"]
    # the only widget outputs left are the panel's (it stays live), and every model they
    # show is in the saved widget state (nbclient also keeps closed widgets' state, which no
    # output refers to)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    views = [(c.metadata.get("tags", [""])[0], o.data["application/vnd.jupyter.widget-view+json"])
             for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert [tag for tag, _ in views] == ["panel"]
    assert all(view["model_id"] in state for _, view in views)
    labels = [m["state"].get("value", "") for m in state.values()
              if m["model_name"] == "LabelModel"]
    assert sum(label.startswith("Done (") for label in labels) >= 1  # the panel's run ended


def test_panel_ran_from_the_cache(executed):
    nb, _ = executed
    text = "".join(o.get("text", "") for o in tagged(nb, "panel_run").outputs)
    assert "Done: values of 10 points" in text
    match = re.search(r"(\d+) evaluations from the cache, (\d+) models fitted", text)
    assert match, text
    hits, fitted = (int(g) for g in match.groups())
    assert hits > 0 and fitted < hits  # the magic's run filled the cache


def test_figures_and_files_are_written(executed):
    nb, out = executed
    # what an earlier run left is replaced, not kept
    (out / "figures").mkdir(exist_ok=True)
    (out / "figures" / "stale.png").write_bytes(b"old")
    (out / "valuation.json").write_text('{"stale": true}')
    written = demo.extract(nb, out)
    assert not (out / "figures" / "stale.png").exists()
    assert "stale" not in json.loads((out / "valuation.json").read_text())
    names = {p.name for p in written}
    assert {"lowest_values.png", "image_grid_lowest.png", "image_grid_highest.png",
            "shapley.png", "valuation.json"} <= names
    assert (out / "result.npz").exists() and (out / ".dvl_cache" / "runs").is_dir()
