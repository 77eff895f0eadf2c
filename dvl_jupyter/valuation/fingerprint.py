"""Stable fingerprints of models, scorers and data, for the utility cache.

The cache answers "have we computed ``u(S)`` before?" across kernels, processes and days, so
the identity of a utility must be a *content* digest that is the same in every process and
changes whenever anything that can change ``u(S)`` changes. Python's ``hash`` and ``id`` are
per-process, and pickle is both unstable (memory layout, protocol) and unsafe to read back, so
everything is reduced to a canonical JSON description instead:

- :func:`fingerprint_array` hashes the dtype, shape and raw bytes of a numpy array or torch
  tensor (tensors are moved to the CPU first; object arrays are hashed element by element
  through :func:`describe`, never pickled).
- :func:`describe` turns an object into JSON-able data: estimators by class and
  ``get_params(deep=False)``, classes and functions by module and qualified name (plus the
  package version, or a digest of their code when they come from a notebook or an unversioned
  module, so editing a model class in a cell is noticed), arrays by fingerprint. Objects it
  does not know are described by their ``repr`` when that is stable, otherwise it raises a
  ``TypeError`` naming the object and the fix (a stable ``__repr__`` or a
  ``dvl_fingerprint()`` method).
- :func:`digest` is the sha256 of the canonical JSON of its described parts.

Utility digests must include the package version (``dvl_jupyter.__version__``) as one of
their parts, so that a release that changes how a utility is computed never reads values
cached by an older one; ``ModelUtility.fingerprint`` does so. :func:`digest` itself does not
add it, so that data fingerprints stay comparable across versions.

A function from a notebook or an unversioned module is identified by what it depends on: its
code, defaults and closure, and the globals it reads (found in its bytecode, with those of the
functions and classes it reads in turn), so changing a notebook global a scoring function
reads changes the key. Modules are identified by name and version (the standard library by
Python's version, an unversioned module by its file's content).

Where it cannot tell: a global whose only ``repr`` is unstable (a connection, an open file)
is left out of the key, with one :class:`~dvl_jupyter.valuation.cache.CacheWarning` (once per
process) naming it and the ways out (``--no-cache``) and in (a ``cache_key``). An object
described by its ``repr`` is only as precise as that ``repr``.
"""

from __future__ import annotations

import contextlib
import contextvars
import dis
import enum
import functools
import hashlib
import json
import math
import os
import re
import sys
import types
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .exceptions import DvlTypeError

__all__ = ["DIGEST_SCHEME", "fingerprint_array", "describe", "digest", "canonical_json"]

#: Mixed into every digest: bump it when descriptions change meaning, so old cache entries
#: are never read with new semantics.
DIGEST_SCHEME = "dvl_jupyter.fingerprint.v1"

# Descriptions of non-JSON values are dicts tagged with this key; a user dict that happens to
# carry the key is escaped, so a tagged description and a plain dict never collide.
_TAG = "__dvl__"
_MAX_DEPTH = 64
# A repr showing a memory address ("<Foo object at 0x7f...>") differs in every process.
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_TRUNCATED = "..."


