"""Saving and loading `ValuationResult`s, without pickle.

Results are shared between notebooks, machines and people, so loading one must never run code:
files are ``.npz`` archives of plain numeric and string arrays, read with
``allow_pickle=False``, plus a small JSON header (format version, algorithm, status, meta)
stored as a ``uint8`` array of UTF-8 bytes. A file that holds an object array is refused.

`to_json_dict` / `from_json_dict` give the same content as plain JSON types for run manifests.
"""

from __future__ import annotations

import json
import os
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dvl_jupyter.valuation.result import Status, ValuationResult, _as_status

__all__ = ["save", "load", "to_json_dict", "from_json_dict", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_ARRAYS = ("values", "variances", "counts", "indices", "names")


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


def _header(result: ValuationResult) -> dict[str, Any]:
    return {
        "format": "dvl_jupyter.ValuationResult",
        "version": FORMAT_VERSION,
        "algorithm": result.algorithm,
        "status": result.status.value,
        "meta": result.meta,
    }


def save(result: ValuationResult, path: str | os.PathLike[str]) -> Path:
    """Write ``result`` to ``path`` as an ``.npz`` archive that needs no pickle to read.

    The file is written to a temporary name beside ``path`` and renamed over it, so an
    interrupted save never leaves a half-written file. ``path`` is used as given (no ``.npz``
    suffix is added).

    Parameters
    ----------
    result : ValuationResult
    path : str or path-like

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        If ``result`` is not a `ValuationResult` or its meta is not JSON-able.
    """
    if not isinstance(result, ValuationResult):
        raise TypeError(f"result must be a ValuationResult; got {type(result).__name__}.")
    path = Path(path)
    header = json.dumps(_header(result), default=_json_default).encode("utf-8")
    arrays: dict[str, np.ndarray] = {
        "values": np.asarray(result.values),
        "variances": np.asarray(result.variances),
        "counts": np.asarray(result.counts),
        "indices": np.asarray(result.indices),
        # An empty str array has dtype <U1, never object: safe without pickle.
        "names": np.asarray(result.names, dtype=str),
        "header": np.frombuffer(header, dtype=np.uint8),
    }
    # A fresh name opened with "x" (not mkstemp) so the file gets the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            np.savez(f, allow_pickle=False, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike[str]) -> ValuationResult:
    """Read a result written by :func:`save`, refusing anything that would need pickle.

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
            missing = [k for k in (*_ARRAYS, "header") if k not in data.files]
            if missing:
                raise ValueError(
                    f"{path} is not a saved ValuationResult: missing {', '.join(missing)}. "
                    "Save results with ValuationResult.save(path)."
                )
            arrays = {k: data[k] for k in _ARRAYS}
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
    header = json.loads(header_bytes.tobytes().decode("utf-8"))
    _check_version(header, str(path))
    return ValuationResult(
        values=arrays["values"],
        variances=arrays["variances"],
        counts=arrays["counts"],
        indices=arrays["indices"],
        names=arrays["names"],
        algorithm=header.get("algorithm", ""),
        status=_as_status(header.get("status", Status.Pending.value)),
        meta=header.get("meta") or {},
    )


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


def to_json_dict(result: ValuationResult) -> dict[str, Any]:
    """The result as plain JSON types (lists, str, int, float, None), e.g. for a run manifest.

    Non-finite values and variances become ``None`` (read back as NaN), since standard JSON has
    no NaN or infinity. Meta must be JSON-able; numpy scalars in it are converted.
    """
    if not isinstance(result, ValuationResult):
        raise TypeError(f"result must be a ValuationResult; got {type(result).__name__}.")
    d = _header(result)
    # Round-trip meta through json so numpy scalars become plain types (and bad values fail now).
    d["meta"] = json.loads(json.dumps(result.meta, default=_json_default))
    d.update(
        indices=[int(i) for i in result.indices],
        names=[str(s) for s in result.names],
        values=_floats_to_json(result.values),
        variances=_floats_to_json(result.variances),
        counts=[int(c) for c in result.counts],
    )
    return d


def from_json_dict(d: dict[str, Any]) -> ValuationResult:
    """Rebuild a result from :func:`to_json_dict`'s output.

    Raises
    ------
    ValueError
        If a required key is missing or the format version is newer than this package's.
    """
    if not isinstance(d, dict):
        raise TypeError(f"d must be a dict from to_json_dict; got {type(d).__name__}.")
    missing = [k for k in _ARRAYS if k not in d]
    if missing:
        raise ValueError(
            f"d is missing {', '.join(missing)}; pass a dict made by to_json_dict(result)."
        )
    _check_version(d, "the dict")

    def floats(xs: list[float | None]) -> np.ndarray:
        return np.array([np.nan if x is None else x for x in xs], dtype=np.float64)

    return ValuationResult(
        values=floats(d["values"]),
        variances=floats(d["variances"]),
        counts=np.array(d["counts"], dtype=np.int64),
        indices=np.array(d["indices"], dtype=np.int64),
        names=np.array(d["names"], dtype=str),
        algorithm=d.get("algorithm", ""),
        status=_as_status(d.get("status", Status.Pending.value)),
        meta=d.get("meta") or {},
    )
