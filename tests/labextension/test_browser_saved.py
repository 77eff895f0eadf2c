"""A run's progress in a saved notebook: live while it runs, a static record afterwards.

A ``%%shapley`` cell with its progress view on runs in JupyterLab with a real kernel. While it
runs, the view is a live widget; when it ends, the view gives way to a static record of the
run. The notebook is saved and reopened with no kernel: the cell shows the record and the
chart, and no "Error displaying widget". nbconvert's HTML of the same notebook reads the same
words, and no ``VBox(children=...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

from .conftest import LabServer, Page
from .test_browser import (
    RUN_TIMEOUT_MS,
    SETUP,
    lab_command,
    open_in_lab,
    wait_kernel_idle,
    write_notebook,
)

RUN = """\
%%shapley -o result --no-cache --seed 1
model = clf
train, test = train, test
scoring = _slow_accuracy
stopping = MinUpdates(6)
"""
#: A scorer slow enough for the live view to be seen (about 6 s for the run).
SLOW = """\
import time

def _slow_accuracy(model, x, y):
    time.sleep(0.04)
    return model.score(x, y)
"""
PANEL = "import dvl_jupyter\np = dvl_jupyter.panel()\np"


def _no_kernel_copy(lab: LabServer, name: str, copy: str) -> None:
    saved = nbformat.read(lab.root / name, as_version=4)
    saved.metadata["kernelspec"] = {"name": "no-such-kernel", "display_name": "No such kernel"}
    saved.metadata.pop("language_info", None)
    nbformat.write(saved, lab.root / copy)


def _dismiss_kernel_dialog(p: Page) -> None:
    dialog = p.page.locator(".jp-Dialog")
    try:
        dialog.wait_for(timeout=15_000)
        select = dialog.locator("select")
        if select.count():
            select.select_option(label="No Kernel")
        dialog.locator(".jp-mod-accept").click()
    except Exception:  # noqa: BLE001 - no dialog: it opened without a kernel
        pass


def test_progress_is_live_while_running_and_a_record_in_the_saved_notebook(
        lab: LabServer, browser: Any, page: Page, tmp_path: Path):
    write_notebook(lab.root / "progress.ipynb", [SETUP + SLOW, RUN, PANEL])
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = Page(context.new_page())
    try:
        open_in_lab(p, lab, "progress.ipynb")
        wait_kernel_idle(p)
        # not awaited: the command's promise resolves only when every cell has run
        p.page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells');"
                        " }")
        cell = p.page.locator(".jp-CodeCell").nth(1)
        # live: the progress widget shows while the run goes on ...
        cell.locator(".jupyter-widgets").first.wait_for(timeout=RUN_TIMEOUT_MS)
        # ... and gives way to the record when it ends
        record = cell.locator(".dvl-run-record")
        record.wait_for(timeout=RUN_TIMEOUT_MS)
        assert record.inner_text().startswith("TMC-Shapley: Done")
        assert cell.locator(".jupyter-widgets").count() == 0
        cell.locator(".dvl-Valuation .dvl-point").first.wait_for(timeout=60_000)
        p.page.locator(".jp-CodeCell").nth(2).locator(".widget-dropdown").first.wait_for(
            timeout=60_000)
        p.screenshot("progress-record-live-kernel", cell)
        lab_command(p, "docmanager:save")
        p.page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)
    finally:
        context.close()

    saved = nbformat.read(lab.root / "progress.ipynb", as_version=4)
    run_outputs = saved.cells[1].outputs
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for o in run_outputs), "the saved %%shapley cell still refers to a widget"
    lab.shutdown_kernels()
    _no_kernel_copy(lab, "progress.ipynb", "progress-no-kernel.ipynb")
    open_in_lab(page, lab, "progress-no-kernel.ipynb")
    _dismiss_kernel_dialog(page)
    cell = page.page.locator(".jp-CodeCell").nth(1)
    cell.locator(".dvl-run-record").wait_for(timeout=30_000)
    cell.locator(".dvl-Valuation .dvl-point").first.wait_for(timeout=30_000)
    assert "Error displaying widget" not in cell.inner_text()
    assert "TMC-Shapley: Done" in cell.inner_text() and "evaluations" in cell.inner_text()
    page.screenshot("progress-record-reopened-no-kernel", cell)

    # nbconvert's HTML reads the same words, and the panel reads as words too
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(saved)
    (tmp_path / "progress.html").write_text(body, encoding="utf-8")  # to look at by hand
    page.page.set_content(body, wait_until="domcontentloaded")
    text = page.page.locator("body").inner_text()
    assert "TMC-Shapley: Done" in text
    assert "VBox(children" not in text and "HBox(children" not in text
    assert "dvl_jupyter panel" in text
    page.screenshot("progress-record-nbconvert")
