"""Replaying what skorch's own fit would draw: initial weights and minibatch orders.

A fast-path model must be the model ``torch.manual_seed(seed); clone(net).fit(x[S], y[S])``
gives, so its initial weights come from the net's own ``initialize_module`` under that seed,
and, when the net shuffles, its epochs' orders from the same RNG draws skorch's DataLoader
makes, in a forked RNG so the caller's generators are untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from .spec import NetSpec, unwrap

__all__ = ["initial_models"]


def initial_models(spec: NetSpec, subsets: Sequence[np.ndarray], seeds: Sequence[int],
                   epochs: int, orders: Sequence[np.ndarray] | None = None
                   ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]], list[np.ndarray]]:
    """Initial weights and minibatch orders, replaying what skorch's fit draws from torch's RNG.

    skorch builds the module first (``initialize_module`` under the caller's seed), then each
    epoch its DataLoader draws a base seed and, when shuffling, a RandomSampler seed for a
    ``randperm``. We replay exactly those draws in a forked RNG, so the global RNG is left as
    it was. Explicit ``orders`` (coupled training: each model's rows, concatenated over the
    epochs when the net shuffles) replace the replayed ones.
    """
    given = orders
    flats, buffers, orders = [], [], []  # type: ignore[assignment]
    scratch = spec.scratch
    cpu_only = spec.device.type == "cpu"
    # On CPU only the default generator matters, and seeding it directly avoids
    # torch.manual_seed's lazy seeding of CUDA/XPU/MTIA (~1 ms of stack formatting per call).
    with spec.lock, torch.random.fork_rng(devices=[] if cpu_only else None):
        for subset, seed in zip(subsets, seeds, strict=True):
            if cpu_only:
                torch.default_generator.manual_seed(int(seed))
            else:
                torch.manual_seed(int(seed))
            scratch.initialize_module()
            if scratch.module_ is scratch.module:
                # ``module`` was given as an instance: skorch reuses it (every fit starts from
                # its weights); work on a copy so loading trained states never touches it
                scratch.module_ = copy.deepcopy(scratch.module)
            module = unwrap(scratch.module_)
            flats.append(torch.cat([p.detach().reshape(-1).cpu() for p in module.parameters()]))
            named_buf = dict(module.named_buffers())
            buffers.append({n: named_buf[n].detach().clone() for n in spec.buffer_names})
            if given is not None:
                orders.append(np.asarray(given[len(orders)], dtype=np.int64))
            elif spec.shuffle:
                n = len(subset)
                perms = []
                for _ in range(epochs):
                    torch.empty((), dtype=torch.int64).random_()  # the DataLoader's base seed
                    s = int(torch.empty((), dtype=torch.int64).random_().item())  # sampler's
                    perm = torch.randperm(n, generator=torch.Generator().manual_seed(s))
                    perms.append(subset[perm.numpy()])
                orders.append(np.concatenate(perms) if perms else subset[:0])
            else:
                orders.append(subset)
        # the last module built serves forward passes (functional_call swaps its weights)
        scratch.module_.to(spec.device)
    return torch.stack(flats), buffers, orders


