"""Small helpers that several modules need, each defined once.

Each answers one question the same way everywhere: is this a skorch net, is this image data,
how to turn settings into JSON, how to write a duration, how many threads torch may use. They
import nothing heavy at module level (torch and skorch are looked up only if already loaded),
so any module, engine or notebook side, can use them without paying for an import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = [
    "format_bytes",
    "format_duration",
    "is_image_data",
    "is_skorch_net",
    "is_tensor",
    "json_safe",
    "plural",
    "to_numpy",
    "torch_threads",
]


def is_skorch_net(obj: Any) -> bool:
    """Whether ``obj`` is a skorch ``NeuralNet`` (classifier, regressor or plain).

    skorch is looked up in ``sys.modules`` rather than imported: an object can only be a skorch
    net if skorch has been imported, so asking never costs the seconds of importing torch.
    """
    skorch = sys.modules.get("skorch")
    return skorch is not None and isinstance(obj, skorch.NeuralNet)


def is_tensor(obj: Any) -> bool:
    """Whether ``obj`` is a torch tensor (on any device), without importing torch."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def to_numpy(a: Any) -> np.ndarray:
    """A torch tensor (on any device) or an array-like as a numpy array."""
    if is_tensor(a):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def is_image_data(x: Any) -> bool:
    """Whether features ``x`` (one row per point) are images: the one rule for "show images".

    Images are ``(N, H, W)`` (grayscale) or ``(N, C, H, W)`` with ``C`` in 1, 3, 4 (gray, RGB,
    RGBA). Flat vectors ``(N, D)`` are tabular data even when ``D`` is a perfect square: a
    64-feature table is not an 8x8 picture unless its owner says so (``plot_image_grid`` does
    reshape flat square vectors when asked for explicitly).
    """
    shape = getattr(x, "shape", None)
    if shape is None:
        return False
    return len(shape) == 3 or (len(shape) == 4 and shape[1] in (1, 3, 4))


def json_safe(obj: Any, depth: int = 0, max_repr: int = 200) -> Any:
    """Plain JSON values for settings, stats and metadata: for people to read, never an identity.

    Non-finite floats become None (JSON has no NaN), numpy scalars and small arrays their
    Python values, paths strings, objects with a ``spec()`` (truncation policies) their spec,
    and anything else its repr shortened to ``max_repr`` characters, so that recording or
    showing a run never fails on an odd setting.
    """
    if depth > 20:
        return "..."
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v, depth + 1, max_repr) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_safe(v, depth + 1, max_repr) for v in obj]
    if isinstance(obj, np.ndarray):
        if obj.size <= 64 and obj.dtype != object:
            return json_safe(obj.tolist(), depth + 1, max_repr)
        return f"array(shape={list(obj.shape)}, dtype={obj.dtype})"
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(dataclasses.asdict(obj), depth + 1, max_repr)
    spec = getattr(obj, "spec", None)
    if callable(spec) and not isinstance(obj, type):
        with contextlib.suppress(Exception):
            return json_safe(spec(), depth + 1, max_repr)
    text = str(obj) if isinstance(obj, Exception) else repr(obj)
    return text if len(text) <= max_repr else text[: max_repr - 3] + "..."


def format_duration(seconds: float | None) -> str:
    """``75.2 -> "1m 15s"``, ``8 -> "8s"``, ``4000 -> "1h 06m"``; None or NaN -> ``"?"``."""
    if seconds is None or not isinstance(seconds, (int, float, np.number)):
        return "?"
    if not math.isfinite(seconds):
        return "?"
    s = max(0, int(round(float(seconds))))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def format_bytes(n: float) -> str:
    """``512 -> "512 bytes"``, ``2048 -> "2.0 KB"``, up to GB."""
    for unit in ("bytes", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def plural(n: int, what: str, many: str | None = None) -> str:
    """``plural(1, "cache hit") -> "1 cache hit"``, ``plural(1257, "point") -> "1,257 points"``."""
    word = what if n == 1 else (many or f"{what}s")
    return f"{n:,} {word}"


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch threads (None: leave it), restoring the count afterwards.

    One thread per small fit was measured 4-15x faster than two when two processes share the
    two cores; the fast path's C kernel brings its own threads, which torch's would only slow.
    """
    torch = sys.modules.get("torch")
    if torch is None or n is None or torch.get_num_threads() == n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
