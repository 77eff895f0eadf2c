"""A disk cache of utility values: no subset is ever trained twice.

TMC-Shapley spends nearly all its time fitting models on subsets, and many runs revisit the
same subsets (a re-run of a cell, a run resumed after an interrupt, a run with another stopping
criterion). :class:`UtilityCache` stores every ``u(S)`` on disk, keyed by the utility's
fingerprint and the sorted subset, so each value is computed once per machine.

Design choices, and why:

- **diskcache** (SQLite underneath) does the storage, locking and transactions; several
  kernels or processes can share one directory.
- **No pickle, ever.** diskcache pickles by default, and reading a pickle runs code: anyone who
  can write the cache directory could then run code in the kernel. :class:`SafeDisk` stores
  only floats and JSON text and refuses any other row on read (a planted pickled row is
  reported and treated as a miss; it is never unpickled). The directory is created with mode
  0700.
- **Nothing is evicted** (``eviction_policy="none"``): a value that silently vanished would be
  recomputed without anyone knowing why a re-run is slow. An optional ``size_limit`` stops
  *new* writes instead, with one clear warning.
- **A cache problem never kills a run.** A corrupted file, a lock held too long, a full disk or
  an unwritable directory gives one :class:`CacheWarning`, and the cache turns into a no-op
  (every lookup misses, writes are dropped) for the rest of its life; the valuation goes on
  computing.
- **A damaged file is never read.** SQLite reads garbage in the middle of a file without an
  error, as other numbers: opening runs ``PRAGMA quick_check`` first, and a file that fails it
  is damage (the warning above, and ``%shapley_cache`` says so), never values.

Only the driver process touches the cache: it looks a batch up, sends the misses to the
workers and stores their values in one transaction per batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import diskcache
import numpy as np
from diskcache.core import MODE_RAW, UNKNOWN

from .exceptions import DvlTypeError, DvlValueError, describe_value, warn_user
from .utils import format_bytes

__all__ = [
    "DEFAULT_CACHE_DIR",
    "CacheWarning",
    "UnsafeCacheRow",
    "SafeDisk",
    "UtilityCache",
    "cache_key",
]

#: Where the notebook side keeps its cache: beside the notebook, in the working directory.
DEFAULT_CACHE_DIR = ".dvl_cache"
#: Seconds to wait for another process's lock before giving up on the cache for the run.
DEFAULT_TIMEOUT = 10.0
_KEY_SCHEME = b"dvl_jupyter.utility-cache.v1\0"
_DB_FILES = ("cache.db", "cache.db-wal", "cache.db-shm")
# The only file names diskcache itself would ever create for values: "ab/cd/<28 hex>.val".
_VALUE_FILE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{28}\.val$")
# Errors of the storage itself; anything else is a bug and is raised.
_STORAGE_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)


class CacheWarning(UserWarning):
    """The cache could not be used (or is full); the run goes on without it."""


class UnsafeCacheRow(Exception):
    """A cache row holds something other than a float or JSON text (e.g. a pickle).

    Deliberately not an ``OSError``: diskcache treats those as "file gone" and would hide it;
    the cache counts and reports refused rows instead.
    """


class SafeDisk(diskcache.Disk):
    """A diskcache ``Disk`` that stores only str keys, floats and JSON text, inline in SQLite.

    ``fetch`` accepts nothing but raw floats and JSON strings; pickled, binary and file-backed
    rows (which diskcache's default ``Disk`` would unpickle or open) raise
    :class:`UnsafeCacheRow`. ``remove`` only deletes value files diskcache could have made
    inside the cache directory, so a planted row cannot point a clean-up at another file.
    """

    def __init__(self, directory: str, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self._root = os.path.realpath(directory)

    def put(self, key: Any) -> tuple[str, bool]:
        if type(key) is not str:
            raise DvlTypeError(
                f"UtilityCache keys are hex strings; got {describe_value(key)}."
            )
        return key, True

    def get(self, key: Any, raw: bool) -> str:
        if not raw or type(key) is not str:
            raise UnsafeCacheRow("a cache key that is not plain text (pickled?) was refused")
        return key

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, None, Any]:
        if read:
            raise DvlTypeError("UtilityCache stores floats and JSON, not files.")
        if type(value) is float and math.isfinite(value):
            return 0, MODE_RAW, None, value
        # NaN and infinities go as JSON text too: SQLite would turn a NaN REAL into NULL.
        text = json.dumps(value, separators=(",", ":"), allow_nan=True)
        return 0, MODE_RAW, None, text

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode != MODE_RAW or filename is not None or read:
            raise UnsafeCacheRow(
                f"a cache row stored in mode {mode} (not a float or JSON; possibly a pickle) "
                "was refused"
            )
        if type(value) is float:
            return value
        if type(value) is str:
            try:
                return json.loads(value)
            except ValueError:
                raise UnsafeCacheRow("a cache row with invalid JSON was refused") from None
        raise UnsafeCacheRow(f"a cache row holding {type(value).__name__} was refused")

    def filename(self, key: Any = UNKNOWN, value: Any = UNKNOWN) -> tuple[str, str]:
        raise DvlTypeError("UtilityCache keeps every value inline; it never writes files.")

    def remove(self, file_path: str) -> None:
        if not isinstance(file_path, str) or not _VALUE_FILE.match(file_path):
            return
        full = os.path.realpath(os.path.join(self._root, file_path))
        if os.path.dirname(os.path.dirname(os.path.dirname(full))) != self._root:
            return
        super().remove(file_path)


def cache_key(fingerprint: str, subset: Any) -> str:
    """The cache key of ``u(subset)`` for the utility with this fingerprint.

    sha256 over the fingerprint and the *sorted* subset as little-endian int64, so a subset
    hits the same entry in whatever order its points were added.
    """
    if not isinstance(fingerprint, str) or not fingerprint:
        raise DvlTypeError(
            f"fingerprint must be a non-empty str (utility.fingerprint()); got "
            f"{describe_value(fingerprint)}."
        )
    a = np.asarray(subset)
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
        raise DvlTypeError(
            f"a subset must be a 1-d array of integer positions; got {a.dtype} with shape "
            f"{a.shape}."
        )
    h = hashlib.sha256(_KEY_SCHEME)
    h.update(fingerprint.encode("utf-8"))
    h.update(b"\0")
    h.update(np.sort(a.astype("<i8")).tobytes())
    return h.hexdigest()


def _check_integrity(db: Path) -> None:
    """Raise ``sqlite3.DatabaseError`` if the database file fails SQLite's quick check.

    Garbage in the middle of the file is otherwise read without an error, as wrong numbers.
    A missing file (a new cache) passes; the check opens the file read-only.
    """
    if not db.is_file():
        return
    try:
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=DEFAULT_TIMEOUT)
        try:
            rows = con.execute("PRAGMA quick_check(1)").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if _is_corruption(exc):
            raise
        return  # cannot check now (locked, read-only...): opening it says what is wrong
    if rows != [("ok",)]:
        detail = " ".join(str(rows[0][0]).split()) if rows else "no answer"
        raise sqlite3.DatabaseError(f"database disk image is malformed ({detail[:120]})")


def _is_corruption(exc: BaseException) -> bool:
    """A damaged file (as opposed to a lock, a full disk or missing permissions)."""
    if type(exc) is sqlite3.DatabaseError:
        return True
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _advice(exc: BaseException) -> str:
    text = str(exc).lower()
    if _is_corruption(exc):
        return ("The cache file looks damaged: clear it with %shapley_cache clear (or "
                "UtilityCache(directory).clear()), or delete the directory.")
    if isinstance(exc, diskcache.Timeout) or "locked" in text:
        return ("Another process kept the cache locked too long; it may still be running. "
                "Wait for it, or use another directory.")
    if "full" in text or getattr(exc, "errno", None) == 28:
        return "The disk is full: free some space, or use a directory on another disk."
    return ("Check that the directory is writable by you, or use another one "
            "(cache=... in Python, --cache DIR in the magic).")


class UtilityCache:
    """Utility values on disk, keyed by utility fingerprint and sorted subset.

    Parameters
    ----------
    directory
        Where the cache lives (created with mode 0700 if missing). Several processes may use
        the same directory at once.
    size_limit
        Bytes; once the cache reaches it, new values are no longer stored (one
        :class:`CacheWarning` says so) and nothing already stored is evicted. None: no limit.
        It is checked before each batch, so the cache may pass it by up to one batch.
    timeout
        Seconds a write waits for a lock held by another process before the cache gives up
        for the run. (Opening waits up to diskcache's own 60 s if another process is writing
        at that very moment; our write transactions last milliseconds.)
    quiet
        Never warn: the caller reads :attr:`disabled_reason` instead (``%shapley_cache``'s
        report, where no run goes on).

    Notes
    -----
    Any storage failure (damaged file, lock timeout, full disk, unwritable directory) warns
    once and turns the cache into a no-op for the rest of this object's life; see
    :attr:`enabled` and :attr:`disabled_reason`. Counters for the progress display are in
    :attr:`stats`.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
        size_limit: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        quiet: bool = False,
    ) -> None:
        if not isinstance(directory, (str, os.PathLike)):
            raise DvlTypeError(
                f"directory must be a str or a Path; got {describe_value(directory)}."
            )
        if size_limit is not None and (
            isinstance(size_limit, bool) or not isinstance(size_limit, int) or size_limit <= 0
        ):
            raise DvlValueError(
                f"size_limit must be a positive number of bytes or None; got "
                f"{describe_value(size_limit)}. Use e.g. size_limit=2**30 for 1 GB."
            )
        self._directory = Path(os.path.expanduser(os.fspath(directory))).absolute()
        self.size_limit = size_limit
        self.timeout = float(timeout)
        self._quiet = quiet
        self._init_state()
        self._open(quiet=quiet)

    def _init_state(self) -> None:
        self._lock = threading.RLock()
        self._cache: diskcache.Cache | None = None
        self._opened = False
        self._disabled_reason: str | None = None
        self._corrupt = False
        self._full_warned = False
        self._refused_warned = False
        self._stats = {"hits": 0, "misses": 0, "writes": 0}

    # Pickled (e.g. along with a utility sent to a worker), a cache travels as its settings
    # and opens lazily, only if it is used there.
    def __getstate__(self) -> dict[str, Any]:
        return {"directory": str(self._directory), "size_limit": self.size_limit,
                "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._directory = Path(state["directory"])
        self.size_limit = state["size_limit"]
        self.timeout = state["timeout"]
        self._quiet = False
        self._init_state()

    # -- opening and failing -------------------------------------------------------------------
    def _make_directory(self) -> None:
        path = self._directory
        if path.is_dir():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            if not path.is_dir():
                raise
            return
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask

    def _open(self, quiet: bool = False) -> None:
        with self._lock:
            self._opened = True
            try:
                self._make_directory()
                _check_integrity(self._directory / _DB_FILES[0])
                self._cache = diskcache.Cache(
                    str(self._directory),
                    timeout=self.timeout,
                    disk=SafeDisk,
                    eviction_policy="none",
                    statistics=0,  # diskcache's own counters would make every read a write
                )
            except Exception as exc:  # noqa: BLE001 - any failure to open means no cache
                self._disable(exc, "opening it", quiet=quiet)

    def _ensure_open(self) -> diskcache.Cache | None:
        if not self._opened:
            self._open()
        return self._cache

    def _disable(
        self, exc: BaseException, action: str, quiet: bool = False
    ) -> None:
        with self._lock:
            if self._disabled_reason is not None:
                return
            self._corrupt = _is_corruption(exc)
            detail = str(exc) or (
                f"still locked after {self.timeout:g} s"
                if isinstance(exc, diskcache.Timeout) else "no details"
            )
            self._disabled_reason = f"{action}: {type(exc).__name__}: {detail}"
            cache, self._cache = self._cache, None
            if cache is not None:
                with contextlib.suppress(Exception):
                    cache.close()
        if quiet or self._quiet:
            return
        warn_user(
            f"dvl_jupyter cache at {self._directory} cannot be used ({self._disabled_reason}); "
            f"it is off: values are computed, not read or stored there. {_advice(exc)}",
            CacheWarning,
        )

    def _refused(self, exc: UnsafeCacheRow) -> None:
        if self._refused_warned or self._quiet:
            return
        self._refused_warned = True
        warn_user(
            f"dvl_jupyter cache at {self._directory}: {exc}. It was not read (treated as a "
            "miss). dvl_jupyter never writes such rows: someone or something else wrote to "
            "this directory. Clear it with %shapley_cache clear if you did not expect that.",
            CacheWarning,
        )

    # -- public API ----------------------------------------------------------------------------
    @property
    def directory(self) -> Path:
        """The cache directory (absolute)."""
        return self._directory

    @property
    def enabled(self) -> bool:
        """False once a storage failure turned the cache into a no-op."""
        return self._disabled_reason is None

    @property
    def disabled_reason(self) -> str | None:
        """Why the cache is off (None while it works)."""
        return self._disabled_reason

    @property
    def stats(self) -> dict[str, int]:
        """Counters since this object was made: ``hits``, ``misses``, ``writes``."""
        return dict(self._stats)

    def get_many(self, fingerprint: str, subsets: Sequence[Any],
                 width: int | None = None) -> list[Any]:
        """Cached values of ``u(S)`` for each subset, None where not cached.

        The order of the points within a subset does not matter. A row that is not a number
        (tampered with) is a miss, reported once with a :class:`CacheWarning`. With ``width``,
        the values are vectors of that length (float64 arrays; see :meth:`set_many`).
        """
        keys = [cache_key(fingerprint, s) for s in subsets]
        out: list[float | None] = [None] * len(keys)
        with self._lock:
            cache = self._ensure_open()
            if cache is not None:
                try:
                    for i, key in enumerate(keys):
                        out[i] = self._read(cache, key, width)
                except _STORAGE_ERRORS as exc:
                    self._disable(exc, "reading")
                    out = [None] * len(keys)
            hits = sum(v is not None for v in out)
            self._stats["hits"] += hits
            self._stats["misses"] += len(keys) - hits
        return out

    def _read(self, cache: diskcache.Cache, key: str, width: int | None = None) -> Any:
        try:
            value = cache.get(key, default=None)
        except UnsafeCacheRow as exc:
            self._refused(exc)
            return None
        if value is None:
            return None
        if width is not None:
            return self._vector(value, width)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._refused(UnsafeCacheRow(
                f"a cache row holding {type(value).__name__} instead of a number was refused"))
            return None
        return float(value)

    def _vector(self, value: Any, width: int) -> np.ndarray | None:
        """A stored vector row as float64, or None (refused) if it is not ``width`` numbers."""
        if isinstance(value, list) and len(value) == width and all(
                type(v) in (int, float) for v in value):
            return np.asarray(value, dtype=np.float64)
        self._refused(UnsafeCacheRow(
            f"a cache row holding {type(value).__name__} instead of {width} numbers was "
            "refused"))
        return None

    def set_many(self, fingerprint: str, subsets: Sequence[Any], values: Sequence[Any],
                 width: int | None = None) -> None:
        """Store ``u(S)`` for each subset, all in one transaction (all or nothing).

        With ``width``, each value is a vector of that length (e.g. a bag model's predictions
        for every point), stored as JSON text of its numbers (NaN included); the fingerprint
        of such values must differ from any scalar utility's.

        Once the cache is at its ``size_limit``, nothing more is stored (one warning); on a
        storage failure the cache is switched off (one warning). Neither raises.
        """
        if len(subsets) != len(values):
            raise DvlValueError(
                f"set_many needs one value per subset; got {len(subsets)} subsets and "
                f"{len(values)} values."
            )
        keys = [cache_key(fingerprint, s) for s in subsets]
        if width is None:
            floats: list[Any] = [float(v) for v in values]
        else:
            floats = [np.asarray(v, dtype=np.float64).reshape(width).tolist() for v in values]
        if not keys:
            return
        with self._lock:
            cache = self._ensure_open()
            if cache is None:
                return
            try:
                if self._is_full(cache):
                    return
                with cache.transact():
                    for key, value in zip(keys, floats, strict=True):
                        cache.set(key, value)
            except _STORAGE_ERRORS as exc:
                self._disable(exc, "writing")
                return
            self._stats["writes"] += len(keys)

    def _is_full(self, cache: diskcache.Cache) -> bool:
        if self.size_limit is None:
            return False
        volume = cache.volume()
        if volume < self.size_limit:
            return False
        if not self._full_warned:
            self._full_warned = True
            warn_user(
                f"dvl_jupyter cache at {self._directory} is full ({format_bytes(volume)}, "
                f"limit {format_bytes(self.size_limit)}); new evaluations are not cached, and "
                "nothing cached is removed. Raise the limit with "
                "UtilityCache(directory, size_limit=...) or clear it with %shapley_cache clear.",
            CacheWarning,
            )
        return True

    def volume(self) -> int:
        """Bytes the cache takes on disk (0 if it does not exist)."""
        with self._lock:
            cache = self._ensure_open()
            if cache is not None:
                try:
                    return int(cache.volume())
                except _STORAGE_ERRORS:
                    pass
        total = 0
        for name in _DB_FILES:
            with contextlib.suppress(OSError):
                total += (self._directory / name).stat().st_size
        return total

    def __len__(self) -> int:
        """Number of cached values (0 when the cache is off)."""
        with self._lock:
            cache = self._ensure_open()
            if cache is None:
                return 0
            try:
                return int(len(cache))
            except _STORAGE_ERRORS:
                return 0

    @property
    def damaged(self) -> bool:
        """Whether the cache file was found damaged (it is then never read; :meth:`clear`
        deletes and recreates it)."""
        return self._corrupt

    def clear(self) -> int | None:
        """Remove every cached value and return how many there were (None when the file was
        damaged: it is deleted and made anew, and its values could not be counted).

        Run manifests (``runs/``) are kept. A damaged cache file is deleted and recreated, so
        this is also the repair the failure warning suggests. Unlike the run-time methods this
        raises (``OSError``) if the cache still cannot be used: it is called on purpose, by a
        person, who should see why.
        """
        with self._lock:
            cache = self._ensure_open()
            if cache is None and not self._corrupt:
                # Off for another reason (a lock, permissions): try again from scratch.
                self._reset_and_reopen()
                cache = self._cache
            if cache is not None:
                try:
                    removed = int(cache.clear(retry=True))
                except sqlite3.DatabaseError as exc:
                    if not _is_corruption(exc):
                        raise
                    self._corrupt = True
                else:
                    self._full_warned = False
                    return removed
            if not self._corrupt:
                raise OSError(
                    f"cannot clear the cache at {self._directory}: {self._disabled_reason}"
                )
            # Damaged: delete the database files and start afresh.
            if self._cache is not None:
                with contextlib.suppress(Exception):
                    self._cache.close()
            for name in _DB_FILES:
                (self._directory / name).unlink(missing_ok=True)
            self._reset_and_reopen()
            if self._cache is None:
                raise OSError(
                    f"cannot recreate the cache at {self._directory}: {self._disabled_reason}"
                )
            return None

    def _reset_and_reopen(self) -> None:
        """Forget the failure and open again, without warning (the caller reports)."""
        stats = self._stats
        self._init_state()
        self._stats = stats
        self._open(quiet=True)

    def close(self) -> None:
        """Close the database connection (it reopens on the next use)."""
        with self._lock:
            if self._cache is not None:
                with contextlib.suppress(Exception):
                    self._cache.close()

    def __enter__(self) -> UtilityCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "" if self.enabled else ", disabled"
        return f"UtilityCache({str(self._directory)!r}, size_limit={self.size_limit}{state})"
