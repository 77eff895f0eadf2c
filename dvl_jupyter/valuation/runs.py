"""Run manifests: what each valuation run was, and its result, beside the cache.

The cache makes every evaluation reusable; manifests make every *run* findable: the notebook
side lists past runs (``%shapley_cache``) and reloads one by id without recomputing anything.
Each run is ``<directory>/runs/<run_id>.json`` (settings, seed, start and end, evaluations,
cache hits) plus ``<run_id>.npz`` (the final ``ValuationResult``, written by
:mod:`dvl_jupyter.valuation.result_io`). JSON and npz only, never pickle, for the same reason
as the cache: reading a run must never run code.

Like the cache, writing manifests never kills a run: a directory that cannot be written gives
one :class:`~dvl_jupyter.valuation.cache.CacheWarning` and the run goes on unrecorded.

A run killed (SIGKILL, a dead kernel) or whose end could not be written leaves a manifest that
says "running" forever. So each manifest records the process that runs it (host, pid, and the
process's start time, which tells a reused pid apart), and :meth:`RunStore.list_runs` shows a
"running" run whose process is gone as ``"interrupted"``, without writing anything.

Reading is as careful as writing: a damaged or planted result file is one line saying so
(never a pickle read, never a traceback through numpy's zip reader).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import socket
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .cache import DEFAULT_CACHE_DIR, CacheWarning
from .exceptions import DvlTypeError, DvlValueError, describe_value, warn_user
from .utils import json_safe

__all__ = ["RunStore"]

MANIFEST_FORMAT = "dvl_jupyter.run"
MANIFEST_VERSION = 1
_RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
_MAX_REPR = 200


def _stats_dict(stats: Any) -> dict[str, Any]:
    """Stats as a dict, from a mapping, a ``RunStats`` (``as_dict()``) or a dataclass."""
    if stats is None:
        return {}
    if isinstance(stats, Mapping):
        return dict(stats)
    as_dict = getattr(stats, "as_dict", None)
    if callable(as_dict):
        return dict(as_dict())
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        return dataclasses.asdict(stats)
    raise DvlTypeError(
        f"stats must be a dict or a RunStats; got {describe_value(stats)}."
    )


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started, as the kernel counts it (Linux: clock ticks since boot,
    from ``/proc``); None where that cannot be read. Tells a reused pid from the original."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _process() -> dict[str, Any]:
    """This process, as a manifest records it."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": _process_start(pid)}


