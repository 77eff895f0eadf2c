"""Would bfloat16 pay here? fp32 against bf16 on this machine's CPU, side by side in one run.

Issue 16 asks for an opt-in bfloat16 mode of the fast path, on the premise that the CPU has
AVX-512 BF16. This script checks the premise before any kernel is written: it reads the CPU's
flags (``avx512_bf16``, ``amx_bf16``: the instructions that make bf16 arithmetic faster than
fp32) and measures, with the same torch threads, in this one run:

- a square matrix product (1024^2) in fp32 and in bf16: the arithmetic ceiling of each;
- one step of the fast path's own shape, the reference ``SimpleCNN`` trained on a stack of
  models with ``torch.func`` (forward + backward on K = 64 models x 189 images), in fp32 and
  under ``torch.autocast("cpu", dtype=torch.bfloat16)``.

Without native bf16 instructions, bf16 arithmetic is emulated (converted to fp32 and back), so
it cannot beat fp32; the ratios below say by how much it loses.

    .venv/bin/python benchmarks/bench_precision.py            # ~1 minute
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dvl_jupyter.models import SimpleCNN

BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags() -> set[str]:
    """The CPU's feature flags, as /proc/cpuinfo lists them (empty where it does not exist)."""
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return set()
    for line in path.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def best_seconds(step, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls after one warm-up (the machine is shared)."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(dtype: torch.dtype, size: int, repeats: int) -> float:
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    seconds = best_seconds(lambda: a @ b, repeats)
    return 2 * size**3 / seconds / 1e9


def cnn_step_seconds(bf16: bool, models: int, rows: int, repeats: int) -> float:
    """Forward + backward of ``models`` stacked SimpleCNNs on ``rows`` images each."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    nets = [SimpleCNN() for _ in range(models)]
    params, buffers = stack_module_state(nets)
    base = SimpleCNN().to("meta")
    x = torch.randn(models, rows, 1, 8, 8)
    y = torch.randint(0, 10, (models, rows))

    def loss(p, b, xb, yb):
        out = functional_call(base, (p, b), (xb,))
        return torch.nn.functional.cross_entropy(out.float(), yb)

    batched = vmap(grad(loss), in_dims=(0, 0, 0, 0))

    def step():
        if bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                batched(params, buffers, x, y)
        else:
            batched(params, buffers, x, y)

    return best_seconds(step, repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    flags = cpu_flags()
    native = [f for f in BF16_FLAGS if f in flags]
    print(f"# bench_precision: torch {torch.__version__}, {args.threads} threads; CPU bf16 "
          f"instructions: {', '.join(native) or 'none'} (avx512f: {'avx512f' in flags}, "
          f"avx2: {'avx2' in flags})")
    fp32 = matmul_gflops(torch.float32, args.size, args.repeats)
    bf16 = matmul_gflops(torch.bfloat16, args.size, args.repeats)
    print(f"matmul {args.size}^2: fp32 {fp32:.1f} GFLOP/s, bf16 {bf16:.1f} GFLOP/s, "
          f"bf16/fp32 = {bf16 / fp32:.2f}x")
    t32 = cnn_step_seconds(False, 64, 189, args.repeats)
    t16 = cnn_step_seconds(True, 64, 189, args.repeats)
    print(f"SimpleCNN x64 models x189 rows, forward+backward: fp32 {t32 * 1e3:.1f} ms, "
          f"bf16 autocast {t16 * 1e3:.1f} ms, bf16 speed-up = {t32 / t16:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
