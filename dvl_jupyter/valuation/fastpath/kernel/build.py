"""Compilation and loading: C source in, loaded ``ctypes`` library out.

Libraries are compiled once per source, compiler, flags and CPU into a per-user cache
directory (``-march=native`` makes a library machine-specific) and loaded from there. Loading
a shared library runs its code, so the directory and every library must be private to this
user (``_check_private``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from typing import Any

_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC",
          "-Wno-unknown-pragmas")
_LOCK = threading.Lock()
_LOADED: dict[str, Any] = {}
_FAILED: dict[str, str] = {}


def find_compiler() -> str | None:
    """The C compiler to use: ``$CC`` if set, else the first of cc, gcc, clang on PATH."""
    env = os.environ.get("CC")
    if env:
        return shutil.which(env.split()[0]) and env.split()[0]
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return name
    return None


def _cache_dir() -> str:
    """Where compiled kernels are kept: machine-local, so -march=native is always right."""
    base = os.environ.get("DVL_JUPYTER_KERNEL_DIR")
    if not base:
        uid = os.getuid() if hasattr(os, "getuid") else "user"
        base = os.path.join(tempfile.gettempdir(), f"dvl_jupyter_kernels_{uid}")
    os.makedirs(base, mode=0o700, exist_ok=True)
    _check_private(base)
    return base


def _check_private(path: str) -> None:
    """Refuse a directory or library another user could have planted or can write.

    Loading a shared library runs its code: a predictable path under /tmp must be ours alone,
    as the cache's pickles must be (see valuation/cache.py).
    """
    st = os.lstat(path)
    uid = os.getuid() if hasattr(os, "getuid") else st.st_uid
    if stat.S_ISLNK(st.st_mode) or st.st_uid != uid or st.st_mode & 0o022:
        raise OSError(
            f"{path} is not private to this user (owner {st.st_uid}, mode "
            f"{stat.S_IMODE(st.st_mode):o}); set DVL_JUPYTER_KERNEL_DIR to a directory of yours"
        )


def _cpu_id() -> str:
    """CPU identity mixed into the cache key: a kernel built for AVX-512 must not be reused on
    a machine without it (the cache directory could be shared)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return hashlib.sha256(line.encode()).hexdigest()[:12]
    except OSError:
        pass
    import platform

    return platform.machine() + platform.processor()


def _compile(source: str) -> Any:
    """Compile (once per source and machine) and load the kernel library."""
    cc = find_compiler()
    if cc is None:
        raise OSError("no C compiler found (set $CC or install gcc/clang)")
    key = hashlib.sha256(
        (source + cc + repr(_FLAGS) + _cpu_id() + sys.platform).encode()
    ).hexdigest()[:20]
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        if key in _FAILED:
            raise OSError(_FAILED[key])
        d = _cache_dir()
        so = os.path.join(d, f"fastpath_{key}.so")
        if not os.path.exists(so):
            fd, tmp_c = tempfile.mkstemp(suffix=".c", dir=d)
            with os.fdopen(fd, "w") as f:
                f.write(source)
            tmp_so = tmp_c[:-2] + ".so"
            try:
                proc = subprocess.run([cc, *_FLAGS, "-o", tmp_so, tmp_c, "-lm"],
                                      capture_output=True, text=True, timeout=300)
                if proc.returncode != 0:  # e.g. a compiler without -march=native: portable
                    flags = [f for f in _FLAGS if not f.startswith("-march")]
                    proc = subprocess.run([cc, *flags, "-o", tmp_so, tmp_c, "-lm"],
                                          capture_output=True, text=True, timeout=300)
                if proc.returncode != 0:
                    msg = f"{cc} failed: {proc.stderr.strip()[:300]}"
                    _FAILED[key] = msg
                    raise OSError(msg)
                os.replace(tmp_so, so)  # atomic: concurrent workers may compile the same key
            finally:
                for path in (tmp_c, tmp_so):
                    if os.path.exists(path):
                        os.remove(path)
        _check_private(so)
        lib = ctypes.CDLL(so)
        i64, ptr = ctypes.c_int64, ctypes.c_void_p
        train_args = [i64, ptr, ptr, ptr, ptr, ptr, i64, i64, i64, i64, ptr, ptr, ptr]
        if hasattr(lib, "train_seeded"):  # nets with dropout: one RNG seed per model
            lib.train_seeded.argtypes = [*train_args, ptr]
            lib.train_seeded.restype = ctypes.c_int
        else:
            lib.train.argtypes = train_args
            lib.train.restype = ctypes.c_int
        lib.predict.argtypes = [i64, ptr, i64, ptr, ptr]
        lib.predict.restype = ctypes.c_int
        _LOADED[key] = lib
        return lib
