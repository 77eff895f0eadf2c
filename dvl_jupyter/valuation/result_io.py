"""Saving and loading `ValuationResult`s, without pickle.

Results are shared between notebooks, machines and people, so loading one must never run code:
files are ``.npz`` archives of plain numeric and string arrays, read with
``allow_pickle=False``, plus a small JSON header (format version, algorithm, status, meta)
stored as a ``uint8`` array of UTF-8 bytes. A file that holds an object array is refused.

`to_json` / `from_json` give the same content as plain JSON types for run manifests.

This module knows the format, not the class: it reads and writes arrays and a header, and
:class:`~dvl_jupyter.valuation.result.ValuationResult` (``save``, ``load``, ``to_json_dict``,
``from_json_dict``) turns them into a result and back. So the result imports its format, and
the format never imports the result.
"""

from __future__ import annotations

import json
import os
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ARRAYS", "FORMAT_VERSION", "header", "write", "read", "to_json", "from_json"]

FORMAT_VERSION = 1
#: The arrays of a result, in the order of its constructor.
ARRAYS = ("values", "variances", "counts", "indices", "names")


def _json_default(obj: Any) -> Any:
    """Let numpy scalars and arrays in meta through; refuse anything else by name."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        return obj.tolist()
    raise TypeError(
        f"meta must hold only JSON-able values (str, int, float, bool, None, lists, dicts); got "
        f"a {type(obj).__name__}. Convert it (e.g. str(x) or float(x)) before saving."
    )


def header(algorithm: str, status: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON header of a saved result: format, version, algorithm, status, meta."""
    return {
        "format": "dvl_jupyter.ValuationResult",
        "version": FORMAT_VERSION,
        "algorithm": algorithm,
        "status": status,
        "meta": meta,
    }


def write(path: str | os.PathLike[str], arrays: dict[str, np.ndarray],
          head: dict[str, Any]) -> Path:
    """Write a result's ``arrays`` and header to ``path`` as an ``.npz`` needing no pickle.

    The file is written to a temporary name beside ``path`` and renamed over it, so an
    interrupted save never leaves a half-written file. ``path`` is used as given (no ``.npz``
    suffix is added). Raises ``TypeError`` if the meta is not JSON-able.
    """
    path = Path(path)
    encoded = json.dumps(head, default=_json_default).encode("utf-8")
    out = {k: np.asarray(arrays[k]) for k in ARRAYS}
    # An empty str array has dtype <U1, never object: safe without pickle.
    out["names"] = np.asarray(arrays["names"], dtype=str)
    out["header"] = np.frombuffer(encoded, dtype=np.uint8)
    # A fresh name opened with "x" (not mkstemp) so the file gets the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            np.savez(f, allow_pickle=False, **out)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read what :func:`write` wrote, refusing anything that would need pickle.

    Raises
    ------
    ValueError
        If the file is not a result archive, holds object arrays (pickled data), or was written
        by a newer format version.
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved ValuationResult at {path}.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not an .npz archive, so not a saved ValuationResult. Save results with "
            "ValuationResult.save(path)."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in (*ARRAYS, "header") if k not in data.files]
            if missing:
                raise ValueError(
                    f"{path} is not a saved ValuationResult: missing {', '.join(missing)}. "
                    "Save results with ValuationResult.save(path)."
                )
            arrays = {k: data[k] for k in ARRAYS}
            header_bytes = data["header"]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ValueError(
                f"{path} holds pickled (object) arrays, which are refused because loading them "
                "could run arbitrary code. Only files written by ValuationResult.save load."
            ) from e
        raise
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path} is not a readable .npz ValuationResult file: {e}") from e

    if header_bytes.dtype != np.uint8:
        raise ValueError(f"{path}: header must be uint8 bytes; got {header_bytes.dtype}.")
    head = json.loads(header_bytes.tobytes().decode("utf-8"))
    _check_version(head, str(path))
    return arrays, head


def _check_version(header: dict[str, Any], where: str) -> None:
    version = header.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{where} has format version {version!r}; this dvl_jupyter reads versions up to "
            f"{FORMAT_VERSION}. Upgrade dvl_jupyter to read it."
        )


def _floats_to_json(a: np.ndarray) -> list[float | None]:
    """Floats as a list, with NaN and infinities as None so the JSON stays standard."""
    return [float(v) if np.isfinite(v) else None for v in a]


def to_json(arrays: dict[str, np.ndarray], head: dict[str, Any]) -> dict[str, Any]:
    """A result's arrays and header as plain JSON types (lists, str, int, float, None).

    Non-finite values and variances become ``None`` (read back as NaN), since standard JSON has
    no NaN or infinity. Meta must be JSON-able; numpy scalars in it are converted.
    """
    d = dict(head)
    # Round-trip meta through json so numpy scalars become plain types (and bad values fail now).
    d["meta"] = json.loads(json.dumps(head["meta"], default=_json_default))
    d.update(
        indices=[int(i) for i in arrays["indices"]],
        names=[str(s) for s in arrays["names"]],
        values=_floats_to_json(arrays["values"]),
        variances=_floats_to_json(arrays["variances"]),
        counts=[int(c) for c in arrays["counts"]],
    )
    return d


def from_json(d: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and header back from :func:`to_json`'s output.

    Raises
    ------
    ValueError
        If a required key is missing or the format version is newer than this package's.
    """
    if not isinstance(d, dict):
        raise TypeError(f"d must be a dict from to_json_dict; got {type(d).__name__}.")
    missing = [k for k in ARRAYS if k not in d]
    if missing:
        raise ValueError(
            f"d is missing {', '.join(missing)}; pass a dict made by to_json_dict(result)."
        )
    _check_version(d, "the dict")

    def floats(xs: list[float | None]) -> np.ndarray:
        return np.array([np.nan if x is None else x for x in xs], dtype=np.float64)

    arrays = {
        "values": floats(d["values"]),
        "variances": floats(d["variances"]),
        "counts": np.array(d["counts"], dtype=np.int64),
        "indices": np.array(d["indices"], dtype=np.int64),
        "names": np.array(d["names"], dtype=str),
    }
    return arrays, {k: d[k] for k in ("algorithm", "status", "meta") if k in d}
