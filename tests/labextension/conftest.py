"""Fixtures of the browser tests: a JupyterLab server on 127.0.0.1 and Debian's chromium.

The server runs in a temporary directory with its own settings (no news, no update check)
and the app exposed as ``window.jupyterapp`` so tests can run JupyterLab commands. Chromium
is driven by the python ``playwright`` package, pointed at ``/usr/bin/chromium``: Playwright's
own browser download does not work here and is never attempted.

Without chromium, playwright or the built extension the tests skip, saying what is missing;
with ``DVL_REQUIRE_BROWSER=1`` (set by ``make test``, so in CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DVL_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "out" / "screenshots"
REQUIRED = os.environ.get("DVL_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SERVER_START_TIMEOUT = 90


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found: apt-get install chromium (make test does it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the python playwright package is missing: pip install -e '.[dev]'"
    from jupyter_core.paths import jupyter_path

    if not any(
        (Path(p) / "dvl-jupyter" / "package.json").exists() for p in jupyter_path("labextensions")
    ):
        return "the dvl-jupyter labextension is not installed: run `make labextension`"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if Path(str(item.fspath)).name.startswith("test_browser")]
    for item in ours:
        item.add_marker(pytest.mark.browser)
    reason = _missing() if ours else None
    if reason and not REQUIRED:
        for item in ours:
            item.add_marker(pytest.mark.skip(reason=reason))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LabServer:
    """A running JupyterLab server; ``url(path)`` adds the token."""

    def __init__(self, root: Path, port: int, token: str, process: subprocess.Popen[bytes]):
        self.root = root
        self.port = port
        self.token = token
        self.process = process
        self.base = f"http://127.0.0.1:{port}"

    def url(self, path: str, **query: str) -> str:
        params = "&".join([f"token={self.token}", *(f"{k}={v}" for k, v in query.items())])
        return f"{self.base}/{path.lstrip('/')}?{params}"

    def api(self, path: str, method: str = "GET") -> Any:
        req = urllib.request.Request(
            f"{self.base}/api/{path.lstrip('/')}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - our own server
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Shut down every session and kernel, as a user closing them all would."""
        for session in self.api("sessions"):
            self.api(f"sessions/{session['id']}", method="DELETE")
        for kernel in self.api("kernels"):
            self.api(f"kernels/{kernel['id']}", method="DELETE")


def _write_settings(settings_dir: Path) -> None:
    """No news toast, no update check: screenshots show only the notebook."""
    notification = settings_dir / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    reason = _missing()
    if reason:
        pytest.fail(f"browser tests cannot run: {reason}")
    root = tmp_path_factory.mktemp("lab")
    home = tmp_path_factory.mktemp("lab-home")
    _write_settings(home / "settings")
    port = _free_port()
    token = secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        MPLBACKEND="Agg",
        PYTHONWARNINGS="ignore",  # kernel-side warnings are not what these tests check
    )
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.allow_root=True",  # CI runs as root
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log_path = ROOT / "out" / "jupyterlab-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LabServer(root, port, token, process)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {process.returncode}; see {log_path}")
            try:
                server.api("status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"JupyterLab did not answer in {SERVER_START_TIMEOUT} s; see {log_path}"
                    )
                time.sleep(0.5)
        yield server
    finally:
        try:
            server.shutdown_kernels()
        except Exception:  # noqa: BLE001 - the server may be gone already
            pass
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A browser page, with the dialogs (alert, confirm) and page errors it saw."""

    def __init__(self, page: Any):
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.all_errors: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("pageerror", self._on_error)

    def _on_error(self, exc: Any) -> None:
        """Errors thrown by our extension's code (its bundle is served under dvl-jupyter/)."""
        text = f"{exc.message}\n{exc.stack or ''}"
        self.all_errors.append(text)
        if "dvl-jupyter" in text:
            self.errors.append(text)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def screenshot(self, name: str, locator: Any = None) -> Path:
        """The viewport, or the part of it showing ``locator``: clipped, never scrolled, so a
        hovered tooltip stays open while the picture is taken."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        clip = None
        if locator is not None:
            box = locator.bounding_box()
            view = self.page.viewport_size
            if box and view:
                top = max(0.0, box["y"])
                clip = {
                    "x": max(0.0, box["x"]),
                    "y": top,
                    "width": min(box["width"], view["width"]),
                    "height": min(box["y"] + box["height"], view["height"]) - top,
                }
        self.page.screenshot(path=str(path), clip=clip)
        return path


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield Page(context.new_page())
    finally:
        context.close()
