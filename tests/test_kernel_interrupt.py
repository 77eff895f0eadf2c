"""The kernel's interrupt during a %%shapley run: a real kernel, a real SIGINT.

The kernel manager sends SIGINT to the kernel's whole process group, joblib's worker processes
included; the run must still end cleanly, with the partial result in the ``-o`` variable and
every evaluation done so far in the cache.
"""

from __future__ import annotations

import os
import queue
import time

import pytest
from jupyter_client.manager import start_new_kernel

from dvl_jupyter.valuation.cache import UtilityCache

pytestmark = pytest.mark.slow

SETUP = """
%load_ext dvl_jupyter
import numpy as np
from sklearn.tree import DecisionTreeClassifier
_rng = np.random.default_rng(0)
X = _rng.normal(size=(40, 3))
y = (X[:, 0] > 0).astype(int)
train, test = (X[:30], y[:30]), (X[30:], y[30:])
model = DecisionTreeClassifier(random_state=0)
"""


@pytest.fixture
def kernel(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120, cwd=str(tmp_path),
                              env=env)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def execute(kc, code: str, timeout: float = 120) -> tuple[str, str]:
    """Run code to the end; returns (status, what it printed)."""
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply["content"]["status"], "".join(out)


def test_interrupt_keeps_partial_result_and_cache(kernel, tmp_path):
    km, kc = kernel
    cache_dir = tmp_path / "cache"
    status, out = execute(kc, SETUP)
    assert status == "ok", out

    msg_id = kc.execute(f"""%%shapley -o partial --seed 1 --jobs 2 --cache {cache_dir} --no-progress
model = model
train, test = train, test
truncation = None
stopping = MinUpdates(10**6)
""")
    # Interrupt once some permutations are done: 8 walked side by side, 30 fits each.
    deadline = time.monotonic() + 180
    with UtilityCache(cache_dir) as cache:
        while len(cache) < 400:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.5)
    km.interrupt_kernel()

    while True:
        reply = kc.get_shell_msg(timeout=120)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    assert reply["content"]["status"] == "error"  # so that "Run all" stops here
    iopub = []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=2)
        except queue.Empty:
            break
        if msg["parent_header"].get("msg_id") == msg_id:
            iopub.append(msg)
    displayed = [m for m in iopub if m["msg_type"] == "display_data"]
    assert any("application/vnd.dvl-jupyter.valuation.v1+json" in m["content"]["data"]
               for m in displayed), "the partial result was not displayed"
    (error,) = [m for m in iopub if m["msg_type"] == "error"]
    assert len(error["content"]["traceback"]) == 1  # one line, no traceback
    assert error["content"]["traceback"][0].startswith("KeyboardInterrupt: run interrupted")

    status, out = execute(kc, f"""
from dvl_jupyter.valuation.cache import UtilityCache
with UtilityCache({str(cache_dir)!r}) as c:
    print(len(partial), partial.meta["ended"], partial.meta["permutations"],
          int(partial.counts.sum()), len(c))
""")
    assert status == "ok", out
    n, ended, permutations, updates, cached = out.split()
    assert (n, ended) == ("30", "interrupted")
    assert int(permutations) >= 1 and int(updates) == 30 * int(permutations)
    assert int(cached) >= 400