def process_alive(record: Mapping[str, Any]) -> bool | None:
    """Whether the process a manifest recorded still runs: True, False, or None when this
    process cannot tell (another host, or no pid recorded)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or record.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return None
    started = record.get("pid_start")
    if started is not None:
        now = _process_start(pid)
        if now is not None and now != started:
            return False  # the pid was reused by another process
    return True


def _now() -> tuple[str, float]:
    t = time.time()
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds"), t


class RunStore:
    """Manifests and results of valuation runs under ``<directory>/runs/``.

    Parameters
    ----------
    directory
        Usually the cache directory (default ``.dvl_cache``). ``runs/`` is created in it on
        the first :meth:`start`, with mode 0700 like the cache.
    """

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_CACHE_DIR) -> None:
        if not isinstance(directory, (str, os.PathLike)):
            raise DvlTypeError(
                f"directory must be a str or a Path; got {describe_value(directory)}."
            )
        self.directory = Path(os.path.expanduser(os.fspath(directory))).absolute()
        self.runs_dir = self.directory / "runs"
        self._warned = False

    # -- files ---------------------------------------------------------------------------------
    def _check_id(self, run_id: str) -> str:
        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise DvlValueError(
                f"{run_id!r} is not a run id; run ids look like '20250101-120000-0a1b2c' "
                "(see list_runs())."
            )
        return run_id

    def _manifest_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{self._check_id(run_id)}.json"

    def _result_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{self._check_id(run_id)}.npz"

    def _make_dirs(self) -> None:
        for path in (self.directory, self.runs_dir):
            if not path.is_dir():
                path.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.chmod(path, 0o700)

    def _write_json(self, path: Path, data: dict[str, Any]) -> None:
        """Write to a fresh temporary name, then rename: readers never see half a file."""
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "x", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True, allow_nan=False)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _warn(self, action: str, exc: BaseException) -> None:
        if self._warned:
            return
        self._warned = True
        warn_user(
            f"dvl_jupyter could not {action} in {self.runs_dir} ({type(exc).__name__}: {exc}); "
            "the run goes on, but it will not be listed by %shapley_cache. Check that the "
            "directory is writable, or use another one.",
            CacheWarning,
        )

    # -- API -----------------------------------------------------------------------------------
    def start(self, settings: Mapping[str, Any], seed: Any) -> str:
        """Record the start of a run and return its id (sortable by start time).

        ``settings`` are stored for people to read: values that are not JSON become their
        ``spec()`` or ``repr``. Never raises on a storage problem (warns once instead).
        """
        if not isinstance(settings, Mapping):
            raise DvlTypeError(f"settings must be a dict; got {describe_value(settings)}.")
        started, started_unix = _now()
        stamp = datetime.fromtimestamp(started_unix, timezone.utc).strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{secrets.token_hex(3)}"
        from ._version import __version__

        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "run_id": run_id,
            "status": "running",
            "package_version": __version__,
            "settings": json_safe(settings),
            "seed": json_safe(seed),
            "started": started,
            "started_unix": started_unix,
            "process": _process(),
            "finished": None,
            "finished_unix": None,
            "elapsed_s": None,
            "evaluations": None,
            "cache_hits": None,
            "stats": None,
            "result": None,
        }
        try:
            self._make_dirs()
            self._write_json(self._manifest_path(run_id), manifest)
        except OSError as exc:
            self._warn("record the run", exc)
        return run_id

    def finish(self, run_id: str, result: Any, stats: Any) -> None:
        """Record the end of a run: times, evaluations, cache hits and the final result.

        ``result`` is a ``ValuationResult`` (saved as ``<run_id>.npz``) or None when the run
        produced none. ``stats`` is a dict or a ``RunStats``; its ``evaluations`` and
        ``cache_hits`` (or ``hits``) are copied to the top of the manifest. Never raises on a
        storage problem (warns once instead).
        """
        path = self._manifest_path(run_id)
        stats_d = json_safe(_stats_dict(stats))
        try:
            manifest = self._read(path) or {
                "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "run_id": run_id,
                "started": None, "started_unix": None,
            }
            finished, finished_unix = _now()
            started_unix = manifest.get("started_unix")
            manifest.update(
                status="finished" if result is not None else "failed",
                finished=finished,
                finished_unix=finished_unix,
                elapsed_s=(round(finished_unix - started_unix, 3)
                           if isinstance(started_unix, (int, float)) else None),
                evaluations=stats_d.get("evaluations"),
                cache_hits=stats_d.get("cache_hits", stats_d.get("hits")),
                stats=stats_d,
            )
            if result is not None:
                self._make_dirs()
                result.save(self._result_path(run_id))
                manifest["result"] = self._result_path(run_id).name
                status = getattr(result, "status", None)
                manifest["result_status"] = getattr(status, "value", None)
                manifest["n_points"] = len(result.values)
            self._make_dirs()
            self._write_json(path, manifest)
        except (OSError, TypeError, ValueError) as exc:
            # The result is still returned to the caller; only its record is lost.
            self._warn("record the end of the run", exc)

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            return None
        return data

    def get(self, run_id: str) -> dict[str, Any]:
        """The manifest of one run (a run whose process is gone reads ``"interrupted"``).

        Raises
        ------
        ValueError
            If there is no readable manifest with this id.
        """
        path = self._manifest_path(run_id)
        manifest = self._read(path)
        if manifest is None:
            why = ("its record is damaged or was not written by dvl_jupyter" if path.exists()
                   else "there is no such run")
            raise DvlValueError(
                f"no run {run_id!r} in {self.runs_dir}: {why}; list_runs() shows the runs "
                "there."
            )
        return _with_liveness(manifest)

    def list_runs(self) -> list[dict[str, Any]]:
        """Manifests of all runs, newest first. Unreadable manifests are skipped (and counted
        by :meth:`damaged`); a "running" run whose process is gone reads ``"interrupted"``."""
        if not self.runs_dir.is_dir():
            return []
        runs = []
        for path in self.runs_dir.glob("*.json"):
            if not _RUN_ID.match(path.stem):
                continue
            manifest = self._read(path)
            if manifest is not None and manifest.get("run_id") == path.stem:
                runs.append(_with_liveness(manifest))
        runs.sort(key=lambda m: (_number(m.get("started_unix")), m["run_id"]), reverse=True)
        return runs

    def damaged(self) -> list[str]:
        """Names of the files under ``runs/`` that look like run records but cannot be read
        as one (damaged, or not written by dvl_jupyter)."""
        if not self.runs_dir.is_dir():
            return []
        bad = []
        for path in sorted(self.runs_dir.glob("*.json")):
            if not _RUN_ID.match(path.stem):
                continue
            manifest = self._read(path)
            if manifest is None or manifest.get("run_id") != path.stem:
                bad.append(path.name)
        return bad

    def load_result(self, run_id: str) -> Any:
        """The final ``ValuationResult`` of a finished run (read without pickle).

        Raises
        ------
        ValueError
            If the run does not exist or stored no result.
        """
        path = self._result_path(run_id)
        if not path.exists():
            known = self._read(self._manifest_path(run_id)) is not None
            why = "it stored no result (still running, or it failed)" if known else (
                "there is no such run")
            raise DvlValueError(
                f"cannot load the result of run {run_id!r} from {self.runs_dir}: {why}. "
                "list_runs() shows the runs there."
            )
        from .result import ValuationResult

        try:
            return ValuationResult.load(path)
        except Exception as exc:  # noqa: BLE001 - a damaged or planted file: one line
            text = " ".join(str(exc).replace(str(path), path.name).split())
            text = text if len(text) <= 120 else text[:117] + "..."
            raise DvlValueError(
                f"cannot load the result of run {run_id!r}: runs/{path.name} is damaged or was "
                "not written by dvl_jupyter, so it was not read (nothing is ever unpickled); "
                f"delete it, or clear the cache with %shapley_cache clear. "
                f"({type(exc).__name__}: {text.rstrip('.')})"
            ) from None

    def delete(self, run_id: str) -> None:
        """Remove one run's manifest and result."""
        self._manifest_path(run_id).unlink(missing_ok=True)
        self._result_path(run_id).unlink(missing_ok=True)

    def clear(self) -> int:
        """Remove every run's manifest and result; returns how many runs there were."""
        if not self.runs_dir.is_dir():
            return 0
        n = 0
        for path in self.runs_dir.iterdir():
            if _RUN_ID.match(path.stem) and path.suffix in (".json", ".npz"):
                n += path.suffix == ".json"
                path.unlink(missing_ok=True)
        return n

    def __repr__(self) -> str:
        return f"RunStore({str(self.directory)!r})"


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _with_liveness(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as it should read now: "running" only while its process runs."""
    if manifest.get("status") != "running":
        return manifest
    process = manifest.get("process")
    if isinstance(process, Mapping) and process_alive(process) is False:
        return {**manifest, "status": "interrupted"}
    return manifest