def canonical_json(obj: Any) -> str:
    """The one JSON text of a described value: sorted keys, no spaces, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


# -- arrays ---------------------------------------------------------------------------------------
def _is_tensor(a: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(a, torch.Tensor)


def fingerprint_array(a: Any) -> str:
    """sha256 hex digest of an array's dtype, shape and content.

    Works for numpy arrays (any dtype; object arrays are hashed element by element through
    :func:`describe`, never pickled) and torch tensors on any device (moved to the CPU; the
    device itself is not part of the fingerprint, only the values are). Equal content gives
    equal fingerprints in every process, which is what lets cached values be found again.

    Raises
    ------
    TypeError
        If ``a`` is neither a numpy array nor a torch tensor, or an object element cannot be
        described.
    """
    h = hashlib.sha256()
    if _is_tensor(a):
        t = a.detach()
        if t.layout != _torch_strided():
            t = t.to_dense()
        t = t.cpu().resolve_conj().resolve_neg().contiguous()
        header = {"kind": "torch", "dtype": str(t.dtype), "shape": list(t.shape)}
        h.update(canonical_json(header).encode())
        h.update(b"\0")
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(_torch_uint8()).numpy()))
        return h.hexdigest()
    if not isinstance(a, np.ndarray):
        raise DvlTypeError(
            f"fingerprint_array takes a numpy array or a torch tensor; got {type(a).__name__}. "
            "Convert it with np.asarray(...) first."
        )
    dtype = a.dtype.str if a.dtype.fields is None else str(a.dtype.descr)
    header = {"kind": "numpy", "dtype": dtype, "shape": list(a.shape)}
    h.update(canonical_json(header).encode())
    h.update(b"\0")
    if a.dtype.hasobject:
        # Element by element: each one's canonical description, length-prefixed so that
        # ["ab", "c"] and ["a", "bc"] differ.
        for i, item in enumerate(a.ravel(order="C")):
            text = canonical_json(_describe(item, f"array element {i}", 0, set())).encode()
            h.update(len(text).to_bytes(8, "little"))
            h.update(text)
    elif a.size:
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return h.hexdigest()


def _torch_strided() -> Any:
    return sys.modules["torch"].strided


def _torch_uint8() -> Any:
    return sys.modules["torch"].uint8


# -- classes and code -----------------------------------------------------------------------------
def _qualified_name(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or "?"
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or "?"
    return f"{module}.{qualname}"


def _package_version(module_name: str | None) -> str | None:
    """The ``__version__`` of the object's top-level package, if it has one.

    A released library (numpy, torch, sklearn, skorch, dvl_jupyter...) is identified by name
    and version; code without a version (a notebook's ``__main__``, a local module) is
    identified by its code instead, since it can change between runs under the same name.
    """
    if not module_name or module_name == "__main__":
        return None
    name = module_name.split(".")[0]
    top = sys.modules.get(name)
    version = getattr(top, "__version__", None)
    if isinstance(version, str):
        return version
    return _installed_version(name)


@functools.lru_cache(maxsize=256)
def _installed_version(top: str) -> str | None:
    """The version of the installed distribution (or of Python, for the standard library)
    that provides top-level module ``top``; None for code that is not installed."""
    if top in getattr(sys, "stdlib_module_names", ()) or top in sys.builtin_module_names:
        return f"python-{sys.version.split()[0]}"
    from importlib import metadata

    for dist in metadata.packages_distributions().get(top, ()):
        try:
            return f"{dist}-{metadata.version(dist)}"
        except metadata.PackageNotFoundError:  # pragma: no cover - a broken install
            continue
    return None


def _hash_const(h: Any, const: Any) -> None:
    if isinstance(const, types.CodeType):
        _hash_code(h, const)
    elif isinstance(const, (tuple, frozenset)):
        items = list(const)
        if isinstance(const, frozenset):  # iteration order depends on the str hash seed
            items = sorted(items, key=repr)
        h.update(f"{type(const).__name__}({len(items)})".encode())
        for item in items:
            _hash_const(h, item)
    else:
        h.update(f"{type(const).__name__}:{const!r};".encode())


def _hash_code(h: Any, code: types.CodeType) -> None:
    """Hash what a code object does, not where it is (file names and line numbers are left out)."""
    h.update(code.co_code)
    h.update(getattr(code, "co_exceptiontable", b""))
    h.update(repr((code.co_names, code.co_varnames, code.co_argcount, code.co_posonlyargcount,
                   code.co_kwonlyargcount, code.co_flags)).encode())
    for const in code.co_consts:
        _hash_const(h, const)


def _code_digest(code: types.CodeType) -> str:
    h = hashlib.sha256()
    _hash_code(h, code)
    return h.hexdigest()


def _class_body_digest(cls: type) -> str:
    """Digest of the methods and simple attributes defined in one class body."""
    h = hashlib.sha256()
    for name in sorted(vars(cls)):
        attr = vars(cls)[name]
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if isinstance(attr, property):
            funcs = [attr.fget, attr.fset, attr.fdel]
        elif isinstance(attr, functools.cached_property):
            funcs = [attr.func]
        elif isinstance(attr, types.FunctionType):
            funcs = [attr]
        elif isinstance(attr, (bool, int, float, str, bytes, type(None))):
            h.update(f"{name}={type(attr).__name__}:{attr!r};".encode())
            continue
        else:
            continue
        h.update(f"{name}:".encode())
        for f in funcs:
            if isinstance(f, types.FunctionType):
                _hash_code(h, f.__code__)
            h.update(b";")
    return h.hexdigest()


def _describe_class(cls: type, path: str = "the class", depth: int = 0,
                    active: set[int] | None = None) -> dict[str, Any]:
    mro = []
    read: dict[str, Any] = {}
    active = set() if active is None else active
    for base in cls.__mro__:
        if base is object:
            continue
        version = _package_version(base.__module__)
        if version is not None:
            mro.append(f"{_qualified_name(base)}@{version}")
        else:
            mro.append(f"{_qualified_name(base)}#{_class_body_digest(base)}")
            if id(base) not in active:  # a method reading its own class: no loop
                active.add(id(base))
                try:
                    read.update(_read_globals(_class_functions(base), path, depth, active))
                finally:
                    active.discard(id(base))
    out = {_TAG: "class", "name": _qualified_name(cls), "mro": mro}
    if read:  # only then: the key of a class that reads no global is unchanged
        out["globals"] = read
    return out


def _class_functions(cls: type) -> list[types.FunctionType]:
    """The functions defined in one class body (methods, static and class methods,
    properties)."""
    found = []
    for attr in vars(cls).values():
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if isinstance(attr, property):
            found += [f for f in (attr.fget, attr.fset, attr.fdel)
                      if isinstance(f, types.FunctionType)]
        elif isinstance(attr, functools.cached_property):
            found += [attr.func] if isinstance(attr.func, types.FunctionType) else []
        elif isinstance(attr, types.FunctionType):
            found.append(attr)
    return found


# -- what code reads from its module --------------------------------------------------------------
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})


@functools.lru_cache(maxsize=4096)
def _global_names(code: types.CodeType) -> tuple[str, ...]:
    """The global names a code object (and the code nested in it: lambdas, comprehensions,
    inner functions) loads, sorted."""
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname in _GLOBAL_OPS}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.update(_global_names(const))
    return tuple(sorted(n for n in names if isinstance(n, str)))


def _read_globals(funcs: list[types.FunctionType], path: str, depth: int,
                  active: set[int]) -> dict[str, Any]:
    """Descriptions of the globals ``funcs`` read (builtins and unset names are left out)."""
    out: dict[str, Any] = {}
    for fn in funcs:
        namespace = fn.__globals__
        for name in _global_names(fn.__code__):
            if name in out or name not in namespace:
                continue
            out[name] = _describe_global(namespace[name], name, fn, path, depth, active)
    return out


def _describe_global(value: Any, name: str, fn: types.FunctionType, path: str, depth: int,
                     active: set[int]) -> Any:
    """A global's description, or, when it cannot be fingerprinted, a marker (and a note that
    the caller warns about once)."""
    try:
        return _describe(value, f"{path} (global {name!r})", depth + 1, active)
    except DvlTypeError:
        _note_unseen(f"the global {name!r} ({type(value).__name__}) that "
                     f"{_qualified_name(fn).split('.', 1)[-1]} reads")
        return {_TAG: "unseen", "name": name, "class": _qualified_name(type(value))}


def _describe_module(module: types.ModuleType) -> dict[str, Any]:
    """A module: by name and version; the standard library by Python's version; a local
    module by the content of its file."""
    name = module.__name__
    version = _package_version(name)
    if version is not None:
        return {_TAG: "module", "name": name, "version": version}
    file = getattr(module, "__file__", None)
    if isinstance(file, str) and file.endswith(".py"):
        try:
            with open(file, "rb") as f:
                return {_TAG: "module", "name": name,
                        "source": hashlib.sha256(f.read()).hexdigest()}
        except OSError:
            pass
    return {_TAG: "module", "name": name}


# -- where the key cannot see: one warning per digest -------------------------------------------
_UNSEEN: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("dvl_unseen",
                                                                             default=None)


def _note_unseen(what: str) -> None:
    found = _UNSEEN.get()
    if found is None:  # described outside describe()/digest(): warn at once
        _warn_unseen([what])
    elif what not in found:
        found.append(what)


@contextlib.contextmanager
def _collecting_unseen() -> Iterator[None]:
    """Collect what cannot be fingerprinted while describing; the outermost call warns."""
    if _UNSEEN.get() is not None:
        yield
        return
    token = _UNSEEN.set([])
    try:
        yield
        found = _UNSEEN.get() or []
    finally:
        _UNSEEN.reset(token)
    if found:
        _warn_unseen(found)


#: What was warned about already, in this process: each thing the key cannot see is said once
#: (a run computes several fingerprints of one utility: its own, the noise probe's seeds).
_WARNED: set[str] = set()


def _warn_unseen(found: list[str]) -> None:
    from .cache import CacheWarning
    from .exceptions import warn_user

    found = [f for f in found if f not in _WARNED]
    if not found:
        return
    _WARNED.update(found)
    shown = "; ".join(found[:3]) + ("; ..." if len(found) > 3 else "")
    warn_user(
        f"The cache cannot tell whether {shown} changed: it is not part of the key (its repr "
        "is not stable), so values cached before such a change would be reused. After a "
        "change, run with --no-cache (cache=None), or give the run a new cache_key "
        "(--cache-key TEXT); or give its class a dvl_fingerprint() method.",
        CacheWarning,
    )


def _describe_function(
    fn: types.FunctionType, path: str, depth: int, active: set[int]
) -> dict[str, Any]:
    name = _qualified_name(fn)
    version = _package_version(fn.__module__)
    if version is not None:
        return {_TAG: "function", "name": name, "version": version}
    closure = []
    for i, cell in enumerate(fn.__closure__ or ()):
        try:
            content = cell.cell_contents
        except ValueError:  # an empty cell (a name assigned later)
            closure.append({_TAG: "empty-cell"})
            continue
        var = fn.__code__.co_freevars[i]
        closure.append(_describe(content, f"{path} (closure variable {var!r})", depth + 1, active))
    out = {
        _TAG: "function",
        "name": name,
        "code": _code_digest(fn.__code__),
        "defaults": _describe(fn.__defaults__ or (), f"{path} (defaults)", depth + 1, active),
        "kwdefaults": _describe(fn.__kwdefaults__ or {}, f"{path} (defaults)", depth + 1,
                                active),
        "closure": closure,
    }
    read = _read_globals([fn], path, depth, active)
    if read:  # only then: the key of a function that reads no global is unchanged
        out["globals"] = read
    return out


# -- the describer --------------------------------------------------------------------------------
def describe(obj: Any) -> Any:
    """A canonical, JSON-able description of ``obj`` that is the same in every process.

    - ``None``, bools, ints, strings: as is; floats as is when finite (NaN and infinities are
      tagged, so the JSON stays standard); numpy scalars as their Python value.
    - dicts, lists, tuples, sets: recursively (tuples and sets are tagged, sets sorted).
    - numpy arrays and torch tensors: their :func:`fingerprint_array`.
    - estimators (anything with ``get_params``): class and ``get_params(deep=False)``.
    - classes and functions: module and qualified name, with the package version or, for
      notebook and other unversioned code, a digest of the code.
    - torch modules: class, ``repr`` (the architecture) and fingerprints of the state dict.
    - ``torch.device``, ``torch.dtype``, ``numpy.dtype``: as strings.
    - objects with a ``dvl_fingerprint()`` method: the description of what it returns. Use it
      to make your own objects cacheable.
    - modules: name and version (see :func:`_describe_module`).
    - a function's or a notebook class's globals: described with it; one that cannot be is
      left out and warned about (see the module docstring).
    - anything else: class name plus ``repr``, when the ``repr`` is stable (no memory address,
      not a truncated summary).

    Raises
    ------
    TypeError
        For an object whose only ``repr`` is unstable, with the path to it (for example
        ``get_params()['callbacks'][0]``) and how to fix it.
    """
    with _collecting_unseen():
        return _describe(obj, "the object", 0, set())


def _describe(obj: Any, path: str, depth: int, active: set[int]) -> Any:
    if depth > _MAX_DEPTH:
        raise DvlTypeError(
            f"Cannot fingerprint {path} for the cache: it is nested more than {_MAX_DEPTH} "
            "levels deep. Give it a dvl_fingerprint() method returning a short description, or "
            "run without a cache (cache=None / --no-cache)."
        )
    if obj is None or isinstance(obj, (bool, str)) or type(obj) is int:
        return obj
    if type(obj) is float:
        if math.isfinite(obj):
            return obj
        return {_TAG: "float", "value": repr(obj)}
    if isinstance(obj, np.generic):
        item = obj.item()
        if isinstance(item, (bool, int, float, str)) and not isinstance(item, np.generic):
            return _describe(item, path, depth, active)
        return {_TAG: "numpy-scalar", "dtype": obj.dtype.str, "repr": repr(obj)}
    if isinstance(obj, int):  # int subclasses (IntEnum is handled below)
        if isinstance(obj, enum.Enum):
            return {_TAG: "enum", "class": _qualified_name(type(obj)), "name": obj.name}
        return {_TAG: "int", "class": _qualified_name(type(obj)), "value": int(obj)}
    if isinstance(obj, float):
        return {_TAG: "float-subclass", "class": _qualified_name(type(obj)),
                "value": _describe(float(obj), path, depth, active)}
    if isinstance(obj, bytes):
        return {_TAG: "bytes", "hex": obj.hex()}
    if isinstance(obj, np.ndarray) or _is_tensor(obj):
        return {_TAG: "array", "sha256": fingerprint_array(obj)}
    if isinstance(obj, type):
        return _describe_class(obj, path, depth, active)
    if isinstance(obj, types.ModuleType):
        return _describe_module(obj)
    if isinstance(obj, np.dtype):
        return {_TAG: "numpy-dtype", "dtype": str(obj)}

    key = id(obj)
    if key in active:  # a cycle: refer back by class, deterministically
        return {_TAG: "cycle", "class": _qualified_name(type(obj))}
    active.add(key)
    try:
        return _describe_object(obj, path, depth, active)
    finally:
        active.discard(key)


def _describe_object(obj: Any, path: str, depth: int, active: set[int]) -> Any:
    d = depth + 1
    custom = getattr(obj, "dvl_fingerprint", None)
    if callable(custom):
        return {_TAG: "custom", "class": _qualified_name(type(obj)),
                "value": _describe(custom(), f"{path}.dvl_fingerprint()", d, active)}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and _TAG not in obj:
            return {k: _describe(v, f"{path}[{k!r}]", d, active) for k, v in obj.items()}
        items = [[_describe(k, f"{path} (key)", d, active),
                  _describe(v, f"{path}[{k!r}]", d, active)] for k, v in obj.items()]
        return {_TAG: "dict", "items": sorted(items, key=lambda kv: canonical_json(kv[0]))}
    if isinstance(obj, list):
        return [_describe(v, f"{path}[{i}]", d, active) for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        items = [_describe(v, f"{path}[{i}]", d, active) for i, v in enumerate(obj)]
        if type(obj) is tuple:
            return {_TAG: "tuple", "items": items}
        return {_TAG: "tuple", "class": _qualified_name(type(obj)), "items": items}
    if isinstance(obj, (set, frozenset)):
        items = sorted((_describe(v, f"{path} (element)", d, active) for v in obj),
                       key=canonical_json)
        return {_TAG: type(obj).__name__, "items": items}
    if isinstance(obj, enum.Enum):
        return {_TAG: "enum", "class": _qualified_name(type(obj)), "name": obj.name}
    if isinstance(obj, types.FunctionType):
        return _describe_function(obj, path, depth, active)
    if isinstance(obj, types.MethodType):
        return {_TAG: "method",
                "function": _describe(obj.__func__, path, d, active),
                "self": _describe(obj.__self__, f"{path}.__self__", d, active)}
    if isinstance(obj, types.BuiltinFunctionType):
        owner = obj.__self__
        if owner is None or isinstance(owner, types.ModuleType):
            return {_TAG: "builtin", "name": _qualified_name(obj)}
        return {_TAG: "builtin-method", "name": _qualified_name(obj),
                "self": _describe(owner, f"{path}.__self__", d, active)}
    if isinstance(obj, functools.partial):
        return {_TAG: "partial",
                "func": _describe(obj.func, f"{path}.func", d, active),
                "args": _describe(obj.args, f"{path}.args", d, active),
                "keywords": _describe(obj.keywords, f"{path}.keywords", d, active)}
    if isinstance(obj, os.PathLike):
        return {_TAG: "path", "path": os.fspath(obj)}
    if isinstance(obj, complex):
        return {_TAG: "complex", "repr": repr(obj)}
    if isinstance(obj, (range, slice)):
        return {_TAG: type(obj).__name__, "repr": repr(obj)}
    if isinstance(obj, np.random.RandomState):
        return {_TAG: "RandomState", "state": _describe(obj.get_state(), path, d, active)}
    if isinstance(obj, np.random.Generator):
        return {_TAG: "Generator", "state": _describe(obj.bit_generator.state, path, d, active)}

    special = _describe_library_object(obj, path, d, active)
    if special is not None:
        return special

    get_params = getattr(obj, "get_params", None)
    if callable(get_params):
        try:
            params = get_params(deep=False)
        except TypeError:
            params = get_params()
        if isinstance(params, Mapping):
            return {_TAG: "estimator", "class": _describe_class(type(obj)),
                    "params": _describe(dict(params), f"{path}.get_params()", d, active)}
    return _describe_by_repr(obj, path)


def _describe_library_object(obj: Any, path: str, d: int, active: set[int]) -> Any:
    """Our Dataset, torch, pandas, scipy and sklearn objects whose repr does not identify
    them."""
    dataset = sys.modules.get(f"{__package__}.dataset")  # looked up, as torch: no circle
    if dataset is not None and isinstance(obj, dataset.Dataset):  # its repr: the shape only
        return {_TAG: "Dataset", "fingerprint": obj.fingerprint()}
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(obj, (torch.device, torch.dtype)):
            return {_TAG: "torch", "repr": str(obj)}
        if isinstance(obj, torch.nn.Module):
            # The repr shows the architecture but not the weights, so the state goes in too.
            state = {k: fingerprint_array(v) for k, v in obj.state_dict().items()}
            return {_TAG: "torch-module", "class": _describe_class(type(obj)),
                    "repr": repr(obj), "state": state}
    pd = sys.modules.get("pandas")
    if pd is not None:
        # pandas reprs round and truncate values: describe the content instead.
        if isinstance(obj, pd.DataFrame):
            return {_TAG: "DataFrame",
                    "columns": _describe(list(obj.columns), f"{path}.columns", d, active),
                    "index": fingerprint_array(obj.index.to_numpy()),
                    "data": [fingerprint_array(obj[c].to_numpy()) for c in obj.columns]}
        if isinstance(obj, pd.Series):
            return {_TAG: "Series", "name": _describe(obj.name, f"{path}.name", d, active),
                    "index": fingerprint_array(obj.index.to_numpy()),
                    "data": fingerprint_array(obj.to_numpy())}
        if isinstance(obj, pd.Index):
            return {_TAG: "Index", "data": fingerprint_array(obj.to_numpy())}
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and sparse.issparse(obj):
        m = obj.tocsr(copy=True)
        m.sum_duplicates()
        m.sort_indices()
        return {_TAG: "sparse", "shape": list(m.shape),
                "data": fingerprint_array(m.data), "indices": fingerprint_array(m.indices),
                "indptr": fingerprint_array(m.indptr)}
    if type(obj).__module__.startswith("sklearn.metrics") and hasattr(obj, "_score_func"):
        # make_scorer objects: their repr names the metric function but not its code.
        return {_TAG: "sklearn-scorer", "class": _qualified_name(type(obj)),
                "score_func": _describe(obj._score_func, f"{path}._score_func", d, active),
                "sign": _describe(getattr(obj, "_sign", None), path, d, active),
                "kwargs": _describe(getattr(obj, "_kwargs", {}), path, d, active),
                "response_method": _describe(getattr(obj, "_response_method", None), path, d,
                                             active),
                "repr": repr(obj)}
    return None


def _describe_by_repr(obj: Any, path: str) -> dict[str, Any]:
    cls = _qualified_name(type(obj))
    text = repr(obj)
    problem = None
    if _ADDRESS.search(text):
        problem = "shows a memory address, which changes in every process"
    elif _TRUNCATED in text or (text.startswith("<") and text.endswith(">")):
        problem = "is a summary that does not show its full content"
    if problem is not None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise DvlTypeError(
            f"Cannot fingerprint {path} ({cls}) for the cache: its repr {shown!r} {problem}, so "
            "cached values could not be matched to it reliably. Give the class a __repr__ that "
            "shows every setting that changes results, or a dvl_fingerprint() method that "
            "returns them as plain data (str, numbers, lists, dicts); or run without a cache "
            "(cache=None / --no-cache)."
        )
    return {_TAG: "repr", "class": cls, "repr": text}


def digest(*parts: Any) -> str:
    """sha256 hex digest of the canonical JSON (sorted keys) of the described ``parts``.

    Each part goes through :func:`describe` first, so parts may be plain data, descriptions,
    arrays or estimators. For utility identities, pass ``dvl_jupyter.__version__`` as one of the
    parts (see the module docstring): the cache must never serve values computed by another
    version of the package.
    """
    with _collecting_unseen():
        described = [_describe(p, f"part {i} of the digest", 0, set())
                     for i, p in enumerate(parts)]
    text = canonical_json({"scheme": DIGEST_SCHEME, "parts": described})
    return hashlib.sha256(text.encode("ascii")).hexdigest()
