"""The utility cache: order-insensitive keys, safe storage, shared use and graceful failure.

Failures are provoked for real where the platform allows it (garbage over the SQLite file, a
lock held by another connection, SQLite's own page limit for a full disk, a directory another
user cannot write), and the run-level promise is checked each time: one CacheWarning, no
exception, the cache becomes a no-op.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import sqlite3
import stat
import sys
import tempfile
import time
import warnings
from pathlib import Path

import diskcache
import numpy as np
import pytest

from dvl_jupyter.valuation.cache import (
    DEFAULT_CACHE_DIR,
    CacheWarning,
    UtilityCache,
    cache_key,
)
from dvl_jupyter.valuation.callbacks import RunStats
from dvl_jupyter.valuation.result import ValuationResult
from dvl_jupyter.valuation.runs import RunStore

FP = "f" * 64
OTHER_FP = "e" * 64


def subsets_of(n: int, offset: int = 0) -> list[np.ndarray]:
    return [np.array([offset + i, offset + i + 1_000_000]) for i in range(n)]


def cache_warnings(records: list[warnings.WarningMessage]) -> list[str]:
    return [str(r.message) for r in records if issubclass(r.category, CacheWarning)]


class recorded:
    """Collect every warning (CacheWarning must appear exactly as often as the test says)."""

    def __enter__(self) -> list[warnings.WarningMessage]:
        self._cm = warnings.catch_warnings(record=True)
        records = self._cm.__enter__()
        warnings.simplefilter("always")
        return records

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


# -- keys and round trips -------------------------------------------------------------------------


def test_keys_ignore_the_order_of_a_subset(tmp_path):
    assert cache_key(FP, np.array([3, 1, 2])) == cache_key(FP, [1, 2, 3])
    assert cache_key(FP, np.array([3, 1, 2], dtype=np.int32)) == cache_key(FP, [1, 2, 3])
    assert cache_key(FP, [1, 2, 3]) != cache_key(FP, [1, 2, 4])
    assert cache_key(FP, [1, 2, 3]) != cache_key(OTHER_FP, [1, 2, 3])
    assert cache_key(FP, []) != cache_key(FP, [0])
    with pytest.raises(TypeError, match="integer positions"):
        cache_key(FP, np.array([0.5, 1.0]))

    cache = UtilityCache(tmp_path / "c")
    cache.set_many(FP, [np.array([5, 2, 9])], [0.75])
    assert cache.get_many(FP, [np.array([9, 5, 2]), np.array([2, 9, 5])]) == [0.75, 0.75]
    assert cache.get_many(OTHER_FP, [np.array([2, 5, 9])]) == [None]


def test_values_round_trip_and_counters(tmp_path):
    cache = UtilityCache(tmp_path / "c")
    subsets = [np.array([1]), np.empty(0, dtype=np.int64), np.array([2, 3]), np.array([4])]
    assert cache.get_many(FP, subsets) == [None] * 4
    cache.set_many(FP, subsets, [0.5, np.float32(0.25), 1, float("nan")])
    got = cache.get_many(FP, subsets + [np.array([99])])
    assert got[:3] == [0.5, 0.25, 1.0] and all(type(v) is float for v in got[:4])
    assert np.isnan(got[3]) and got[4] is None
    assert cache.stats == {"hits": 4, "misses": 5, "writes": 4}
    assert len(cache) == 4 and cache.volume() > 0
    # a new object (another run, another kernel) sees the same values
    again = UtilityCache(tmp_path / "c")
    assert again.get_many(FP, [np.array([3, 2])]) == [1.0]
    assert again.clear() == 4
    assert again.get_many(FP, subsets) == [None] * 4
    with pytest.raises(ValueError, match="one value per subset"):
        cache.set_many(FP, subsets, [1.0])


def test_directory_is_private_and_nothing_is_evicted(tmp_path):
    cache = UtilityCache(tmp_path / "deep" / "cache")
    assert stat.S_IMODE(os.stat(cache.directory).st_mode) == 0o700
    cache.set_many(FP, [np.array([1])], [1.0])
    cache.close()
    with sqlite3.connect(cache.directory / "cache.db") as con:
        settings = dict(con.execute("SELECT key, value FROM Settings").fetchall())
    assert settings["eviction_policy"] == "none"
    # an existing directory is used as it is (we never chmod a directory we did not create)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    UtilityCache(shared)
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o755


def test_cache_directory_opens_none_a_directory_or_a_cache(tmp_path):
    from dvl_jupyter.valuation.cachedir import CacheDirectory

    open_cache = CacheDirectory.open
    assert open_cache(None) is None
    cache = UtilityCache(tmp_path / "a")
    assert open_cache(cache).values is cache
    assert open_cache(str(tmp_path / "b")).values.directory == tmp_path / "b"
    assert open_cache(tmp_path / "c").values.directory == tmp_path / "c"
    same = open_cache(tmp_path / "d")
    assert open_cache(same) is same
    with pytest.raises(TypeError, match="None .no cache., a directory"):
        open_cache(42)
    assert DEFAULT_CACHE_DIR == ".dvl_cache"


def test_a_pickled_cache_travels_as_its_settings(tmp_path):
    cache = UtilityCache(tmp_path / "c", size_limit=10**6)
    cache.set_many(FP, [np.array([1])], [0.5])
    clone = pickle.loads(pickle.dumps(cache))
    assert clone.directory == cache.directory and clone.size_limit == 10**6
    assert clone.get_many(FP, [np.array([1])]) == [0.5]


# -- two processes at once ------------------------------------------------------------------------


def _write_entries(directory: str, worker: int, n: int, shared: int, go) -> None:
    """Spawned child: wait for the other one, then write n own + `shared` common entries."""
    warnings.simplefilter("error", CacheWarning)
    cache = UtilityCache(directory)
    go.wait(60)  # a barrier: both children start writing at the same moment
    started = time.time()
    own = subsets_of(n, offset=10_000 * (worker + 1))
    common = subsets_of(shared, offset=0)
    for start in range(0, n, 50):
        batch = own[start:start + 50] + common[start // 50::40][:2]
        values = [float(s[0]) for s in batch]
        cache.set_many(FP, batch, values)
    if not cache.enabled:
        sys.exit(3)
    times = {"start": started, "end": time.time()}
    Path(directory, f"times-{worker}.json").write_text(json.dumps(times))


def test_two_processes_write_the_same_cache_at_once(tmp_path):
    directory = str(tmp_path / "c")
    UtilityCache(directory)  # created once, like a kernel opening it before its workers
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Barrier(2)
    n, shared = 2000, 80
    procs = [ctx.Process(target=_write_entries, args=(directory, w, n, shared, go))
             for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    times = [json.loads(Path(directory, f"times-{w}.json").read_text()) for w in range(2)]
    assert max(t["start"] for t in times) < min(t["end"] for t in times)  # they overlapped

    cache = UtilityCache(directory)
    expected = subsets_of(n, 10_000) + subsets_of(n, 20_000) + subsets_of(shared, 0)
    got = cache.get_many(FP, expected)
    assert got == [float(s[0]) for s in expected]  # no lost (or mixed-up) entries
    assert len(cache) == 2 * n + shared


# -- planted rows ---------------------------------------------------------------------------------


class _Booby:
    """Unpickling this creates a marker directory: proof that a pickle was executed."""

    def __init__(self, marker: str, padding: int = 0) -> None:
        self.marker = marker
        self.padding = b"x" * padding

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_a_planted_pickled_row_is_refused_not_executed(tmp_path):
    directory = tmp_path / "c"
    cache = UtilityCache(directory)
    cache.set_many(FP, [np.array([0])], [0.5])
    marker_inline = tmp_path / "PWNED-inline"
    marker_file = tmp_path / "PWNED-file"
    planted = [np.array([1]), np.array([2])]
    # The attacker uses plain diskcache on the same directory: default Disk, pickled values
    # (small ones inline in SQLite, large ones in a separate file).
    attacker = diskcache.Cache(str(directory))
    attacker.set(cache_key(FP, planted[0]), _Booby(str(marker_inline)))
    attacker.set(cache_key(FP, planted[1]), (_Booby(str(marker_file)), b"y" * 100_000))
    attacker.close()

    with recorded() as records:
        got = cache.get_many(FP, [np.array([0]), *planted])
        assert cache.get_many(FP, planted) == [None, None]
    assert got == [0.5, None, None]
    messages = cache_warnings(records)
    assert len(messages) == 1 and "refused" in messages[0]
    assert not marker_inline.exists() and not marker_file.exists()
    assert cache.enabled  # one bad row does not switch the cache off

    # recomputed values replace the planted rows
    cache.set_many(FP, planted, [0.25, 0.125])
    assert UtilityCache(directory).get_many(FP, planted) == [0.25, 0.125]
    assert not marker_inline.exists() and not marker_file.exists()


def test_a_planted_file_name_cannot_make_the_cache_delete_other_files(tmp_path):
    directory = tmp_path / "c"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    cache = UtilityCache(directory)
    subset = np.array([7])
    cache.set_many(FP, [subset], [1.0])
    cache.close()
    with sqlite3.connect(directory / "cache.db") as con:
        con.execute("UPDATE Cache SET mode = 2, filename = ?, value = NULL WHERE key = ?",
                    ("../victim.txt", cache_key(FP, subset)))
    with recorded() as records:
        assert cache.get_many(FP, [subset]) == [None]
    assert len(cache_warnings(records)) == 1
    cache.set_many(FP, [subset], [2.0])  # diskcache "cleans up" the old file name here
    assert victim.read_text() == "keep me"
    assert cache.get_many(FP, [subset]) == [2.0]


# -- failures: one warning, no exception, a no-op cache ------------------------------------------


def _use_like_a_run(cache: UtilityCache) -> list[float | None]:
    """What the driver does: look up, store, look up again. Must never raise."""
    subsets = subsets_of(20)
    first = cache.get_many(FP, subsets)
    cache.set_many(FP, subsets, [0.5] * 20)
    cache.set_many(FP, subsets_of(5, 500), [0.5] * 5)
    return first + cache.get_many(FP, subsets)


def test_corrupted_database_file_warns_once_and_the_run_goes_on(tmp_path):
    directory = tmp_path / "c"
    cache = UtilityCache(directory)
    cache.set_many(FP, subsets_of(50), [1.0] * 50)
    cache.close()
    db = directory / "cache.db"
    size = db.stat().st_size
    db.write_bytes(np.random.default_rng(0).bytes(size))

    with recorded() as records:
        reopened = UtilityCache(directory)
        values = _use_like_a_run(reopened)
    messages = cache_warnings(records)
    assert len(messages) == 1, messages
    assert "damaged" in messages[0] and "%shapley_cache clear" in messages[0]
    assert values == [None] * 40
    assert not reopened.enabled and reopened.stats["writes"] == 0

    # the advice works: clear() repairs it
    reopened.clear()
    assert reopened.enabled
    reopened.set_many(FP, [np.array([1])], [0.5])
    assert reopened.get_many(FP, [np.array([1])]) == [0.5]


def test_corruption_between_two_runs_of_one_cache_object_warns_once(tmp_path):
    """The kernel keeps its cache object; the file is damaged between two runs."""
    directory = tmp_path / "c"
    cache = UtilityCache(directory)
    cache.set_many(FP, subsets_of(50), [1.0] * 50)
    cache.close()  # end of the first run (the data is now in the main file, not the WAL)
    db = directory / "cache.db"
    with open(db, "r+b") as f:
        f.write(b"\0garbage" * (db.stat().st_size // 8))
    with recorded() as records:
        values = _use_like_a_run(cache)
    assert len(cache_warnings(records)) == 1
    assert values == [None] * 40 and not cache.enabled


def test_locked_database_times_out_with_one_warning(tmp_path):
    directory = tmp_path / "c"
    cache = UtilityCache(directory, timeout=0.2)
    cache.set_many(FP, [np.array([1])], [1.0])
    holder = sqlite3.connect(directory / "cache.db", isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write
    try:
        with recorded() as records:
            start = time.monotonic()
            values = _use_like_a_run(cache)
            elapsed = time.monotonic() - start
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    messages = cache_warnings(records)
    assert len(messages) == 1 and "locked" in messages[0]
    assert elapsed < 5
    assert values == [None] * 40 and not cache.enabled


def test_full_disk_warns_once(tmp_path):
    cache = UtilityCache(tmp_path / "c")
    cache.set_many(FP, subsets_of(10), [1.0] * 10)
    # SQLite's own "database or disk is full" (SQLITE_FULL), as on a full disk: the
    # connection may not grow the file any further.
    con = cache._cache._con  # noqa: SLF001 - the test reaches into diskcache's connection
    (pages,), = con.execute("PRAGMA page_count").fetchall()
    con.execute(f"PRAGMA max_page_count = {pages}")
    with recorded() as records:
        for _ in range(3):
            cache.set_many(FP, subsets_of(3000, 100), [0.5] * 3000)
        assert cache.get_many(FP, subsets_of(2)) == [None, None]
    messages = cache_warnings(records)
    assert len(messages) == 1 and "disk is full" in messages[0]
    assert cache.stats["writes"] == 10


def test_a_cache_path_under_a_regular_file_warns_once(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with recorded() as records:
        cache = UtilityCache(blocker / "cache")
        values = _use_like_a_run(cache)
        assert cache.volume() == 0 and len(cache) == 0
    assert len(cache_warnings(records)) == 1
    assert values == [None] * 40 and not cache.enabled


def _unwritable_as_nobody(base: str) -> dict:
    """In a forked child that dropped root: use a new and an existing read-only cache."""
    out = {}
    for name in ("new", "existing"):
        with recorded() as records:
            cache = UtilityCache(os.path.join(base, name))
            values = _use_like_a_run(cache)
        out[name] = {"warnings": cache_warnings(records), "values": values,
                     "enabled": cache.enabled}
    return out


def _run_forked_as(uid: int, fn, *args) -> dict:
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python >= 3.12 warns about fork() with threads; the child only runs our code.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(read)
            os.setgid(uid)
            os.setuid(uid)
            payload = json.dumps(fn(*args))
        except BaseException as exc:  # report anything to the parent
            payload = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
            code = 1
        os.write(write, payload.encode())
        os._exit(code)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork() to drop privileges")
def test_a_directory_without_write_permission_warns_once():
    base = tempfile.mkdtemp(prefix="dvl-cache-perm-")
    try:
        # An existing cache, then made read-only for whoever runs the check.
        existing = UtilityCache(os.path.join(base, "existing"))
        existing.set_many(FP, [np.array([1])], [1.0])
        existing.close()
        if os.geteuid() == 0:
            # root ignores permission bits, so check as "nobody" in a forked child; the
            # directories belong to root and are readable, not writable, by others.
            os.chmod(base, 0o755)
            os.chmod(os.path.join(base, "existing"), 0o755)
            for f in Path(base, "existing").iterdir():
                os.chmod(f, 0o644)
            out = _run_forked_as(65534, _unwritable_as_nobody, base)
            assert "error" not in out, out
        else:
            os.chmod(os.path.join(base, "existing"), 0o500)
            for f in Path(base, "existing").iterdir():
                os.chmod(f, 0o400)
            os.chmod(base, 0o500)
            out = _unwritable_as_nobody(base)
        for name in ("new", "existing"):
            assert len(out[name]["warnings"]) == 1, (name, out[name]["warnings"])
            assert "writable" in out[name]["warnings"][0] or "readonly" in out[name][
                "warnings"][0]
            assert out[name]["values"] == [None] * 40 and not out[name]["enabled"]
    finally:
        os.chmod(base, 0o700)
        for root, dirs, _files in os.walk(base):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o700)
        import shutil

        shutil.rmtree(base)


def test_size_limit_stops_new_writes_once_and_keeps_what_is_stored(tmp_path):
    probe = UtilityCache(tmp_path / "probe")
    empty_volume = probe.volume()
    cache = UtilityCache(tmp_path / "c", size_limit=empty_volume + 40_000)
    written = []
    with recorded() as records:
        for batch in range(40):
            subsets = subsets_of(200, offset=batch * 200)
            cache.set_many(FP, subsets, [float(batch)] * 200)
            written.append(subsets)
    messages = cache_warnings(records)
    assert len(messages) == 1, messages
    assert "is full" in messages[0] and "%shapley_cache clear" in messages[0]
    assert "size_limit" in messages[0]
    stored = cache.stats["writes"]
    assert 0 < stored < 40 * 200
    assert len(cache) == stored
    # everything stored before the limit is still there: nothing was evicted
    got = cache.get_many(FP, [s for batch in written for s in batch][:stored])
    assert None not in got
    assert cache.enabled  # full is not broken: reads keep hitting
    # clearing makes room again
    cache.clear()
    cache.set_many(FP, subsets_of(3), [1.0] * 3)
    assert cache.get_many(FP, subsets_of(3)) == [1.0] * 3


# -- run manifests --------------------------------------------------------------------------------


def _result(values: list[float]) -> ValuationResult:
    result = ValuationResult.zeros(len(values), algorithm="tmc_shapley")
    result.update(np.arange(len(values)), np.array(values))
    result.meta.update(evaluations=12, seed=3)
    return result


def test_run_store_round_trip(tmp_path):
    store = RunStore(tmp_path / "c")
    assert store.list_runs() == []
    first = store.start({"jobs": 2, "rtol": np.float64(0.05), "model": object()}, seed=36)
    assert store.list_runs()[0]["status"] == "running"
    stats = RunStats(evaluations=12, cache_hits=5)
    store.finish(first, _result([0.1, 0.2, 0.3]), stats)
    second = store.start({"jobs": 1}, seed=37)
    store.finish(second, _result([1.0, 2.0]), {"evaluations": 0, "cache_hits": 17})

    runs = store.list_runs()
    assert [r["run_id"] for r in runs] == [second, first]  # newest first
    old = runs[1]
    assert old["status"] == "finished" and old["seed"] == 36
    assert old["settings"]["jobs"] == 2 and old["settings"]["rtol"] == 0.05
    assert isinstance(old["settings"]["model"], str)
    assert old["evaluations"] == 12 and old["cache_hits"] == 5
    assert old["started"] <= old["finished"] and old["elapsed_s"] >= 0
    assert runs[0]["cache_hits"] == 17

    loaded = store.load_result(first)
    np.testing.assert_allclose(loaded.values, [0.1, 0.2, 0.3])
    assert loaded.algorithm == "tmc_shapley"
    # only JSON and npz on disk
    files = sorted(p.suffix for p in (tmp_path / "c" / "runs").iterdir())
    assert files == [".json", ".json", ".npz", ".npz"]
    json.loads((tmp_path / "c" / "runs" / f"{first}.json").read_text())
    assert stat.S_IMODE(os.stat(tmp_path / "c" / "runs").st_mode) == 0o700

    with pytest.raises(ValueError, match="not a run id"):
        store.load_result("../../etc/passwd")
    unfinished = store.start({}, seed=None)
    with pytest.raises(ValueError, match="stored no result"):
        store.load_result(unfinished)
    assert store.clear() == 3 and store.list_runs() == []


def test_run_store_on_an_unwritable_path_warns_once_and_does_not_raise(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = RunStore(blocker / "c")
    with recorded() as records:
        run_id = store.start({"jobs": 1}, seed=0)
        store.finish(run_id, _result([0.5]), {"evaluations": 1, "cache_hits": 0})
    assert len(cache_warnings(records)) == 1
    assert store.list_runs() == []


def test_garbage_in_the_middle_of_the_file_is_damage_never_values(tmp_path):
    """SQLite reads past mid-file garbage without an error, as other numbers (146 of these
    246 values came back wrong): the quick check at opening makes it damage instead, said
    once, and the report and clear() say so too."""
    from dvl_jupyter.valuation.cachedir import CacheDirectory

    rng = np.random.default_rng(0)
    subsets = [rng.permutation(100)[:k] for k in range(1, 247)]
    with UtilityCache(tmp_path / "c") as cache:
        cache.set_many(FP, subsets, np.arange(246.0))
    db = tmp_path / "c" / "cache.db"
    size = db.stat().st_size
    with open(db, "r+b") as f:
        f.seek(size // 2)
        f.write(np.random.default_rng(0).bytes(4096))

    report = CacheDirectory(tmp_path / "c").report()  # no warning: no run goes on
    assert report.damaged and report.entries is None
    assert "damaged" in report.summary() and "%shapley_cache clear" in report.summary()
    with recorded() as records:
        damaged = UtilityCache(tmp_path / "c")
        values = damaged.get_many(FP, subsets)
    assert values == [None] * len(subsets)  # never a wrong number
    (warning,) = cache_warnings(records)
    assert "damaged" in warning and "this run goes on" not in warning
    assert CacheDirectory(tmp_path / "c").clear() == (None, 0)  # not -1: unknown
    with UtilityCache(tmp_path / "c") as fresh:
        assert len(fresh) == 0 and fresh.enabled
