"""The renderer's unit tests (vitest, in labextension/test/), run from pytest so that one
``make test`` reports everything."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from .conftest import REQUIRED, ROOT

LABEXT = ROOT / "labextension"
VITEST = LABEXT / "node_modules" / ".bin" / "vitest"
TSC = LABEXT / "node_modules" / ".bin" / "tsc"
ENV = dict(os.environ, CI="true", NO_COLOR="1", FORCE_COLOR="0")


def _need_node_packages():
    if not VITEST.exists() or not TSC.exists() or shutil.which("node") is None:
        message = "node packages not installed: cd labextension && npm ci (make test does it)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)


def test_typescript_type_checks_the_sources_and_the_tests():
    """vitest strips types without checking them, and the build's tsconfig covers src/ only:
    this is ``npm run typecheck`` (tsconfig.test.json: src/, test/ and the vitest config)."""
    _need_node_packages()
    run = subprocess.run(
        [str(TSC), "-p", "tsconfig.test.json"],
        cwd=LABEXT,
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-8000:]


def test_vitest_unit_tests():
    _need_node_packages()
    run = subprocess.run(
        [str(VITEST), "run"], cwd=LABEXT, capture_output=True, text=True, timeout=600, env=ENV
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-8000:]
    passed = re.search(r"Tests\s+(\d+) passed", output)
    assert passed and int(passed.group(1)) >= 30, output[-3000:]


def test_jupyter_lists_the_extension_enabled_and_ok():
    import sys
    from pathlib import Path

    jupyter = Path(sys.executable).with_name("jupyter")
    run = subprocess.run([str(jupyter), "labextension", "list"], capture_output=True,
                         text=True, timeout=120, env=dict(os.environ, NO_COLOR="1"))
    listing = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)
    line = next((x for x in listing.splitlines() if "dvl-jupyter" in x), None)
    if line is None and not REQUIRED:
        pytest.skip("the extension is not built here: make labextension")
    assert line is not None, listing
    assert "enabled" in line and "OK" in line, line
