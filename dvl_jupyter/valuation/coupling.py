"""Coupled training randomness: fits of nearby subsets see nearly the same training.

A marginal contribution ``u(S + i) - u(S)`` compares two fits. When each fit draws its own
initial weights and minibatch order (seeded by its subset, as by default), the difference
carries the training noise of both fits, which for a small net is far larger than one point's
effect. Common random numbers remove the part the two fits can share:

- every fit of a utility starts from the **same initial weights** (one seed per utility,
  :func:`coupled_seed`, from its ``random_state``);
- its minibatches are the **restriction of one fixed order per epoch** to its subset
  (:func:`coupled_order`): epoch ``e`` visits the points of ``S`` in the order a run-wide
  permutation ``pi_e`` of all ``n`` training points gives them, so adding ``i`` to ``S``
  inserts it into the same sequence instead of reshuffling everything. A net that does not
  shuffle (skorch's default) visits its subset in training order every epoch, which already is
  such a restriction (of the identity).

``u(S)`` stays a deterministic function of ``S`` (cacheable, reproducible in any process);
the cache key records the coupling. One-by-one skorch fits get the order through a sampler
(:class:`RestrictedOrderSampler`), the fast path through explicit row orders: the same models.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .seeds import subset_seed

__all__ = ["RestrictedOrderSampler", "coupled_order", "coupled_seed", "epoch_permutation"]


def coupled_seed(random_state: int) -> int:
    """The seed every coupled fit of a utility with this ``random_state`` starts from."""
    return subset_seed(np.empty(0, dtype=np.int64), random_state)


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """``pi_epoch``: the run-wide order of all ``n`` training points in that epoch."""
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(epoch),)))
    return rng.permutation(n)


def _rank_in(n: int, seed: int, epoch: int) -> np.ndarray:
    rank = np.empty(n, dtype=np.int64)
    rank[epoch_permutation(n, seed, epoch)] = np.arange(n)
    return rank


def coupled_order(subset: np.ndarray, n: int, seed: int, epochs: int) -> np.ndarray:
    """The rows (positions of the training set) a coupled fit of ``subset`` visits: its points
    in ``pi_e`` order, for each epoch ``e``, concatenated."""
    subset = np.asarray(subset, dtype=np.int64)
    return np.concatenate([subset[np.argsort(_rank_in(n, seed, e)[subset], kind="stable")]
                           for e in range(epochs)]) if epochs else subset[:0]


class RestrictedOrderSampler:
    """A DataLoader sampler for one-by-one coupled fits of a shuffling skorch net.

    skorch fits on the rows ``x[sorted(subset)]`` and asks for a new iterator each epoch; the
    ``e``-th iteration yields positions within those rows in ``pi_e`` order, so the fit visits
    exactly the rows :func:`coupled_order` gives the fast path.
    """

    def __init__(self, subset: np.ndarray, n: int, seed: int) -> None:
        self.subset = np.sort(np.asarray(subset, dtype=np.int64))
        self.n, self.seed = n, int(seed)
        self.epoch = 0

    def __iter__(self) -> Iterator[int]:
        rank = _rank_in(self.n, self.seed, self.epoch)[self.subset]
        self.epoch += 1
        return iter(np.argsort(rank, kind="stable").tolist())

    def __len__(self) -> int:
        return len(self.subset)
